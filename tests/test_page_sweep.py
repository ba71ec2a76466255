"""Runs page (AppTest over the whole app): a freeze sweep started from the page, its progress and its results."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from dashboard.charts import PLOT_HEIGHT
from dashboard.state import K
from dashboard.tables import saved_sweep_frame
from tests.helpers import chart_rows, chart_title, make_dataset_folder, open_on_tiny_folder, vega_specs
from tlcore.access import ADMIN
from tlcore.jobs import JOBS
from tlcore.runs import RunStore


def _runs_page(dataset) -> AppTest:
    at = open_on_tiny_folder("runs", dataset)
    assert not at.exception, at.exception
    return at


def test_a_sweep_runs_from_the_page_and_its_results_are_shown(tmp_path, runs_dir):
    at = _runs_page(make_dataset_folder(tmp_path / "data", n_train=8, n_val=4))
    assert "No runs yet" in at.main.info[0].value  # the sweep section is there even before any run
    assert at.multiselect(key="sweep_points").value == [18, 14, 10, 6, 3, 0]
    assert at.button(key="stop_sweep").disabled
    at.multiselect(key="sweep_points").set_value([18, 14])
    at.checkbox(key="sweep_scratch").check()
    at.number_input(key="sweep_epochs").set_value(1)
    at.button(key="start_sweep").click().run()
    assert not at.exception, at.exception
    assert [w.value for w in at.warning] == [  # the sidebar
        "No transfer: random weights. Frozen layers compute random features; train every layer (freeze point 0) "
        "to train from scratch."
    ]
    job = JOBS.get(at.session_state["sweep_job_id"], ADMIN)
    assert job is not None and job.snapshot().kind == "sweep"

    deadline, seen = time.monotonic() + 80, set()
    while job.running and time.monotonic() < deadline:
        at.run()  # run_every fragments do not tick under AppTest: rerun by hand
        assert not at.exception, at.exception
        seen |= {p.proto.text.split(":")[0] for p in at.get("progress")}
        time.sleep(0.3)
    assert not job.running, "the sweep did not finish before the deadline"
    snap = job.snapshot()
    assert snap.status == "completed", snap.error
    assert seen & {"Point 1/3", "Point 2/3", "Point 3/3"}, seen  # the live progress showed which point ran
    at.run()
    assert not at.exception, at.exception

    summaries = RunStore(runs_dir).list()
    sweep_id = snap.sweep.sweep_id
    assert sorted(str(s.tags["point"]) for s in summaries if s.tags.get("sweep") == sweep_id) == [
        "k=14",
        "k=18",
        "scratch",
    ]
    assert at.selectbox(key="sweep_pick").value == sweep_id
    table = next(df.value for df in at.dataframe if "trainable layers" in df.value.columns)
    assert table["point"].tolist() == ["k=18", "k=14", "scratch"]
    assert table["trainable layers"].tolist() == [0, 4, 18]
    assert table["status"].tolist() == ["completed"] * 3 and table["epochs"].tolist() == [1, 1, 1]
    assert table["s/epoch"].gt(0).all() and table["best val acc"].between(0, 1).all()
    assert saved_sweep_frame(summaries, sweep_id)["run"].tolist() == table["run"].tolist()
    specs = vega_specs(at)  # the sweep's two charts and the overlaid curves, all Altair of one height
    assert [chart_title(spec) for spec in specs] == [
        "Validation accuracy (the model kept)",
        "Time per epoch",
        "Validation accuracy of every point",
        "Validation loss of every point",
    ]
    assert {spec["height"] for spec in specs} == {PLOT_HEIGHT} and not at.image
    assert any("from-scratch line" in c.value for c in at.caption)
    assert at.button(key="stop_sweep").disabled


def test_a_sweep_cannot_start_while_the_session_trains(tmp_path, runs_dir):
    import threading

    release = threading.Event()
    at = _runs_page(make_dataset_folder(tmp_path / "data", n_train=8, n_val=4))
    busy = JOBS.start(at.session_state[K.owner], "training", lambda job: release.wait(30))
    try:
        at.button(key="start_sweep").click().run()
        assert not at.exception, at.exception
        assert any("already running" in w.value for w in at.warning)
        assert "sweep_job_id" not in at.session_state
    finally:
        release.set()
        busy.thread.join(10)


def test_a_transfer_curve_runs_from_the_page_and_is_drawn_with_its_sentences(tmp_path, runs_dir):
    from dashboard.runs.transfer_curve import EPOCHS_KEY, POINTS_KEY, REPEATS_KEY, SIZE_KEY

    at = _runs_page(make_dataset_folder(tmp_path / "data", n_train=4, n_val=2))
    assert at.multiselect(key=POINTS_KEY).value == [0, 3, 6, 10, 14, 18]
    assert (at.number_input(key=SIZE_KEY).value, at.number_input(key=EPOCHS_KEY).value) == (96, 5)
    assert any(c.value.startswith("Estimated time: about ") and "66 runs at 96 px" in c.value for c in at.caption)
    at.multiselect(key=POINTS_KEY).set_value([14, 18])
    at.number_input(key=SIZE_KEY).set_value(32)
    at.number_input(key=EPOCHS_KEY).set_value(1)
    at.number_input(key=REPEATS_KEY).set_value(2).run()
    assert any("14 runs at 32 px" in c.value for c in at.caption)  # 2 x (4 + 3): kept = re-initialised at 18
    at.button(key="start_curve").click().run()
    assert not at.exception, at.exception
    job = JOBS.get(at.session_state["curve_job_id"], ADMIN)
    assert job is not None and job.snapshot().kind == "transfer curve"
    deadline, seen = time.monotonic() + 120, set()
    while job.running and time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        seen |= {p.proto.text for p in at.get("progress")}
        time.sleep(0.3)
    assert not job.running and job.snapshot().status == "completed", job.snapshot().error
    assert any(text.startswith("Transfer curve: ") and text.endswith(" of 14 runs") for text in seen), seen
    at.run()
    assert not at.exception, at.exception
    (rows,) = [
        [row for row in rows if "condition" in row]
        for spec, rows in zip(vega_specs(at), chart_rows(at))
        if chart_title(spec) == "The transfer curve on your images"
    ]
    assert sorted({row["freeze point"] for row in rows}) == [14, 18] and len(rows) == 8
    assert all(row["low"] <= row["mean"] <= row["high"] for row in rows)
    # The curve's own settings, not the controls' (which the next curve takes).
    assert any(
        c.value.startswith("Kept ImageNet layers reach") and "(2 repeat(s) at 32 px, 1 epoch(s) a run, in " in c.value
        for c in at.caption
    )
    assert RunStore(runs_dir).list() == []  # the curve's runs are not in the runs table

    # A reload (a new session) finds the saved curve, its 14 tagged runs on request, and can delete it.
    again = _runs_page(make_dataset_folder(tmp_path / "data", n_train=4, n_val=2))
    assert any(c.value.startswith("Kept ImageNet layers reach") for c in again.caption)
    shown = again.toggle(key="curve_runs_shown")
    assert shown.label == "Show this curve's 14 runs (kept with the curve, not in the runs table)"
    assert not shown.value and not [d for d in again.dataframe if "condition" in d.value.columns]  # until asked
    shown.set_value(True).run()
    (table,) = [d.value for d in again.dataframe if "condition" in d.value.columns]
    assert any(c.value.startswith("One run stands for two conditions") and "at 18, " in c.value for c in again.caption)
    assert len(table) == 14 and set(table["freeze point"]) == {14, 18} and table["validation accuracy"].notna().all()
    again.button(key="delete_curve").click().run()
    assert not again.exception, again.exception
    assert not any(c.value.startswith("Kept ImageNet layers reach") for c in again.caption)
    assert not (runs_dir / "curves").exists() or not any((runs_dir / "curves").iterdir())


def test_a_transfer_curve_past_the_class_limits_is_refused_before_it_starts(tmp_path, runs_dir, monkeypatch):
    """The curve is one job: each run keeps the class's image size, the whole curve its time limit."""
    from dashboard.runs import transfer_curve

    at = _runs_page(make_dataset_folder(tmp_path / "data", n_train=4, n_val=2))
    monkeypatch.setattr(transfer_curve, "class_limits", lambda: {"max_image_size": 64})
    at.button(key="start_curve").click().run()
    assert [w.value for w in at.warning if "image size" in w.value] == [
        "The class's largest image size is 64 px; these settings use 96 px."
    ]
    monkeypatch.setattr(transfer_curve, "class_limits", lambda: {"max_minutes": 1})
    at.button(key="start_curve").click().run()
    (refused,) = [w.value for w in at.warning if w.value.startswith("These 66 runs would take about ")]
    assert refused.endswith(
        "the class's limit is 1 min: choose fewer freeze points or repeats, or a smaller image size."
    )
    assert "curve_job_id" not in at.session_state and JOBS.running_for("", "transfer curve") is None


def test_a_sweep_past_the_class_time_limit_is_refused_before_it_starts(tmp_path, runs_dir, monkeypatch):
    """A sweep is one job: its points' estimated time together against the limit (its quota: test_ownership)."""
    from dashboard.runs import sweep

    at = _runs_page(make_dataset_folder(tmp_path / "data", n_train=4, n_val=2))
    monkeypatch.setattr(sweep, "class_limits", lambda: {"max_minutes": 0.01})
    at.button(key="start_sweep").click().run()
    assert any(" runs would take about " in w.value and "limit is 0.01 min" in w.value for w in at.warning)
    assert "sweep_job_id" not in at.session_state
