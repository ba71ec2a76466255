"""Typed run records: run.json and history.csv read and written in one place, the figures computed once.

The fixtures are files written by the version before records were typed (a
two-phase run of the tiny test config, then a run stopped in its first
epoch), copied here byte for byte: new code must read them, and write the
same shape back, so that older code and the Runs page read new files.
"""

from __future__ import annotations

import json
import math

import pytest

from dashboard.tables import runs_dataframe, saved_sweep_frame
from tests.helpers import history_row, make_dataset_folder
from tlcore.config import FineTuneConfig, TrainConfig
from tlcore.data import scan
from tlcore.history import HISTORY_FIELDS, EpochRow, History
from tlcore.jobs import Snapshot
from tlcore.records import RunRecord
from tlcore.run_folder import HISTORY_FILE, RUN_FILE, read_history
from tlcore.runs import RunStore

OLD_RUN_JSON = """{
  "run_id": "20261201-001516-50c24d",
  "status": "completed",
  "reason": "",
  "created": "2026-12-01T00:15:16+00:00",
  "pid": 18336,
  "host": "vm",
  "config": {
    "backbone": "vgg16",
    "weights": "none",
    "image_size": 32,
    "batch_size": 8,
    "epochs": 1,
    "optimizer": "adam",
    "learning_rate": 0.001,
    "freeze_at": 18,
    "head": {
      "pooling": "avg",
      "dense": [
        8
      ],
      "dropout": 0.0,
      "output": "softmax"
    },
    "augment": {
      "enabled": false,
      "flip": true,
      "rotation": 0.1,
      "zoom": 0.1,
      "translation": 0.1,
      "contrast": 0.1
    },
    "fine_tune": {
      "freeze_at": 17,
      "epochs": 1,
      "learning_rate": 0.0001
    },
    "seed": 1337,
    "validation_split": 0.2,
    "cache_features": true
  },
  "class_names": [
    "cats",
    "dogs"
  ],
  "dataset": {
    "root": "/tmp/rec_fx/data",
    "fingerprint": "fe8268a4206d4041",
    "counts": {
      "train": {
        "cats": 8,
        "dogs": 8
      },
      "validation": {
        "cats": 4,
        "dogs": 4
      }
    },
    "skipped": 0
  },
  "validation_files": [
    "validation/cats/cats_000.png",
    "validation/cats/cats_001.png",
    "validation/cats/cats_002.png",
    "validation/cats/cats_003.png",
    "validation/dogs/dogs_000.png",
    "validation/dogs/dogs_001.png",
    "validation/dogs/dogs_002.png",
    "validation/dogs/dogs_003.png"
  ],
  "versions": {
    "python": "3.11.7",
    "tensorflow": "2.21.0",
    "keras": "3.15.1",
    "numpy": "2.4.6",
    "pillow": "13.0.0"
  },
  "tags": {
    "sweep": "s1",
    "point": "k=18"
  },
  "epochs_done": 2,
  "heartbeat": 1796084119.4995897,
  "paths": [
    "cached",
    "cached"
  ],
  "last_epoch": {
    "phase": 2,
    "epoch": 2,
    "freeze_at": 17,
    "learning_rate": 0.0001,
    "path": "cached",
    "loss": 0.6936656534671783,
    "accuracy": 0.5,
    "val_loss": 0.6934061646461487,
    "val_accuracy": 0.5,
    "seconds": 0.5070308399999703,
    "batches": 2,
    "partial": false
  },
  "final": {
    "loss": 0.6936656534671783,
    "accuracy": 0.5,
    "val_loss": 0.6934061646461487,
    "val_accuracy": 0.5,
    "best_val_accuracy": 0.5
  },
  "seconds": 2.58410396499994,
  "extract_seconds": 1.0956433319997814,
  "train_seconds": 0.950711054999374,
  "model_saved": true,
  "finished": "2026-12-01T00:15:19+00:00"
}"""

OLD_HISTORY_CSV = (
    "phase,epoch,freeze_at,learning_rate,path,loss,accuracy,val_loss,val_accuracy,seconds,batches,partial\r\n"
    "1,1,18,0.001,cached,0.698362410068512,0.5,0.6934866905212402,0.5,0.4245274239997343,2,False\r\n"
    "2,2,17,0.0001,cached,0.6936656534671783,0.5,0.6934061646461487,0.5,0.5070308399999703,2,False\r\n"
)

OLD_STOPPED_HISTORY_CSV = (
    "phase,epoch,freeze_at,learning_rate,path,loss,accuracy,val_loss,val_accuracy,seconds,batches,partial\r\n"
    "1,1,18,0.001,cached,0.7104320526123047,0.375,0.694277286529541,0.5,0.7286287679999077,1,True\r\n"
)

RUN_JSON_KEYS_AT_START = [
    "run_id",
    "status",
    "reason",
    "created",
    "pid",
    "host",
    "config",
    "class_names",
    "dataset",
    "validation_files",
    "versions",
    "tags",
    "epochs_done",
    "heartbeat",
]
# This version adds the training files beside the validation files (explained by examples: tlcore.neighbours).
RUN_JSON_KEYS_NOW = [*RUN_JSON_KEYS_AT_START[:10], "train_files", *RUN_JSON_KEYS_AT_START[10:]]


def routes_renamed(written: dict) -> dict:
    """An older run.json as this version writes it back: the routes under \"routes\" (read from \"paths\")."""
    return {("routes" if key == "paths" else key): value for key, value in written.items()}


def _row(
    epoch: int, val_accuracy: float, seconds: float = 1.0, phase: int = 1, partial: bool = False, val_loss: float = 0.5
) -> EpochRow:
    return EpochRow(
        phase=phase,
        epoch=epoch,
        freeze_at=18 if phase == 1 else 14,
        learning_rate=1e-3,
        route="cached",
        loss=0.6,
        accuracy=0.7,
        val_loss=val_loss,
        val_accuracy=val_accuracy,
        seconds=seconds,
        batches=4,
        partial=partial,
    )


# --- reading what the previous version wrote ------------------------------------------


def test_an_old_run_json_reads_into_typed_fields():
    record = RunRecord.from_json(OLD_RUN_JSON)
    assert (record.run_id, record.status, record.reason) == ("20261201-001516-50c24d", "completed", "")
    assert record.config == TrainConfig(
        weights="none",
        image_size=32,
        batch_size=8,
        epochs=1,
        head=record.config.head,
        fine_tune=FineTuneConfig(17, 1, 1e-4),
        # Written before training length followed the data: it re-runs with exactly its epochs, no early stopping.
        min_steps=0,
        early_stopping_patience=None,
    )
    assert record.config.head.dense == (8,) and record.config.head.normalize is False  # its head, unnormalised
    assert record.class_names == ["cats", "dogs"]
    assert record.dataset.fingerprint == "fe8268a4206d4041" and record.dataset.skipped == 0
    assert record.dataset.counts == {"train": {"cats": 8, "dogs": 8}, "validation": {"cats": 4, "dogs": 4}}
    assert record.validation_files is not None and record.final is not None
    assert len(record.validation_files) == 8 and record.validation_files[0] == "validation/cats/cats_000.png"
    assert record.versions["keras"] == "3.15.1" and record.tags == {"sweep": "s1", "point": "k=18"}
    assert record.routes == ["cached", "cached"] and record.model_saved is True and record.epochs_done == 2
    assert record.last_epoch.phase == 2 and record.last_epoch.freeze_at == 17 and record.last_epoch.partial is False
    assert record.final["best_val_accuracy"] == 0.5
    assert record.seconds == pytest.approx(2.584, abs=1e-3) and record.extract_seconds == pytest.approx(1.096, abs=1e-3)
    assert record.finished == "2026-12-01T00:15:19+00:00" and record.extra == {}


def test_an_old_run_json_is_written_back_with_nothing_lost():
    old, written = json.loads(OLD_RUN_JSON), RunRecord.from_json(OLD_RUN_JSON).to_json()
    assert list(json.loads(written)) == list(routes_renamed(old))  # the same keys, in the same order
    # Settings added since are written with what the old run meant by leaving them out; everything else as it was.
    added = {
        "balance_classes": False,
        "early_stopping_patience": None,
        "reduce_lr_on_plateau": False,
        "precision": "float32",
        "min_steps": 0,
        "label_smoothing": 0.0,
    }
    assert set(added) == {key for key in TrainConfig().to_dict() if key not in old["config"]}
    head = {**old["config"]["head"], "normalize": False}
    assert json.loads(written) == {**routes_renamed(old), "config": {**old["config"], **added, "head": head}}


def test_an_old_history_csv_reads_and_is_written_back_byte_for_byte():
    history = History.from_csv(OLD_HISTORY_CSV)
    assert [(r.phase, r.epoch, r.freeze_at, r.learning_rate, r.route, r.batches, r.partial) for r in history] == [
        (1, 1, 18, 0.001, "cached", 2, False),
        (2, 2, 17, 0.0001, "cached", 2, False),
    ]
    assert history[0].val_loss == 0.6934866905212402 and history[1].seconds == 0.5070308399999703
    assert history.to_csv() == OLD_HISTORY_CSV
    assert History.from_csv(OLD_STOPPED_HISTORY_CSV).to_csv() == OLD_STOPPED_HISTORY_CSV
    assert OLD_HISTORY_CSV.split("\r\n")[0].split(",") == HISTORY_FIELDS


def test_an_old_run_folder_shows_in_the_runs_table_and_the_sweep_table(tmp_path):
    run_dir = tmp_path / "20261201-001516-50c24d"
    run_dir.mkdir()
    (run_dir / RUN_FILE).write_text(OLD_RUN_JSON)
    (run_dir / HISTORY_FILE).write_text(OLD_HISTORY_CSV)
    (summary,) = RunStore(tmp_path).list()
    assert summary.status == "completed" and summary.epochs_done == 2 and summary.config.total_epochs() == 2
    assert (summary.val_accuracy, summary.best_val_accuracy) == (0.5, 0.5)
    (row,) = runs_dataframe([summary]).to_dict("records")
    assert (row["freeze"], row["epochs"], row["val acc"], row["time (s)"]) == ("18→17", "2/2", 0.5, summary.seconds)
    (point,) = saved_sweep_frame([summary], "s1").to_dict("records")
    assert (point["point"], point["freeze_at"], point["path"], point["epochs"]) == ("k=18", 18, "cached", 2)
    assert point["s/epoch"] == pytest.approx((0.4245274239997343 + 0.5070308399999703) / 2)


def test_an_old_record_of_a_run_whose_process_is_gone_reads_interrupted(tmp_path):
    old = json.loads(OLD_RUN_JSON)
    running = {key: old[key] for key in RUN_JSON_KEYS_AT_START} | {"status": "running", "epochs_done": 0}
    running["host"], running["heartbeat"] = "another-machine", running["heartbeat"] - 365 * 86400  # silent a year
    (tmp_path / "20261201-001516-50c24d").mkdir()
    (tmp_path / "20261201-001516-50c24d" / RUN_FILE).write_text(json.dumps(running, indent=2))
    record = RunStore(tmp_path).load("20261201-001516-50c24d")
    assert record.status == "interrupted" and len(record.history) == 0 and record.final is None


# --- keys this version does not know, keys it lacks, values it cannot take --------------


def test_unknown_keys_are_kept_and_missing_ones_defaulted():
    record = RunRecord.from_dict({"run_id": "x", "status": "completed", "written_by": {"version": 99}})
    assert record.extra == {"written_by": {"version": 99}}
    assert (record.config, record.class_names, record.dataset, record.final, record.routes) == (None,) * 5
    assert (record.reason, record.tags, record.epochs_done, len(record.history)) == ("", {}, 0, 0)
    assert record.to_dict()["written_by"] == {"version": 99}
    assert RunRecord.from_dict({}).status == "failed"  # nothing says it finished


def test_a_config_this_version_cannot_read_is_kept_as_it_was():
    newer = json.loads(OLD_RUN_JSON)
    newer["config"]["class_weights"] = "balanced"  # a setting from a later version
    newer["dataset"]["labels_file"] = "labels.csv"
    record = RunRecord.from_dict(newer)
    assert record.config is None and record.dataset.extra == {"labels_file": "labels.csv"}
    assert json.loads(record.to_json()) == routes_renamed(newer)


def test_a_value_of_the_wrong_kind_is_named_and_the_run_left_out_of_the_list(tmp_path):
    with pytest.raises(ValueError, match="pid is 'abc', not a JSON integer"):
        RunRecord.from_dict({"pid": "abc"})
    with pytest.raises(ValueError, match=r"dataset.skipped is"):
        RunRecord.from_dict({"dataset": {"skipped": "many"}})
    bad = tmp_path / "20240101-000000-bad000"
    bad.mkdir()
    (bad / RUN_FILE).write_text(OLD_RUN_JSON)
    (bad / HISTORY_FILE).write_text(OLD_HISTORY_CSV.replace("0.6934866905212402", "lots"))
    with pytest.raises(ValueError, match=r"history.csv, line 2: val_loss is 'lots', not a number"):
        read_history(bad)
    with pytest.raises(ValueError, match=r"history.csv lacks the column.s. freeze_at, learning_rate, "):
        History.from_csv("phase,epoch\r\n1,1\r\n")
    assert RunStore(tmp_path).list() == []


# --- the figures, computed once -----------------------------------------------------------


def test_an_empty_history_has_no_figures():
    history = History()
    assert (history.final, history.final_val_accuracy, history.best_val_accuracy) == (None, None, None)
    assert (history.best_val_loss, history.final_val_loss, history.mean_epoch_seconds) == (None, None, None)
    assert history.final_metrics() == {} and history.to_csv() == OLD_HISTORY_CSV.split("\r\n")[0] + "\r\n"


def test_best_and_final_span_both_phases_and_a_partial_last_epoch():
    history = History.of([_row(1, 0.6), _row(2, 0.9, phase=2), _row(3, 0.7, phase=2, partial=True)])
    assert history.final.epoch == 3 and history.final_val_accuracy == 0.7
    assert history.best_val_accuracy == 0.9
    assert history.final_metrics() == {
        "loss": 0.6,
        "accuracy": 0.7,
        "val_loss": 0.5,
        "val_accuracy": 0.7,
        "best_val_accuracy": 0.9,
    }


def test_the_mean_epoch_time_leaves_a_partial_epoch_out_unless_it_is_the_only_one():
    assert (
        History.of(
            [_row(1, 0.5, seconds=2.0), _row(2, 0.5, seconds=4.0), _row(3, 0.5, seconds=0.1, partial=True)]
        ).mean_epoch_seconds
        == 3.0
    )
    assert History.of([_row(1, 0.5, seconds=0.4, partial=True)]).mean_epoch_seconds == 0.4


def test_a_diverged_epoch_never_counts_as_the_best():
    history = History.of([_row(1, 0.6, val_loss=0.4), _row(2, 0.5, val_loss=math.nan)])
    assert history.final_val_loss is not None
    assert history.best_val_loss == 0.4 and math.isnan(history.final_val_loss)


def test_rows_come_from_training_events_as_they_are():
    event_row = {**history_row(), "not_a_column": 1}
    row = EpochRow.of(event_row)
    assert row.as_dict() == {k: v for k, v in event_row.items() if k != "not_a_column"}
    assert History.of([event_row]).as_rows() == [row.as_dict()]
    with pytest.raises(ValueError, match=r"epoch is 1.5, not a whole number"):
        EpochRow.of(event_row | {"epoch": 1.5})


def test_a_row_takes_its_route_under_either_name_and_writes_history_csvs():
    assert EpochRow.of(history_row(path="end_to_end")).route == "end_to_end"  # history.csv's column
    route_row = {k: v for k, v in history_row().items() if k != "path"} | {"route": "end_to_end"}
    assert EpochRow.of(route_row).as_dict()["path"] == "end_to_end"
    assert RunRecord.from_dict({"paths": ["cached"]}).to_dict()["routes"] == ["cached"]  # run.json's old name


def test_the_time_left_comes_from_the_same_mean():
    snap = Snapshot(
        job_id="j",
        owner="o",
        kind="train",
        epochs_total=4,
        epoch=2,
        history=History((_row(1, 0.5, seconds=3.0), _row(2, 0.5, seconds=5.0))),
    )
    mean = snap.history.mean_epoch_seconds
    assert mean is not None
    assert snap.seconds_left() == mean * 3 == 12.0
    assert Snapshot(job_id="j", owner="o", kind="train").seconds_left() is None


# --- the record a run writes has the shape earlier versions wrote ---------------------------


def test_a_new_run_writes_the_keys_earlier_versions_wrote_in_their_order(tmp_path):
    info = scan(make_dataset_folder(tmp_path / "d", n_train=2, n_val=2))
    config = TrainConfig(weights="none", image_size=32, fine_tune=FineTuneConfig(14, 1))
    run = RunStore(tmp_path / "runs").create(config, info, tags={"sweep": "s1"})
    written = json.loads((run.run_dir / RUN_FILE).read_text())
    assert list(written) == RUN_JSON_KEYS_NOW
    assert written["train_files"] == [
        "train/cats/cats_000.png",
        "train/cats/cats_001.png",
        "train/dogs/dogs_000.png",
        "train/dogs/dogs_001.png",
    ]
    assert written["config"] == config.to_dict() and written["status"] == "running"

    run.update(routes=["cached"])
    run.add_epoch(_row(1, 0.75).as_dict())
    assert run.record.routes is not None
    run.update(routes=[*run.record.routes, "end_to_end"], tensorboard="logs")  # a key this version does not know
    run.add_epoch(_row(2, 0.5, phase=2))
    run.finish(
        "completed",
        final=run.history.final_metrics(),
        routes=run.record.routes,
        seconds=3.0,
        extract_seconds=1.0,
        train_seconds=2.0,
        model_saved=True,
    )
    written = json.loads((run.run_dir / RUN_FILE).read_text())
    old_keys = list(routes_renamed(json.loads(OLD_RUN_JSON)))
    at = old_keys.index("validation_files") + 1
    assert list(written) == [*old_keys[:at], "train_files", *old_keys[at:], "tensorboard"]
    assert written["routes"] == ["cached", "end_to_end"] and written["tensorboard"] == "logs"
    assert written["epochs_done"] == 2 and written["last_epoch"] == _row(2, 0.5, phase=2).as_dict()
    assert written["final"]["best_val_accuracy"] == 0.75 and written["final"]["val_accuracy"] == 0.5
    expected_csv = History.of([_row(1, 0.75), _row(2, 0.5, phase=2)]).to_csv()
    assert (run.run_dir / HISTORY_FILE).read_bytes() == expected_csv.encode()
    loaded = RunStore(tmp_path / "runs").load(run.run_id)
    assert loaded.history == run.history and loaded.status == "completed"
