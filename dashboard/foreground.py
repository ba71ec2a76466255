"""Pages before passes: a background pass waits between batches while any page is being drawn.

A class arriving opened thirty first pages while See inside's passes ran VGG16 on both cores: See inside
took 5.6 s p95 (bench/classroom_load.py --own-data). Waiting pages first costs a pass little (a class's
pages are drawn a fraction of the time) and gives a page the whole machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

MAX_PAUSE_S = 5.0  # per batch (tlcore.tf.probe.PASS_BATCH images)
# A pass waits at most this many times as long as it worked since its last report: under a class's constant
# browsing it still gets a fifth of the machine, whether its steps are 0.3 s batches or 10 ms LR-finder steps.
PAGES_SHARE = 4.0
POLL_S = 0.02

_lock = threading.Lock()
_drawing = 0


@contextmanager
def drawing() -> Iterator[None]:
    """Around one script run of a page (app.py): passes pause while any is in progress.

    Not a limit on pages at once: four at a time made every page wait behind See inside's (measured).
    """
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


def pause_for_pages(worked_s: float, max_pause_s: float = MAX_PAUSE_S) -> float:
    """Between a pass's batches: wait while pages are drawn, at most PAGES_SHARE x `worked_s` (the pass's time
    since its last pause) and `max_pause_s`. Returns the seconds waited."""
    max_pause_s = min(max_pause_s, PAGES_SHARE * worked_s)
    start = time.perf_counter()
    while _drawing and (waited := time.perf_counter() - start) < max_pause_s:
        time.sleep(min(POLL_S, max_pause_s - waited))
    return time.perf_counter() - start
