"""The webcam benchmark's arithmetic on made-up timings: the rate, the spreads, the store check, its options."""

from __future__ import annotations

import pytest

from bench.webcam_capture import Snapshots, parse_args, summary, tab_counts


def _shots(**changes: object) -> Snapshots:
    shots = Snapshots(
        latencies_s=[0.3, 0.2, 0.4, 0.3, 1.0],
        ready_s=[0.1, 0.1, 2.0, 0.1, 0.1],
        taken={"cups": 3, "keys": 2},
        first_click=100.0,
        ended=115.0,  # 5 snapshots in 15 s
        shown={"cups": 3, "keys": 2},
        stored={"cups": 3, "keys": 2},
    )
    for name, value in changes.items():
        setattr(shots, name, value)
    return shots


def test_the_rate_runs_from_the_first_click_to_the_last_count() -> None:
    result = summary(_shots())
    assert result["snapshots"] == 5 and result["seconds"] == 15.0 and result["per_min"] == 20.0
    assert result["click_to_count_s"] == {"median": 0.3, "p95": 0.88, "max": 1.0}
    assert result["count_to_camera_ready_s"]["median"] == 0.1 and result["count_to_camera_ready_s"]["max"] == 2.0
    assert result["all_stored"] and result["goal_met"]
    assert not summary(_shots(ended=116.0))["goal_met"]  # 18.8 a minute


def test_snapshots_in_the_wrong_class_or_a_run_cut_short_miss_the_goal() -> None:
    # the tab jumped back to the first class: two snapshots meant for keys went to cups
    wrong = summary(_shots(shown={"cups": 5, "keys": 0}, stored={"cups": 5, "keys": 0}))
    assert not wrong["all_stored"] and not wrong["goal_met"]
    lost = summary(_shots(stored={"cups": 3, "keys": 1}))  # shown but not on disk
    assert not lost["all_stored"]
    stuck = summary(_shots(cut_short="timed out after 60 s waiting for the camera to be ready", ended=175.0))
    assert stuck["per_min"] == 4.0 and not stuck["goal_met"]


def test_nothing_measured_gives_no_rate() -> None:
    result = summary(Snapshots())
    assert result["per_min"] is None and result["click_to_count_s"]["median"] is None and not result["goal_met"]


def test_tab_labels_give_the_counts() -> None:
    assert tab_counts(["cups (12)", "my keys (0)", "Dataset"]) == {"cups": 12, "my keys": 0}


def test_options() -> None:
    args = parse_args([])
    assert args.duration_s == 60 and args.viewports == ["desktop", "phone"] and args.limit_s == 120
    assert parse_args(["--count", "10", "--duration-s", "0", "--viewports", "phone"]).limit_s == 300
    with pytest.raises(SystemExit):
        parse_args(["--viewports", "tablet"])
    with pytest.raises(SystemExit):
        parse_args(["--duration-s", "0"])
