"""Train page under AppTest: a tiny run started from the page completes in the background."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bench._common import wait_for
from dashboard.state import K
from tests.conftest import ROOT
from tests.helpers import chart_rows, open_on_tiny_folder, train_status
from tlcore.access import ADMIN
from tlcore.jobs import JOBS


def _app(dataset: Path, **state) -> AppTest:
    return open_on_tiny_folder("train", dataset, **{K.epochs: 2, **state})


@pytest.fixture
def slow_epochs(monkeypatch):
    """Cached epochs of this tiny set take about a millisecond: 30 of them would end before the test clicks
    Stop. A pause in every compiled call makes the run last several seconds (Stop still ends it in one call)."""
    from tlcore.tf import compiled_epochs

    run_call = compiled_epochs._PhaseFunction.__call__

    def slowly(self, *args, **kwargs):
        time.sleep(0.3)
        return run_call(self, *args, **kwargs)

    monkeypatch.setattr(compiled_epochs._PhaseFunction, "__call__", slowly)


def _wait_for(at: AppTest, condition, deadline_s: float = 120.0) -> None:
    def shown():
        at.run()  # run_every fragments do not tick under AppTest: rerun by hand
        assert not at.exception, at.exception
        return condition()

    wait_for(shown, deadline_s, "the page to show it", poll_s=0.2)


def test_train_page_shows_the_estimate_and_path(tiny_dataset, runs_dir):
    at = _app(tiny_dataset)
    assert not at.exception
    assert at.title[0].value == "Train"
    text = " ".join(m.value for m in at.markdown)
    assert "24 training / 12 validation images" in text and "route: **cached features**" in text
    assert "2 epoch(s) in batches of 8" in text  # TINY_LENGTH: exactly the epochs and batch size set
    assert any("Estimated time on this machine" in c.value for c in at.caption)


def test_a_tiny_run_started_from_the_page_completes(tiny_dataset, runs_dir):
    at = _app(tiny_dataset)
    at.button(key="start_training").click().run()
    assert not at.exception
    job = JOBS.get(at.session_state[K.job_id], ADMIN)
    assert job is not None
    _wait_for(at, lambda: not job.running and "completed" in train_status(at))
    history = job.snapshot().history  # what the page's curves are drawn from
    assert [row.epoch for row in history] == [1, 2]
    assert "completed" in train_status(at) and "epoch 2 of 2" in train_status(at)
    # 12 validation images: the page says what one image is worth, and draws chance on the accuracy chart.
    assert any("one image moves validation accuracy by 8.3%" in w.value for w in at.warning)
    assert any(row.get("label") == "chance 50%" for rows in chart_rows(at) for row in rows)
    assert all(0.0 <= row.val_accuracy <= 1.0 for row in history)
    run_dir = Path(at.session_state[K.last_run_dir])
    assert run_dir.parent == runs_dir and (run_dir / "model.keras").is_file()
    assert "completed" in train_status(at)
    labels = [b.label for b in at.download_button]
    assert labels == ["Download model (.keras)", "Download history (CSV)"]


def test_a_second_run_with_another_head_says_its_features_were_reused(tiny_dataset, runs_dir):
    at = _app(tiny_dataset, **{K.epochs: 1})
    for dense in ("8", "16"):  # the second run changes only the head
        at.session_state[K.dense] = dense
        at.button(key="start_training").click().run()
        job = JOBS.get(at.session_state[K.job_id], ADMIN)
        _wait_for(at, lambda j=job: not j.running and "completed" in train_status(at))
    captions = [c.value for c in at.caption if "reused" in c.value]
    assert len(captions) == 1 and "Frozen features **reused** from the feature store (computed 20" in captions[0]
    # Another session's estimate knows these features are stored.
    other = _app(tiny_dataset, **{K.epochs: 1, K.dense: "4"})
    assert any("the frozen features are already in the feature store" in c.value for c in other.caption)
    assert not any(bar.text.startswith("Computing frozen features") for bar in at.progress)


def test_start_is_disabled_while_a_run_is_running_and_stop_ends_it(tiny_dataset, runs_dir, slow_epochs):
    at = _app(tiny_dataset, **{K.epochs: 30})
    at.button(key="start_training").click().run()
    job = JOBS.get(at.session_state[K.job_id], ADMIN)
    try:
        assert job.running
        assert at.button(key="start_training").disabled  # one run at a time: Start waits for Stop or the end
        assert at.session_state[K.job_id] == job.id
        _wait_for(at, lambda: len(job.snapshot().history) >= 2)
        at.button(key="stop_training").click().run()
        _wait_for(at, lambda: not job.running)
        assert job.snapshot().status == "stopped"
        at.run()  # the page as it is now the job has ended (the last wait may have drawn it still running)
        # The bars say where it stopped: decoding and extraction done, training part of the way.
        bars = {bar.text.split(":")[0]: bar.value for bar in at.progress}
        assert bars["Decoding images"] == bars["Computing frozen features (once)"] == 100
        stopped = next(bar for bar in at.progress if bar.text.startswith("Training stopped at epoch"))
        assert "/30, batch" in stopped.text
        assert 0 < stopped.value < 100
    finally:
        job.stop()


def test_a_reloaded_tab_gets_its_settings_back_and_finds_its_running_job(tiny_dataset, runs_dir, slow_epochs):
    first = _app(tiny_dataset, **{K.epochs: 30})
    first.button(key="start_training").click().run()
    job = JOBS.get(first.session_state[K.job_id], ADMIN)
    try:
        assert job.running
        # A reload is a new session with nothing in it; the URL still carries the owner.
        reloaded = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        reloaded.query_params["owner"] = first.query_params["owner"]
        reloaded.run()
        # The dataset, image size and every setting come back from the server, not from the URL.
        for key in (K.source, K.folder, K.weights_choice, K.image_size, K.batch_size, K.dense, K.epochs, K.min_steps):
            assert reloaded.session_state[key] == first.session_state[key], key
        reloaded.switch_page("pages/train.py").run()
        assert not reloaded.exception
        assert reloaded.session_state[K.job_id] == job.id
        assert not [i for i in reloaded.info if "current settings differ" in i.value]  # the same settings
        assert "running" in train_status(reloaded)
        # The header describes the run it re-attached to, from the job's own config ...
        header = next(m.value for m in reloaded.markdown if m.value.startswith("This run:"))
        assert "at 32 px" in header and "freeze point **18**" in header and "30 epoch(s)" in header
        assert "weights **random weights" in header and "route: **cached features**" in header
        # ... and says in the page's words how this session's settings (epochs changed since) differ from it.
        reloaded.session_state[K.epochs] = 4
        reloaded.run()
        differ = next(i.value for i in reloaded.info if "current settings differ" in i.value)
        assert "epochs: 4 (this run: 30)" in differ and "4 epoch(s)" in differ and "about" in differ
        reloaded.button(key="stop_training").click().run()
        _wait_for(reloaded, lambda: not job.running)
        assert job.snapshot().status == "stopped"
    finally:
        job.stop()


def test_early_stopping_on_a_completed_run_is_a_note_and_a_lost_model_a_warning():
    """A run that early stopping ended went well: no yellow box. A model that could not be saved is one."""

    def page() -> None:
        from dashboard.train.live_view import notes
        from tlcore.jobs import Snapshot

        stopped_early = "early stopping: no val_loss improvement for 2 epochs (phase 1 ended after epoch 5)"
        notes(Snapshot("a", "me", "train", status="completed", reason=stopped_early))
        notes(Snapshot("b", "me", "train", status="completed", reason="The model could not be saved to /r: disk full"))

    at = AppTest.from_function(page).run()
    assert not at.exception, at.exception
    assert [c.value for c in at.caption] == [
        "Early stopping: no val_loss improvement for 2 epochs (phase 1 ended after epoch 5)."
    ]
    assert [w.value for w in at.warning] == ["The model could not be saved to /r: disk full"]
