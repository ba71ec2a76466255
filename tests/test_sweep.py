"""Freeze sweep: one tagged run per point, images decoded once, Stop keeps finished points (weights=None, 32 px)."""

from __future__ import annotations

import json
import threading
import time

import pytest

import tlcore.tf.pipeline
from tests.helpers import EXACT_LENGTH
from tlcore.config import FineTuneConfig, HeadConfig
from tlcore.data import scan
from tlcore.jobs import JobBusy, JobRegistry, start_sweep, start_training
from tlcore.progress import EpochEnd
from tlcore.route import CACHED, END_TO_END
from tlcore.run_folder import read_history
from tlcore.runs import RunStore
from tlcore.sweep import SCRATCH, SweepPoint, SweepPointStart, plan, sweep_config
from tlcore.tf.sweep import run_sweep
from tlcore.tf.training import prepare_data, train_and_record

# VGG16's conv base (14,714,688 params) + avg pooling -> Dense(8) -> Dense(2).
HEAD_PARAMS = 2 * 512 + 512 * 8 + 8 + 8 * 2 + 2  # normalisation, dense, output
TOTAL_PARAMS = 14_714_688 + HEAD_PARAMS
FROZEN_AT = {18: 14_714_688, 14: 7_635_264, 0: 0}  # conv params of blocks 1-5, 1-4, none
BASE = sweep_config(
    "none", image_size=32, epochs=2, batch_size=8, seed=3, head=HeadConfig(dense=(8,), dropout=0.0), **EXACT_LENGTH
)
POINT_FIELDS = {
    "label",
    "freeze_at",
    "weights",
    "trainable_params",
    "frozen_params",
    "epoch_seconds",
    "extract_seconds",
    "best_val_accuracy",
    "final_val_accuracy",
    "best_val_loss",
    "final_val_loss",
    "path",
    "run_dir",
    "status",
}


@pytest.fixture(scope="module")
def info(tmp_path_factory):
    from tests.helpers import make_dataset_folder

    return scan(make_dataset_folder(tmp_path_factory.mktemp("sweep") / "d", n_train=12, n_val=6))


def test_sweep_defaults_and_plan():
    config = sweep_config()
    assert (config.image_size, config.epochs, config.weights, config.fine_tune) == (96, 5, "imagenet", None)
    planned = plan(BASE.replace(fine_tune=FineTuneConfig(freeze_at=14)), (18, 14, 10, 6, 3, 0))
    assert [label for label, _ in planned] == ["k=18", "k=14", "k=10", "k=6", "k=3", "k=0", SCRATCH]
    assert [c.freeze_at for _, c in planned] == [18, 14, 10, 6, 3, 0, 0]
    assert all(c.fine_tune is None for _, c in planned)
    assert planned[-1][1] == BASE.replace(weights="none", freeze_at=0, learning_rate=min(BASE.learning_rate, 1e-4))
    with pytest.raises(ValueError, match=r"Received: points=\[18, 30\]"):
        plan(BASE, (18, 30))
    with pytest.raises(ValueError, match="must not repeat"):
        plan(BASE, (14, 14))
    with pytest.raises(ValueError, match="at least one"):
        plan(BASE, (), scratch=False)


def test_tiny_sweep_writes_one_tagged_run_per_point_and_decodes_once(info, tmp_path, monkeypatch):
    decodes = []
    real_decode = tlcore.tf.pipeline.decode_all

    def counted_decode(paths, *a, **k):
        decodes.append(len(paths))
        return real_decode(paths, *a, **k)

    monkeypatch.setattr(tlcore.tf.pipeline, "decode_all", counted_decode)
    events: list[object] = []
    finished: list[SweepPoint] = []
    store = RunStore(tmp_path / "runs")
    result = run_sweep(BASE, info, points=(18, 14), store=store, progress=events.append, on_point=finished.append)

    assert decodes == [24, 12]  # train and validation, once for the whole sweep
    assert result.status == "completed" and result.skipped == []
    assert [p.label for p in result.points] == ["k=18", "k=14", "scratch"] == [p.label for p in finished]
    starts = [e for e in events if isinstance(e, SweepPointStart)]
    assert [(e.index, e.total, e.label, e.freeze_at) for e in starts] == [
        (1, 3, "k=18", 18),
        (2, 3, "k=14", 14),
        (3, 3, "scratch", 0),
    ]
    assert sum(isinstance(e, EpochEnd) for e in events) == 6

    runs = {s.tags["point"]: s for s in store.list()}
    assert set(runs) == {"k=18", "k=14", "scratch"}
    for point in result.points:
        assert set(point.to_dict()) >= POINT_FIELDS
        run = runs[point.label]
        assert run.tags == {"sweep": result.sweep_id, "point": point.label}
        assert str(run.run_dir) == point.run_dir and run.status == point.status == "completed"
        assert run.config.freeze_at == point.freeze_at and run.config.weights == "none"
        assert (point.trainable_params, point.frozen_params) == (
            TOTAL_PARAMS - FROZEN_AT[point.freeze_at],
            FROZEN_AT[point.freeze_at],
        )
        history = read_history(run.run_dir)
        assert point.epochs_done == len(history) == 2
        assert point.final_val_accuracy == pytest.approx(history[-1].val_accuracy)
        assert point.best_val_accuracy == pytest.approx(max(r.val_accuracy for r in history))
        assert point.final_val_loss == pytest.approx(history[-1].val_loss)
        assert point.best_val_loss == pytest.approx(min(r.val_loss for r in history))
        assert point.epoch_seconds == pytest.approx(sum(r.seconds for r in history) / 2)
        assert (run.run_dir / "model.keras").is_file()
    by_label = {p.label: p for p in result.points}
    assert [by_label[k].route for k in ("k=18", "k=14", "scratch")] == [CACHED, CACHED, END_TO_END]
    # k=18 and k=14 read their features from the sweep's one pass through the backbone.
    assert result.shared_points == [14, 18] and result.shared_extract_seconds > 0
    assert by_label["k=18"].extract_seconds == by_label["scratch"].extract_seconds == 0
    assert result.summary() == {
        "sweep": result.sweep_id,
        "points": 3,
        "seconds": round(result.seconds, 3),
        "status": "completed",
        "decode_seconds": round(result.decode_seconds, 3),
        "shared_points": [14, 18],
        "shared_extract_seconds": round(result.shared_extract_seconds, 3),
        "skipped": [],
    }


@pytest.mark.parametrize("when", ["first epoch", "first point"])
def test_stop_keeps_the_finished_work_and_skips_the_rest(info, tmp_path, when):
    stop = threading.Event()
    data = prepare_data(info, 32)

    def progress(event):
        if when == "first epoch" and isinstance(event, EpochEnd):
            stop.set()

    def stop_after_the_first_point(_point: SweepPoint) -> None:
        if when == "first point":
            stop.set()

    store = RunStore(tmp_path / "runs")
    result = run_sweep(
        BASE,
        info,
        points=(18, 14),
        store=store,
        progress=progress,
        stop=stop,
        data=data,
        on_point=stop_after_the_first_point,
    )
    assert result.status == "stopped"
    assert [p.label for p in result.points] == ["k=18"]
    assert result.skipped == ["k=14", "scratch"]
    [run] = store.list()  # no runs for the skipped points
    assert run.tags["point"] == "k=18"
    point = result.points[0]
    if when == "first epoch":  # the point running when Stop came ends as a stopped run, its epoch kept
        assert point.status == run.status == "stopped" and point.epochs_done == run.epochs_done == 1
    else:
        assert point.status == run.status == "completed" and point.epochs_done == 2
    assert (run.run_dir / "model.keras").is_file()


def test_data_decoded_at_another_size_is_refused(info, tmp_path):
    with pytest.raises(ValueError, match="Received: image_size=48"):
        run_sweep(
            BASE.replace(image_size=48),
            info,
            points=(18,),
            store=RunStore(tmp_path / "runs"),
            data=prepare_data(info, 32),
        )
    assert not (tmp_path / "runs").exists()


def test_the_phase_boundary_is_stored_in_the_history(info, tmp_path):
    config = BASE.replace(epochs=1, fine_tune=FineTuneConfig(freeze_at=14, epochs=1, learning_rate=1e-4))
    _, run = train_and_record(config, info, RunStore(tmp_path / "runs"))
    history = read_history(run.run_dir)
    assert [(r.phase, r.epoch, r.freeze_at, r.route) for r in history] == [(1, 1, 18, CACHED), (2, 2, 14, CACHED)]
    assert [r.learning_rate for r in history] == pytest.approx([BASE.learning_rate, 1e-4])


def _wait(job, timeout=120):
    deadline = time.time() + timeout
    while job.running and time.time() < deadline:
        time.sleep(0.1)
    return job.snapshot()


def test_start_sweep_runs_in_the_background_and_keeps_finished_points(info, tmp_path):
    registry = JobRegistry()
    job = start_sweep(
        "me",
        BASE.replace(epochs=1),
        info,
        points=(18,),
        scratch=False,
        store=RunStore(tmp_path / "runs"),
        registry=registry,
    )
    snap = _wait(job)
    assert snap.kind == "sweep" and snap.status == "completed" and snap.stage == "done"
    assert snap.sweep.total_points == 1 and snap.sweep.skipped == []
    [point] = snap.sweep.points
    assert point.label == "k=18" and point.status == "completed" and point.run_dir == snap.run_dir
    assert len(snap.history) == 1 and snap.history[0].freeze_at == 18
    with pytest.raises(ValueError, match="Received: points"):
        start_sweep("me", BASE, info, points=(19,), registry=registry)


def test_a_sweep_is_the_sessions_one_job(info, tmp_path, monkeypatch):
    import tlcore.sweep
    import tlcore.tf.sweep

    release = threading.Event()

    def blocked_sweep(*args, stop=None, **kwargs):
        release.wait(30)
        return tlcore.sweep.SweepResult("x", "stopped")

    monkeypatch.setattr(tlcore.tf.sweep, "run_sweep", blocked_sweep)
    registry = JobRegistry()
    job = start_sweep("me", BASE, info, points=(18,), registry=registry)
    try:
        with pytest.raises(JobBusy, match="sweep job is already running"):
            start_training("me", BASE, info, registry=registry)
        with pytest.raises(JobBusy):
            start_sweep("me", BASE, info, points=(18,), registry=registry)
    finally:
        release.set()
    assert _wait(job).status == "stopped"


def test_cli_sweep_json_one_line_per_point_then_a_summary(tmp_path, capsys):
    from tests.helpers import make_dataset_folder
    from tlcore.cli import main

    # In this process, as the table test below (TensorFlow is loaded here already: a subprocess loads it again).
    data = make_dataset_folder(tmp_path / "d", n_train=8, n_val=4)
    capsys.readouterr()
    code = main(
        [
            "sweep",
            "--data",
            str(data),
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--points",
            "18,14",
            "--weights",
            "none",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--json",
        ]
    )
    proc = capsys.readouterr()
    assert code == 0, proc.err
    lines = [json.loads(line) for line in proc.out.strip().splitlines()]  # JSON only on stdout
    assert len(lines) == 3 + 1
    *points, summary = lines
    assert [p["label"] for p in points] == ["k=18", "k=14", "scratch"]
    for p in points:
        assert set(p) >= POINT_FIELDS and p["status"] == "completed" and p["epoch_seconds"] > 0
        assert json.loads((tmp_path / "runs" / p["run_dir"].rsplit("/", 1)[-1] / "run.json").read_text())["tags"] == {
            "sweep": summary["sweep"],
            "point": p["label"],
        }
    assert summary["points"] == 3 and summary["status"] == "completed" and summary["seconds"] > 0
    assert "[1/3] k=18" in proc.err and "[3/3] scratch" in proc.err


def test_cli_sweep_table_and_bad_points(info, tmp_path, capsys):
    from tlcore.cli import main

    code = main(
        [
            "sweep",
            "--data",
            str(info.root),
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--points",
            "18",
            "--no-scratch",
            "--weights",
            "none",
            "--runs-dir",
            str(tmp_path / "runs"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    header, row = [line for line in out.splitlines() if line.strip()][:2]
    assert header.split()[:4] == ["point", "trainable", "s/epoch", "extract"]
    assert row.split()[:2] == ["k=18", f"{2 * 512 + 512 * 256 + 256 + 256 * 2 + 2:,}"]  # the default head's params
    assert "1/1 point(s)" in out
    assert main(["sweep", "--data", str(info.root), "--points", "18,25", "--weights", "none"]) == 2
    assert "Received: points=[18, 25]" in capsys.readouterr().err


def test_points_that_train_conv_layers_use_a_fine_tuning_rate():
    from tlcore.config import TrainConfig
    from tlcore.sweep import plan

    planned = dict(plan(TrainConfig(weights="none", learning_rate=1e-3), [18, 14, 0], scratch=True))
    assert planned["k=18"].learning_rate == 1e-3
    assert planned["k=14"].learning_rate == planned["k=0"].learning_rate == 1e-4
    assert planned["scratch"].learning_rate == 1e-4
    slow = dict(plan(TrainConfig(weights="none", learning_rate=1e-5), [18, 14]))
    assert slow["k=18"].learning_rate == slow["k=14"].learning_rate == 1e-5  # never raised
