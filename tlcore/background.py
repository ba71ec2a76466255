"""Daemon threads that end their work before the interpreter does.

Jobs and the dashboard's background computations run in daemon threads, so a
server that stops is never held up by them. But Python ends daemon threads
abruptly once it starts finalizing: one that is inside TensorFlow's C++ code
then aborts the whole process ("terminate called ... FATAL: exception not
rethrown", exit code 134), after everything else went well. So at exit each
live thread is asked to stop (its `on_exit`) and given EXIT_GRACE_S, all
together, to finish.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

EXIT_GRACE_S = 30.0  # a stopped job ends within one batch; a probe's pass over a dataset takes seconds

Ts = TypeVarTuple("Ts")  # the target's arguments
R = TypeVar("R")  # what the target returns (nobody reads it)

_lock = threading.Lock()
_threads: list[tuple[threading.Thread, Callable[[], None] | None]] = []


def start(
    target: Callable[[*Ts], R], args: tuple[*Ts], name: str, on_exit: Callable[[], None] | None = None
) -> threading.Thread:
    """Run target(*args) in a daemon thread that the interpreter's exit waits for (after calling on_exit)."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    with _lock:
        _threads[:] = [(t, stop) for t, stop in _threads if t.is_alive()]
        _threads.append((thread, on_exit))
    thread.start()
    return thread


def finish(grace_s: float = EXIT_GRACE_S) -> list[str]:
    """Ask every live thread to stop and wait for them, grace_s in all; the names of those still running."""
    with _lock:
        alive = [(t, stop) for t, stop in _threads if t.is_alive()]
    for _, stop in alive:
        if stop is not None:
            stop()
    deadline = time.monotonic() + grace_s
    for thread, _ in alive:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [thread.name for thread, _ in alive if thread.is_alive()]


atexit.register(finish)
