"""Give back the memory of models that a cache let go: a full garbage collection at the next eviction.

A Keras model is a web of reference cycles (layers and model, traced functions), so only
Python's cyclic collector frees it. Streamlit's collection after every script run is off
(.streamlit/config.toml: with TensorFlow loaded it cost 0.5 s a run), and with TensorFlow's
millions of long-lived objects Python hardly ever runs a full collection by itself: each
model the Inference page's cache evicted stayed in memory, about 60 MB each, measured with
bench/classroom_load.py (a class's runs loaded one after the other).
"""

from __future__ import annotations

import gc
from typing import Any


def collect_released(_released: Any = None) -> None:
    """`on_release` of the caches that hold models: collect what earlier evictions let go.

    The model released now is still referenced (the argument, and a render that may be using it), so it
    goes at the next eviction: at most one evicted model waits. It runs in the script run that loads a
    new model (a second or more already), not in a thread of its own: a collection in a daemon thread
    could meet the interpreter's shutdown inside TensorFlow's C++ code and abort the process.
    """
    gc.collect()
