"""The classroom benchmark's figures: percentiles, the timeline's phases, the per-page table, memory growth."""

from __future__ import annotations

import pytest

from bench.classroom_load import AFTER, IDLE, JOBS, growth, percentile, phase_of, render_table, summarize, table_lines


def test_percentile_interpolates_between_ranks():
    values = [4.0, 1.0, 3.0, 2.0, 5.0]  # order does not matter
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == pytest.approx(4.8)  # rank 3.8: 4 + 0.8 * (5 - 4)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 5.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 95) is None


def test_summarize_gives_count_median_p95_and_max():
    assert summarize([0.1, 0.2, 0.3, 0.4, 10.0]) == {"n": 5, "median": 0.3, "p95": 8.08, "max": 10.0}
    assert summarize([]) == {"n": 0, "median": None, "p95": None, "max": None}


def test_phase_of_places_a_render_before_in_or_after_the_job_windows():
    windows = [(10.0, 20.0), (30.0, None)]  # the second round still running
    assert phase_of(5.0, windows) == IDLE
    assert phase_of(10.0, windows) == JOBS and phase_of(20.0, windows) == JOBS
    assert phase_of(25.0, windows) == AFTER  # between rounds
    assert phase_of(99.0, windows) == JOBS  # the open window runs on
    assert phase_of(99.0, []) == IDLE


def test_render_table_groups_by_page_and_phase():
    table = render_table([("Runs", JOBS, 1.0), ("Runs", JOBS, 3.0), ("Runs", IDLE, 0.5), ("Dataset", AFTER, 0.2)])
    assert table["Runs"][JOBS] == {"n": 2, "median": 2.0, "p95": 2.9, "max": 3.0}
    assert table["Runs"][IDLE]["n"] == 1 and table["Runs"][AFTER]["n"] == 0
    assert table["Dataset"][AFTER]["median"] == 0.2 and table["Dataset"][JOBS]["n"] == 0


def test_growth_is_the_least_squares_slope_per_minute():
    assert growth([(0.0, 100.0), (30.0, 110.0), (60.0, 120.0)]) == pytest.approx(20.0)
    assert growth([(0.0, 100.0), (30.0, 130.0), (60.0, 100.0)]) == pytest.approx(0.0)  # up and back: flat
    assert growth([(0.0, 100.0)]) is None and growth([(5.0, 1.0), (5.0, 2.0)]) is None


def test_table_lines_put_the_phases_side_by_side():
    lines = table_lines(render_table([("Runs", JOBS, 1.0), ("Runs", JOBS, 3.0), ("Dataset", IDLE, 0.25)]))
    assert lines[0].split()[:2] == ["page", "idle"]
    assert lines[1].split() == ["Runs", "-", "2.00", "/", "2.90", "s", "(2)", "-"]
    assert lines[2].split() == ["Dataset", "0.25", "/", "0.25", "s", "(1)", "-", "-"]
