"""Pages before passes: background passes pause between batches while a page is being drawn.

A class arriving at once opens thirty first pages while See inside's passes put images through VGG16 on
both cores; the pages took up to 4.8 s (bench/classroom_load.py --own-data). A pass that waits a moment
between batches costs it little and gives a page the whole machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

MAX_PAUSE_S = 0.5  # per batch: under a class's constant browsing a pass still moves on
POLL_S = 0.02

_lock = threading.Lock()
_drawing = 0


@contextmanager
def drawing() -> Iterator[None]:
    """Around one script run of a page (app.py): passes pause while any is in progress."""
    global _drawing
    with _lock:
        _drawing += 1
    try:
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
