"""Describing runs for people: labels, the runs table, config differences; picking and deleting runs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dashboard.tables import (
    config_differences,
    curve_label,
    describe_run,
    freeze_text,
    local_time,
    runs_dataframe,
    weights_text,
)
from tests.conftest import ROOT
from tests.helpers import TINY_CONFIG, make_dataset_folder
from tlcore.config import FineTuneConfig, TrainConfig, flatten_config
from tlcore.data import scan
from tlcore.history import EpochRow, History
from tlcore.records import DatasetFacts, RunRecord
from tlcore.run_folder import MODEL_FILE, RUN_FILE
from tlcore.runs import RunStore, RunSummary, read_run_json, runs_with_models

TINY = TINY_CONFIG.replace(epochs=2)
TUNED = TINY.replace(weights="/data/my.weights.h5", freeze_at=14, epochs=3, fine_tune=FineTuneConfig(10, 1))


@pytest.fixture
def utc_plus_2(monkeypatch):
    """Local time is UTC+2 (a POSIX TZ string: needs no time zone database)."""
    monkeypatch.setenv("TZ", "TLL-2")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _epochs(*val_accuracies: float) -> History:
    return History(
        tuple(
            EpochRow(
                phase=1,
                epoch=i,
                freeze_at=18,
                learning_rate=1e-3,
                route="cached",
                loss=0.7,
                accuracy=0.5,
                val_loss=0.7,
                val_accuracy=acc,
                seconds=6.0,
                batches=2,
                partial=False,
            )
            for i, acc in enumerate(val_accuracies, start=1)
        )
    )


def _summary(run_id: str, config: TrainConfig | None, status: str = "completed", accuracies=(), **fields) -> RunSummary:
    history = _epochs(*accuracies)
    record = RunRecord(
        run_id=run_id,
        status=status,
        created="2024-05-01T12:03:00+00:00",
        config=config,
        seconds=12.5 if history else None,
        history=history,
        run_dir=Path(f"/runs/{run_id}"),
        **fields,
    )
    return RunSummary(run_dir=Path(f"/runs/{run_id}"), record=record, disk_bytes=3_000_000)


def test_short_texts_for_time_weights_and_freeze_point(utc_plus_2):
    assert local_time("2024-05-01T12:03:00+00:00") == "2024-05-01 14:03"
    assert local_time("yesterday") == "yesterday" and local_time("") == "?" and local_time(None) == "?"
    assert weights_text("none") == "none (random)"
    assert weights_text("imagenet") == "imagenet"
    assert weights_text("/data/my.weights.h5") == "my.weights.h5"
    assert (freeze_text(TINY), freeze_text(TUNED), freeze_text(None)) == ("18", "14→10", "?")


def test_describe_run_reads_the_same_from_a_summary_and_from_a_record(utc_plus_2):
    summary = _summary("20240501-120300-a1b2c3", TUNED, accuracies=(0.5, 0.875))
    expected = "2024-05-01 14:03 · a1b2c3 · pretrained, freeze 14→10 · val acc 88% · completed"
    assert describe_run(summary) == expected
    assert describe_run(summary.record) == expected

    fresh = _summary("20240501-120300-d4e5f6", TINY, status="running")
    # Random weights with frozen layers are not "from scratch": that word is kept for every layer training.
    assert describe_run(fresh) == "2024-05-01 14:03 · d4e5f6 · random, freeze 18 · val acc — · running"
    broken = RunRecord.from_dict({"run_id": "20240501-120300-0bad00", "status": "failed", "config": {"freeze_at": "x"}})
    assert describe_run(broken) == "? · 0bad00 · val acc — · failed"  # an unreadable config is left out


def test_curve_labels_are_short():
    assert curve_label(_summary("20240501-120300-a1b2c3", TUNED)) == "a1b2c3: pretrained, freeze 14→10"
    scratch = TINY.replace(freeze_at=0)  # what the sweep's baseline trains
    assert curve_label(_summary("20240501-120300-a1b2c3", scratch)) == "a1b2c3: from scratch, freeze 0"
    assert curve_label(_summary("20240501-120300-a1b2c3", TINY)) == "a1b2c3: random, freeze 18"
    assert curve_label(_summary("20240501-120300-a1b2c3", None)) == "a1b2c3"


def test_the_runs_table_has_one_formatted_row_per_run(utc_plus_2):
    done = _summary(
        "20240501-120300-a1b2c3",
        TUNED,
        accuracies=(0.75, 0.5),
        reason="stopped by the user during epoch 3",
        status="stopped",
        tags={"lr": "high"},
    )
    unreadable = _summary("20240501-110000-0bad00", None, status="interrupted")
    table = runs_dataframe([done, unreadable])
    assert list(table.columns) == [
        "date",
        "status",
        "freeze",
        "weights",
        "px",
        "epochs",
        "val acc",
        "best val acc",
        "time (s)",
        "MB",
        "tags",
        "note",
        "run",
    ]
    first, second = table.to_dict("records")
    assert first == {
        "date": "2024-05-01 14:03",
        "status": "■ stopped",
        "freeze": "14→10",
        "weights": "my.weights.h5",
        "px": 32,
        "epochs": "2/4",
        "val acc": 0.5,
        "best val acc": 0.75,
        "time (s)": 12.5,
        "MB": 3.0,
        "tags": "lr=high",
        "note": "stopped by the user during epoch 3",
        "run": "20240501-120300-a1b2c3",
    }
    assert (second["status"], second["freeze"], second["weights"], second["epochs"]) == (
        "⚠ interrupted",
        "?",
        "?",
        "0/?",
    )
    assert pd.isna(second["px"]) and pd.isna(second["val acc"])


def test_empty_tags_and_notes_columns_are_left_out():
    table = runs_dataframe([_summary("20240501-120300-a1b2c3", TINY)])
    assert "tags" not in table.columns and "note" not in table.columns
    assert table["status"].tolist() == ["✓ completed"] and table["epochs"].tolist() == ["0/2"]
    assert runs_dataframe([]).empty


def test_epochs_count_to_the_plan_the_run_followed_on_its_data():
    """A head on cached features runs until it has taken min_steps steps: 90 images in batches of 23 are 4 steps
    an epoch, so 5 epochs asked become 13 for 50 steps; the phase after it keeps its 3."""
    counts = {"train": {"a": 45, "b": 45}, "validation": {"a": 25, "b": 25}}
    head_first = TINY.replace(batch_size=32, epochs=5, min_steps=50, fine_tune=FineTuneConfig(14, 3))
    ran = _summary("20240501-120300-a1b2c3", head_first, dataset=DatasetFacts(counts=counts), routes=["cached"])
    end_to_end = _summary(
        "20240501-120300-d4e5f6", head_first, dataset=DatasetFacts(counts=counts), routes=["end_to_end"]
    )
    not_started = _summary("20240501-120300-0c0c0c", head_first, dataset=DatasetFacts(counts=counts))
    assert (ran.planned_epochs, end_to_end.planned_epochs, not_started.planned_epochs) == (16, 8, 8)
    assert runs_dataframe([ran])["epochs"].tolist() == ["0/16"]


def test_flatten_config_uses_dotted_names():
    assert flatten_config({"head": {"dense": [8], "dropout": 0.0}, "fine_tune": None, "seed": 3}) == {
        "head.dense": [8],
        "head.dropout": 0.0,
        "fine_tune": None,
        "seed": 3,
    }
    assert flatten_config({"a": {"b": {"c": 1}}}, prefix="x.") == {"x.a.b.c": 1}


def test_config_differences_keep_only_the_settings_that_differ():
    a = _summary("20240501-120300-aaaaaa", TINY, dataset=DatasetFacts(root="/data/pets")).record
    b = _summary("20240501-120300-bbbbbb", TUNED, dataset=DatasetFacts(root="/data/pets")).record
    table = config_differences([a, b])
    assert list(table.columns) == ["20240501-120300-aaaaaa", "20240501-120300-bbbbbb"]
    assert table.index.name == "setting"
    assert list(table.index) == [
        "epochs",
        "fine_tune.epochs",
        "fine_tune.freeze_at",
        "fine_tune.learning_rate",
        "freeze_at",
        "weights",
    ]
    assert table.loc["freeze_at"].tolist() == ["18", "14"]
    assert table.loc["fine_tune.freeze_at"].tolist() == ["—", "10"]  # a run without fine-tuning lacks the setting
    assert table.loc["weights"].tolist() == ["none", "/data/my.weights.h5"]

    elsewhere = _summary("20240501-120300-cccccc", TINY, dataset=DatasetFacts(root="/data/other")).record
    assert config_differences([a, elsewhere]).loc["dataset"].tolist() == ["/data/pets", "/data/other"]
    assert config_differences([a, dataclasses.replace(a, run_id="20240501-120300-copy00")]).empty


def test_an_uploaded_run_json_must_be_an_object_with_a_class_names_list():
    assert read_run_json(b'{"class_names": ["cats", "dogs"], "status": "completed"}').class_names == ["cats", "dogs"]
    no_names = read_run_json('{"status": "completed"}')  # no names: the user types them
    assert no_names.class_names is None and no_names.status == "completed"
    for bad in (b"[1, 2]", b'{"class_names": "cats"}', b'{"class_names": [1, 2]}', b"not json", b"\xff\xfe"):
        with pytest.raises(ValueError, match=r"Expected a run.json object with a class_names list"):
            read_run_json(bad)


@pytest.fixture(scope="module")
def info(tmp_path_factory):
    return scan(make_dataset_folder(tmp_path_factory.mktemp("runs-table") / "d", n_train=2, n_val=2))


def test_runs_with_models_lists_runs_with_a_saved_model_and_the_one_just_trained(info, tmp_path):
    store = RunStore(tmp_path / "runs")
    with_model, without_model = store.create(TINY, info), store.create(TINY, info)
    (with_model.run_dir / MODEL_FILE).write_bytes(b"x")
    assert list(runs_with_models(store)) == [str(with_model.run_dir.resolve())]
    assert runs_with_models(store)[str(with_model.run_dir.resolve())].class_names == ["cats", "dogs"]

    elsewhere = RunStore(tmp_path / "other-runs").create(TINY, info)  # trained into another runs folder
    (elsewhere.run_dir / MODEL_FILE).write_bytes(b"x")
    records = runs_with_models(store, elsewhere.run_dir)
    assert list(records) == [str(elsewhere.run_dir.resolve()), str(with_model.run_dir.resolve())]
    assert records[str(elsewhere.run_dir.resolve())].run_dir == elsewhere.run_dir.resolve()
    assert list(runs_with_models(store, with_model.run_dir)) == [str(with_model.run_dir.resolve())]  # no duplicate
    assert list(runs_with_models(store, without_model.run_dir)) == [str(with_model.run_dir.resolve())]
    (elsewhere.run_dir / RUN_FILE).write_text("{broken")
    assert list(runs_with_models(store, elsewhere.run_dir)) == [str(with_model.run_dir.resolve())]


def test_delete_finished_keeps_running_runs_and_counts_gone_ones_as_deleted(info, tmp_path):
    store = RunStore(tmp_path / "runs")
    alive = store.create(TINY, info)  # this process is alive: it reads "running"
    done = store.create(TINY, info)
    done.finish("completed")
    dead = store.create(TINY, info)  # "running", but its process is gone: interrupted
    pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, cwd=ROOT
    )
    record = json.loads((dead.run_dir / RUN_FILE).read_text())
    (dead.run_dir / RUN_FILE).write_text(json.dumps({**record, "pid": int(pid.stdout)}))

    deleted, kept = store.delete_finished([alive.run_id, done.run_id, dead.run_id, "20000101-000000-gone00"])
    assert deleted == [done.run_id, dead.run_id, "20000101-000000-gone00"]
    assert kept == [alive.run_id]
    assert [s.run_id for s in store.list()] == [alive.run_id]
