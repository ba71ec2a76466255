"""The process's memory workarounds: what traced steps leave in TensorFlow, and models only a collection frees.

1. TensorFlow 2.21 keeps every custom gradient registered in graph mode for ever (tensorflow/tensorflow#97697);
   Keras' optimizer registers one per traced training step, holding the model: about 100 MB per tiny run.
   `TRACING` drops them when no work may be tracing. It can go when bench/repeated_runs.py's RSS stays flat
   with `_drop_custom_gradients` a no-op.
2. A Keras model is garbage only in reference cycles, which Python's full collections free, and with
   TensorFlow's heap Python hardly ever runs one (Streamlit's after each script run is off in
   .streamlit/config.toml). `collect_garbage` runs one where a model was let go; it can go when
   bench/classroom_load.py's RSS stays flat without it.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def _drop_custom_gradients() -> int:
    """Remove TensorFlow's registered custom gradients; returns how many (0 while TensorFlow is not loaded)."""
    ops = sys.modules.get("tensorflow.python.framework.ops")
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if not isinstance(registry, dict):
        return 0
    stale = [name for name in list(registry) if name.startswith("CustomGradient-")]
    for name in stale:
        registry.pop(name, None)
    return len(stale)


def forget_traced_gradients() -> int:
    """Drop the custom gradients TensorFlow registered while tracing, then collect; returns how many.

    Only for a process where nothing else may be tracing now (a Ray worker between jobs); in the app,
    leave `TRACING.inside()` instead.
    """
    dropped = _drop_custom_gradients()
    # Now the run's model is only garbage in reference cycles (layers, traced functions), which only a full
    # collection frees; with TensorFlow's millions of long-lived objects Python hardly ever runs one by itself,
    # and Streamlit's after each script run is off (.streamlit/config.toml). Without this every run in the
    # app kept about 200 MB (bench/classroom_load.py).
    gc.collect()
    return dropped


class TracingGuard:
    """Counts the work that may be tracing TensorFlow steps; the last to leave frees what traces left.

    An entry is needed only while its trace computes its gradients, so entries may go only when no
    work in this process may be tracing: training jobs, the LR finder and the See inside passes all
    run inside `TRACING.inside()`, and the last one out drops the entries.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0

    @property
    def busy(self) -> int:
        """How many pieces of work are inside now."""
        with self._lock:
            return self._inside

    def between(self) -> bool:
        """Called by work inside the guard between two of its own traced steps (a sweep's points): frees the
        entries when nothing else is inside (True), as leaving last would."""
        with self._lock:
            alone = self._inside <= 1
            if alone:
                _drop_custom_gradients()
        if alone:
            gc.collect()
        return alone

    @contextmanager
    def inside(self) -> Iterator[None]:
        """Run a block that may trace; on leaving last, drop the entries and collect (outside any lock)."""
        with self._lock:
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                last = self._inside == 0
                if last:  # under the lock: nobody starts tracing while the entries go
                    _drop_custom_gradients()
            if last:
                gc.collect()  # slow with TensorFlow's heap: never while anyone waits on a lock for it


TRACING = TracingGuard()


def collect_garbage(_released: keras.Model | None = None) -> None:
    """A full collection, e.g. as `on_release` of the caches that hold models (Streamlit passes the model).

    The model released now is still referenced (the argument, and a render that may be using it), so it
    goes at the next eviction: at most one evicted model waits (about 60 MB each, bench/classroom_load.py).
    It runs in the script run that loads a new model, not in a thread of its own: a collection in a daemon
    thread could meet the interpreter's shutdown inside TensorFlow's C++ code and abort the process.
    """
    gc.collect()
