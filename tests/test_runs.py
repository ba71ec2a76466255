"""Run store: round trip, partial and interrupted runs, atomic writes, save failures."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from tests.helpers import TINY_CONFIG, history_row
from tlcore import run_folder
from tlcore.data import scan
from tlcore.progress import BatchEnd
from tlcore.recording import Run
from tlcore.records import RunRecord
from tlcore.run_folder import HISTORY_FILE, MODEL_FILE, RUN_FILE, read_history
from tlcore.runs import RunStore
from tlcore.tf.model import load_run_model
from tlcore.tf.training import TENSORBOARD_DIR, prepare_data, train_and_record

TINY = TINY_CONFIG.replace(epochs=2, seed=3)


@pytest.fixture(scope="module")
def info(tmp_path_factory):
    from tests.helpers import make_dataset_folder

    return scan(make_dataset_folder(tmp_path_factory.mktemp("runs") / "d", n_train=8, n_val=4))


@pytest.fixture(scope="module")
def data(info):
    return prepare_data(info, 32)


def test_run_round_trip(tmp_path, info, data):
    store = RunStore(tmp_path / "runs")
    result, run = train_and_record(TINY, info, store, data=data, tags={"sweep": "s1"})
    assert sorted(p.name for p in run.run_dir.iterdir()) == [HISTORY_FILE, MODEL_FILE, RUN_FILE, TENSORBOARD_DIR]
    record = store.load(run.run_id)
    assert record.status == "completed" and record.run_id == run.run_id and record.run_dir == run.run_dir
    assert record.config == TINY
    assert record.class_names == ["cats", "dogs"]
    assert record.dataset.fingerprint == info.fingerprint()
    assert record.dataset.counts == {"train": {"cats": 8, "dogs": 8}, "validation": {"cats": 4, "dogs": 4}}
    assert record.validation_files is not None and record.final is not None and record.seconds is not None
    assert len(record.validation_files) == 8 and all(f.startswith("validation/") for f in record.validation_files)
    assert {"tensorflow", "keras", "numpy", "python"} <= set(record.versions)
    assert record.tags == {"sweep": "s1"}
    assert record.routes == ["cached"] and record.model_saved is True
    assert record.final["val_accuracy"] == pytest.approx(result.history[-1].val_accuracy)
    assert record.final == result.final == record.history.final_metrics()
    assert record.epochs_done == 2 and record.last_epoch == record.history.final
    assert record.seconds > 0 and record.finished
    assert len(record.history) == 2
    for saved, original in zip(record.history, result.history):
        assert saved.epoch == original.epoch
        assert saved.val_loss == pytest.approx(original.val_loss)
        assert saved.partial is False and saved.route == "cached"
    # The saved model predicts what the trained one does.
    model = load_run_model(run.run_dir)
    x = np.asarray(data.validation.images[:4], dtype="float32")
    np.testing.assert_allclose(model.predict_on_batch(x), result.model.predict_on_batch(x), atol=1e-5)

    (summary,) = store.list()
    assert summary.run_id == run.run_id and summary.status == "completed"
    assert summary.epochs_done == 2 and summary.config == TINY and summary.tags == {"sweep": "s1"}
    assert summary.disk_bytes == sum(
        p.stat().st_size for p in run.run_dir.rglob("*") if p.is_file()
    )  # TensorBoard logs too
    store.delete(run.run_id)
    assert store.list() == [] and not run.run_dir.exists()


def test_stopped_run_is_saved_with_its_partial_epoch(tmp_path, info, data):
    flag = threading.Event()

    def stop_after_first_batch(event):
        if isinstance(event, BatchEnd):
            flag.set()

    _result, run = train_and_record(
        TINY, info, RunStore(tmp_path), progress=stop_after_first_batch, stop=flag, data=data
    )
    record = RunStore(tmp_path).load(run.run_id)
    assert record.status == "stopped" and "stopped by the user" in record.reason
    assert [r.partial for r in record.history] == [True]
    assert (run.run_dir / MODEL_FILE).is_file()


def test_a_run_from_a_relative_dataset_path_records_where_it_is(tmp_path, info, monkeypatch):
    """`--data sample_data` from the repository: the record must still find the images from anywhere."""
    monkeypatch.chdir(info.root.parent)
    relative = scan(info.root.name)
    assert not relative.root.is_absolute()
    record = RunStore(tmp_path).create(TINY, relative).record
    assert record.dataset.root == str(info.root.resolve())


def test_run_of_a_dead_process_reads_interrupted_with_its_history(tmp_path, info):
    store = RunStore(tmp_path)
    run = store.create(TINY, info)
    run.add_epoch(history_row())
    assert store.load(run.run_id).status == "running"  # this process is alive
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = json.loads((run.run_dir / RUN_FILE).read_text())
    record["pid"] = int(dead.stdout)
    (run.run_dir / RUN_FILE).write_text(json.dumps(record))
    loaded = store.load(run.run_id)
    assert loaded.status == "interrupted"
    assert [r.epoch for r in loaded.history] == [1]
    assert store.list()[0].status == "interrupted"


def test_stale_heartbeat_from_another_host_reads_interrupted(tmp_path, info):
    run = RunStore(tmp_path).create(TINY, info)
    record = RunRecord.from_json((run.run_dir / RUN_FILE).read_text())
    record.host, record.heartbeat = "elsewhere", record.heartbeat - run_folder.STALE_AFTER_S - 1
    assert run_folder.effective_status(record) == "interrupted"
    record.heartbeat += 10
    assert run_folder.effective_status(record) == "running"


def test_model_save_failure_keeps_the_result(tmp_path, info, data, monkeypatch):
    def disk_full(self, model):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Run, "save_model", disk_full)
    result, run = train_and_record(TINY.replace(epochs=1), info, RunStore(tmp_path), data=data)
    assert result.status == "completed" and result.model is not None
    assert "could not be saved" in result.save_error and "No space left" in result.save_error
    record = RunStore(tmp_path).load(run.run_id)
    assert record.model_saved is False and "No space left" in record.reason
    assert len(read_history(run.run_dir)) == 1


def test_missing_model_is_a_clear_error(tmp_path, info):
    run = RunStore(tmp_path).create(TINY, info)
    with pytest.raises(FileNotFoundError, match="has no saved model"):
        load_run_model(run.run_dir)


def test_runs_dir_from_environment(runs_dir):
    assert RunStore().root == runs_dir
