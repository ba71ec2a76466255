"""A class's queue says how long (tlcore.waits): each waiting job's estimated wait, in queue order."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.helpers import TINY_CONFIG
from tlcore.jobs import QUEUED, Job, JobRegistry, Snapshot
from tlcore.waits import estimated_seconds, seconds_left, waits

GFLOPS = 100.0


def _held(release: threading.Event):
    return lambda job: release.wait(60)


def test_each_waiting_job_waits_for_the_jobs_ahead_of_it():
    registry, release = JobRegistry(max_active=1), threading.Event()
    config = TINY_CONFIG.replace(image_size=64, epochs=3)
    started = [
        registry.start(f"student-{i}", "training", _held(release), config=config, dataset=("d", 200, 50))
        for i in range(3)
    ]
    try:
        deadline = time.monotonic() + 30
        while [j.snapshot().stage == QUEUED for j in started] != [False, True, True]:
            assert time.monotonic() < deadline, [j.snapshot().stage for j in started]
            time.sleep(0.05)
        whole = estimated_seconds(started[0], GFLOPS)
        assert whole > 0
        estimated = waits(registry, GFLOPS)
        first_left = seconds_left(started[0], GFLOPS)
        assert 0 < first_left <= whole
        assert estimated[started[1].id] == pytest.approx(first_left, rel=0.05)
        assert estimated[started[2].id] == pytest.approx(first_left + whole, rel=0.05)  # and B's whole run
        deadline = time.monotonic() + 10
        while "to wait" not in started[2].snapshot().message and time.monotonic() < deadline:
            time.sleep(0.05)
        message = started[2].snapshot().message
        assert "place 2 in the queue, about" in message and "to wait" in message
    finally:
        release.set()
        for job in started:
            job.thread.join(30)


def test_the_class_limits_say_which_one_a_run_breaks():
    from tlcore.waits import limit_problem

    config = TINY_CONFIG.replace(image_size=128, epochs=30)
    assert limit_problem(config, 100, 20, {}, GFLOPS) is None
    too_large = limit_problem(config, 100, 20, {"max_image_size": 64}, GFLOPS)
    assert too_large is not None and "largest image size is 64 px; these settings use 128 px" in too_large
    too_long = limit_problem(config, 100, 20, {"max_epochs": 20}, GFLOPS)
    assert too_long is not None and "limit is 20 epochs; these settings train 30" in too_long
    tiny_cap = limit_problem(config, 100_000, 20_000, {"max_minutes": 0.01}, GFLOPS)
    assert tiny_cap is not None and "the class's limit is 0.01 min" in tiny_cap
    assert limit_problem(config, 100, 20, {"max_image_size": None, "max_epochs": 0}, GFLOPS) is None


def test_a_job_of_several_runs_keeps_each_runs_limits_and_the_time_limit_as_a_whole():
    """A transfer curve is one job: its runs' size and epochs as for any run, its time as one job's."""
    from tlcore.estimate import estimate
    from tlcore.waits import runs_limit_problem

    runs = [TINY_CONFIG.replace(image_size=96, epochs=5, freeze_at=n) for n in (0, 14, 18)]
    assert runs_limit_problem(runs, 90, 50, {"max_image_size": 128, "max_epochs": 5}, GFLOPS) is None
    too_large = runs_limit_problem(runs, 90, 50, {"max_image_size": 64}, GFLOPS)
    assert too_large is not None and "largest image size is 64 px; these settings use 96 px" in too_large
    each = [estimate(c, 90, 50, GFLOPS).total_seconds / 60 for c in runs]
    # A limit every run keeps on its own, but not all three together.
    limit = round(max(each) * 1.1, 3)
    assert limit * 60 < sum(each) * 60
    too_long = runs_limit_problem(runs, 90, 50, {"max_minutes": limit}, GFLOPS)
    assert too_long is not None and too_long.startswith("These 3 runs would take about ")
    assert f"the class's limit is {limit:g} min: choose fewer freeze points or repeats" in too_long
    assert runs_limit_problem(runs, 90, 50, {"max_minutes": round(sum(each) * 1.1, 3)}, GFLOPS) is None


def test_a_run_past_one_and_a_half_times_the_cap_stops():
    from tlcore.waits import stop_past_cap

    class Run(Job[None]):
        """A job whose training seconds are read from a list (each poll reads a snapshot twice), no clock."""

        def __init__(self, seconds: list[float]) -> None:
            super().__init__("student", "training")
            self.id = "capped"
            self.readings, self.last, self.message = iter(seconds), 0.0, ""
            self.stopped_at: float | None = None

        def snapshot(self) -> Snapshot:
            self.last = next(self.readings, self.last)
            # Started at 0 and read at `last`: its elapsed seconds are the reading, not the clock's.
            return Snapshot(self.id, "student", "training", stage="train", started=0.0, finished=self.last)

        def update(self, **fields: Any) -> None:
            self.message = fields["message"]

        def stop(self) -> None:
            self.stopped_at = self.last

    run = Run([s for s in (0.1, 0.25, 0.30, 0.31, 0.5) for _ in (1, 2)])
    stop_past_cap(run, cap_s=0.2, poll_s=0.001).join(30)
    assert run.stopped_at == 0.31  # the first reading past 1.5 x 0.2 s, none before
    assert "Stopped at 1.5 x the class's time cap" in run.message
