"""Background passes pause between batches while a page is drawn (dashboard.foreground)."""

from __future__ import annotations

import threading
import time

from dashboard import foreground
from dashboard.tasks import Task


def test_no_page_drawn_no_pause() -> None:
    assert foreground.pages_drawing() == 0
    assert foreground.pause_for_pages(max_pause_s=5.0) < 0.5


def test_a_pass_waits_until_the_page_is_drawn() -> None:
    drawn = threading.Event()

    def draw_page() -> None:
        with foreground.drawing():
            time.sleep(0.3)
        drawn.set()

    with foreground.drawing():
        assert foreground.pages_drawing() == 1
        page = threading.Thread(target=draw_page)
        page.start()
    # the first page has finished; the second is still being drawn for ~0.3 s
    waited = foreground.pause_for_pages(max_pause_s=30.0)
    page.join()
    assert drawn.is_set()
    assert waited >= 0.1  # it waited for the page (a loaded machine only makes this longer)
    assert foreground.pages_drawing() == 0


def test_the_pause_is_bounded_and_the_count_survives_errors() -> None:
    try:
        with foreground.drawing():
            task = Task("a pass")
            waited = foreground.pause_for_pages(max_pause_s=0.2)
            assert 0.2 <= waited < 5.0  # the page never ends here: the pass waits its bound, not forever
            task.report(3, 10)  # a batch's report pauses too, and still records where the pass stands
            assert (task.done, task.total) == (3, 10)
            raise RuntimeError("the page failed")
    except RuntimeError:
        pass
    assert foreground.pages_drawing() == 0  # a failed page does not hold the passes back forever


def test_pages_take_turns_a_few_at_a_time(monkeypatch) -> None:
    monkeypatch.setattr(foreground, "_TURNS", threading.BoundedSemaphore(2))
    inside, most, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def draw_page() -> None:
        with foreground.drawing():
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            release.wait(30)
            with lock:
                inside[0] -= 1

    pages = [threading.Thread(target=draw_page) for _ in range(5)]
    for page in pages:
        page.start()
    deadline = time.monotonic() + 30
    while foreground.pages_drawing() < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert foreground.pages_drawing() == 5  # all five count as drawn (passes pause for waiting pages too)
    time.sleep(0.2)
    assert most[0] == 2  # two draw; three wait their turn
    release.set()
    for page in pages:
        page.join(30)
    assert most[0] == 2 and inside[0] == 0 and foreground.pages_drawing() == 0
