"""Faults while training: the disk failing, the process killed, two sessions at once."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import tlcore.recording as recording
from dashboard.state import SOURCE_FOLDER, WEIGHTS_SCRATCH, K
from tests.conftest import ROOT
from tests.helpers import TINY_CONFIG, long_cli_train_args, make_dataset_folder, tiny_length, train_status
from tlcore.access import ADMIN
from tlcore.data import scan
from tlcore.jobs import JOBS, QUEUED
from tlcore.recording import Run
from tlcore.records import INTERRUPTED
from tlcore.run_folder import read_history
from tlcore.runs import RunStore

TINY = TINY_CONFIG.replace(epochs=3)


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture(scope="module")
def info(tmp_path_factory):
    return scan(make_dataset_folder(tmp_path_factory.mktemp("faults") / "data", n_train=8, n_val=4, size=32))


def test_the_disk_filling_up_mid_run_loses_neither_the_run_nor_the_model(info, tmp_path, monkeypatch):
    from tlcore.progress import EpochEnd
    from tlcore.tf.training import train_and_record

    real_atomic_write = recording.atomic_write
    full = threading.Event()

    def atomic_write(path, data):
        if full.is_set():
            _disk_full()
        real_atomic_write(path, data)

    def fill_the_disk_after_epoch_one(event):
        if isinstance(event, EpochEnd):
            full.set()

    monkeypatch.setattr(recording, "atomic_write", atomic_write)
    monkeypatch.setattr(Run, "save_model", _disk_full)
    result, run = train_and_record(TINY, info, RunStore(tmp_path), progress=fill_the_disk_after_epoch_one)

    assert result.status == "completed" and [r.epoch for r in result.history] == [1, 2, 3]
    assert result.model is not None
    assert result.save_error == f"The model could not be saved to {run.run_dir}: No space left on device"
    record = RunStore(tmp_path).load(run.run_id)
    # The record stopped where the disk did; it must not claim to be running forever.
    assert record.status == INTERRUPTED
    assert [r.epoch for r in record.history] == [1]


def test_the_train_page_offers_the_model_from_memory_when_the_disk_refuses_it(runs_dir, tmp_path, monkeypatch):
    from tlcore.tf.model import load_model

    monkeypatch.setattr(Run, "save_model", _disk_full)
    at = _train_page(make_dataset_folder(tmp_path / "data", n_train=8, n_val=4, size=32))
    at.button(key="start_training").click().run()
    job = JOBS.get(at.session_state[K.job_id], ADMIN)
    _rerun_until(at, lambda: not job.running and "completed" in train_status(at))

    assert job.snapshot().status == "completed"
    warnings = [w.value for w in at.main.warning]
    assert any("The model could not be saved to" in w and "No space left on device" in w for w in warnings)
    assert any("only in memory: download it now" in e.value for e in at.main.error)
    assert [b.label for b in at.download_button] == ["Download model (.keras)", "Download history (CSV)"]
    assert not (Path(job.snapshot().run_dir) / "model.keras").exists()
    # What the button serves is a real model: it reloads in safe mode with the run's two classes.
    offered = tmp_path / "offered.keras"
    offered.write_bytes(job.model_bytes)
    assert load_model(str(offered)).output_shape == (None, 2)


def test_a_run_killed_mid_epoch_reads_interrupted_with_its_finished_epochs(tmp_path, monkeypatch):
    data = make_dataset_folder(tmp_path / "data", n_train=24, n_val=4, size=32)
    runs_dir = tmp_path / "runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    trainer = subprocess.Popen(
        [sys.executable, "-m", "tlcore", *long_cli_train_args(data, runs_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: trainer.stderr.read(64), "")), daemon=True)
    reader.start()
    in_epoch_two = re.compile(r"^epoch 1/50: loss .*\n", re.MULTILINE)  # epoch 1's line: epoch 2 is under way
    try:
        deadline = time.monotonic() + 180
        while not in_epoch_two.search("".join(seen)):
            assert trainer.poll() is None, "".join(seen)[-2000:]
            assert time.monotonic() < deadline, "epoch 1 did not end within 180 s"
            time.sleep(0.05)
        trainer.send_signal(signal.SIGKILL)  # in epoch 2: after epoch 1's line was written
    finally:
        trainer.kill()
        trainer.wait(30)
    reader.join(10)
    assert trainer.returncode == -signal.SIGKILL

    (summary,) = RunStore(runs_dir).list()
    record = RunStore(runs_dir).load(summary.run_id)
    assert record.status == INTERRUPTED
    history = read_history(summary.run_dir)
    finished_epochs = len(re.findall(r"epoch \d+/50: loss", "".join(seen)))
    assert len(history) >= 1
    # Only whole epochs are on disk, in order; at most one more than the lines printed (killed between the two).
    assert [r.epoch for r in history] == list(range(1, len(history) + 1))
    assert not any(r.partial for r in history)
    assert finished_epochs <= len(history) <= finished_epochs + 1
    assert not (summary.run_dir / "model.keras").exists()
    assert not list(summary.run_dir.glob(".*.tmp*"))  # no half-written file left to trip a reader

    monkeypatch.setenv("TLLAB_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).switch_page("pages/runs.py").run()
    assert not at.exception
    (row,) = at.dataframe[0].value.to_dict("records")
    assert row["run"] == summary.run_id and row["status"].endswith("interrupted")
    assert row["epochs"] == f"{len(history)}/50"


def test_two_sessions_training_at_once_both_finish_the_second_after_waiting(runs_dir, tmp_path):
    dataset = make_dataset_folder(tmp_path / "data", n_train=8, n_val=4, size=32)
    first, second = _train_page(dataset, epochs=4), _train_page(dataset, epochs=2)
    assert first.session_state[K.owner] != second.session_state[K.owner]
    first.button(key="start_training").click().run()
    first_job = JOBS.get(first.session_state[K.job_id], ADMIN)
    second.button(key="start_training").click().run()
    second_job = JOBS.get(second.session_state[K.job_id], ADMIN)
    try:
        assert first_job is not second_job and first_job.running
        _rerun_until(second, lambda: second_job.snapshot().stage == QUEUED or not first_job.running)
        assert first_job.running, "the first run ended before the second could be seen waiting"
        assert "waiting" in train_status(second)
        assert "Waiting for 1 run from other sessions" in train_status(second)
        _rerun_until(second, lambda: not second_job.running, deadline_s=240)
        _rerun_until(first, lambda: not first_job.running)
    finally:
        first_job.stop()
        second_job.stop()
    assert first_job.snapshot().status == second_job.snapshot().status == "completed"
    first_finished = first_job.snapshot().finished
    assert first_finished is not None
    assert second_job.snapshot().started >= first_finished  # it waited its turn
    assert [len(job.snapshot().history) for job in (first_job, second_job)] == [4, 2]
    assert sorted(s.status for s in RunStore(runs_dir).list()) == ["completed", "completed"]


def _train_page(dataset: Path, epochs: int = 2) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    state = {
        K.source: SOURCE_FOLDER,
        K.folder: str(dataset),
        K.weights_choice: WEIGHTS_SCRATCH,
        K.image_size: 32,
        K.epochs: epochs,
        K.batch_size: 8,
        K.dense: "8",
        **tiny_length(),
    }
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/train.py")
    return at.run()


def _rerun_until(at: AppTest, condition, deadline_s: float = 120.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        at.run()  # run_every fragments do not tick under AppTest
        assert not at.exception, at.exception
        if condition():
            at.run()
            return
        time.sleep(0.2)
    pytest.fail("the condition was not met before the deadline")
