"""Background passes pause between batches while a page is drawn (dashboard.foreground)."""

from __future__ import annotations

import threading
import time

from dashboard import foreground
from dashboard.tasks import Task


def test_no_page_drawn_no_pause() -> None:
    assert foreground.pages_drawing() == 0
    assert foreground.pause_for_pages(worked_s=10.0, max_pause_s=5.0) < 0.5


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
    waited = foreground.pause_for_pages(worked_s=30.0, max_pause_s=30.0)
    page.join()
    assert drawn.is_set()
    assert waited >= 0.1  # it waited for the page (a loaded machine only makes this longer)
    assert foreground.pages_drawing() == 0


def test_the_pause_is_bounded_and_the_count_survives_errors() -> None:
    try:
        with foreground.drawing():
            task: Task[None] = Task("a pass")
            waited = foreground.pause_for_pages(worked_s=10.0, max_pause_s=0.2)
            assert 0.2 <= waited < 5.0  # the page never ends here: the pass waits its bound, not forever
            waited = foreground.pause_for_pages(worked_s=0.05, max_pause_s=5.0)
            assert 0.2 <= waited < 5.0  # four times what it worked: a pass of short steps keeps a fifth
            task.report(3, 10)  # a batch's report pauses too, and still records where the pass stands
            assert (task.done, task.total) == (3, 10)
            raise RuntimeError("the page failed")
    except RuntimeError:
        pass
    assert foreground.pages_drawing() == 0  # a failed page does not hold the passes back forever
