"""Give back the memory of a model that a cache lets go: one full garbage collection soon after.

A Keras model is a web of reference cycles (layers and model, traced functions), so only
Python's cyclic collector frees it. Streamlit's collection after every script run is off
(.streamlit/config.toml: with TensorFlow loaded it cost 0.5 s a run), and with TensorFlow's
millions of long-lived objects Python hardly ever runs a full collection by itself: each
model the Inference page's cache evicted stayed in memory, about 60 MB each, measured with
bench/classroom_load.py (a class's runs loaded one after the other).
"""

from __future__ import annotations

import gc
import threading
from typing import Any

# The script runs still using the evicted model (another session's render) end first.
COLLECT_AFTER_S = 5.0

_lock = threading.Lock()
_pending: threading.Timer | None = None


def collect_soon(_released: Any = None) -> None:
    """`on_release` of the caches that hold models: one full collection COLLECT_AFTER_S from now.

    Evictions close together share one collection, which runs in a timer thread, not in a page's script run.
    """
    global _pending
    with _lock:
        if _pending is not None and _pending.is_alive():
            return
        _pending = threading.Timer(COLLECT_AFTER_S, gc.collect)
        _pending.daemon = True
        _pending.start()
