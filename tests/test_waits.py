"""A class's queue says how long (tlcore.waits): each waiting job's estimated wait, in queue order."""

from __future__ import annotations

import threading
import time

import pytest

from tests.helpers import TINY_CONFIG
from tlcore.jobs import QUEUED, JobRegistry
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
    assert "largest image size is 64 px; these settings use 128 px" in limit_problem(
        config, 100, 20, {"max_image_size": 64}, GFLOPS
    )
    assert "limit is 20 epochs; these settings train 30" in limit_problem(config, 100, 20, {"max_epochs": 20}, GFLOPS)
    tiny_cap = limit_problem(config, 100_000, 20_000, {"max_minutes": 0.01}, GFLOPS)
    assert "the class's limit is 0.01 min" in tiny_cap
    assert limit_problem(config, 100, 20, {"max_image_size": None, "max_epochs": 0}, GFLOPS) is None


def test_a_run_past_one_and_a_half_times_the_cap_stops():
    from tlcore.waits import stop_past_cap

    registry = JobRegistry(max_active=1)
    job = registry.start("student", "training", lambda job: job.stop_flag.wait(60), config=TINY_CONFIG)
    stop_past_cap(job, cap_s=0.2, poll_s=0.05)
    job.thread.join(30)
    assert job.stop_flag.is_set() and job.snapshot().elapsed >= 0.3
    assert "1.5 x the class's time cap" in job.snapshot().message
