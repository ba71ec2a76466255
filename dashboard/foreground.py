"""Pages before passes, and a few pages at a time: how one server stays quick for a class arriving at once.

Thirty first pages drawn at once took up to 4.8 s (bench/classroom_load.py --own-data): thirty threads took
turns on the interpreter's lock, each holding Streamlit's media lock while it waited for its turn, and See
inside's passes ran VGG16 on both cores meanwhile. Pages now take turns, a few at a time, and a pass waits a
moment between batches while any page is being drawn.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

MAX_PAUSE_S = 0.5  # per batch: under a class's constant browsing a pass still moves on
POLL_S = 0.02

MAX_PAGE_RUNS_ENV = "TLLAB_MAX_PAGE_RUNS"
# Script runs at once: a few keep both cores busy (a page also waits on disk and the network); more only queue
# on the interpreter's lock, where a thread holding any other lock makes every other thread wait too.
_TURNS = threading.BoundedSemaphore(max(1, int(os.environ.get(MAX_PAGE_RUNS_ENV, "4") or 4)))
_lock = threading.Lock()
_drawing = 0


@contextmanager
def drawing() -> Iterator[None]:
    """Around one script run of a page (app.py): it waits its turn; passes pause while any is in progress."""
    global _drawing
    with _lock:
        _drawing += 1
    try:
        with _TURNS:
            yield
    finally:
        with _lock:
            _drawing -= 1


def pages_drawing() -> int:
    """How many script runs are in progress in this process now."""
    return _drawing


def pause_for_pages(max_pause_s: float = MAX_PAUSE_S) -> float:
    """Between a pass's batches: wait while pages are drawn, at most `max_pause_s`. Returns the seconds waited."""
    start = time.perf_counter()
    while _drawing and (waited := time.perf_counter() - start) < max_pause_s:
        time.sleep(min(POLL_S, max_pause_s - waited))
    return time.perf_counter() - start
