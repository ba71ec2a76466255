"""The transfer curve (tlcore.transfer_curve, tlcore.tf.transfer_curve, `python -m tlcore transfer-curve`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.helpers import make_dataset_folder
from tests.test_cli import run_cli
from tlcore.access import student
from tlcore.transfer_curve import (
    CONDITIONS,
    FINE_TUNED,
    KEPT,
    RANDOM,
    REINITIALISED,
    Band,
    TransferCurve,
    check_points,
    curve_base,
    planned_runs,
    planned_units,
    same_run_as,
    shared_runs_note,
)


def test_the_two_duplicate_pairs_are_named_and_points_are_checked():
    assert same_run_as(18, REINITIALISED) == KEPT  # nothing above 18 to re-initialise
    assert same_run_as(0, RANDOM) == REINITIALISED  # nothing kept at 0
    assert [same_run_as(n, c) for n in (3, 14) for c in CONDITIONS] == [None] * 8
    assert shared_runs_note((0, 14, 18)) == (
        "One run stands for two conditions, drawn under both names and listed once: at 0, “random layers frozen” "
        "is the “re-initialised above” run; at 18, “re-initialised above” is the “ImageNet layers kept” run."
    )
    assert shared_runs_note((3, 14)) == ""
    assert check_points([18, 0, 10]) == [0, 10, 18]
    for bad in ([], [19], [3, 3], [-1]):
        with pytest.raises(ValueError, match=r"distinct freeze points 0\.\.18"):
            check_points(bad)


def test_the_plan_trains_each_run_once_with_the_conditions_settings():
    from tlcore.config import FineTuneConfig, TrainConfig

    base = TrainConfig(weights="imagenet", seed=7, early_stopping_patience=3, fine_tune=FineTuneConfig(14, 2))
    runs = planned_runs(base, (18, 0, 14), repeats=2)
    assert len(runs) == 2 * (3 * 4 - 2)  # the two duplicate pairs trained once
    assert [(r, n, c) for r, n, c, _ in runs[:10]] == [
        (0, 0, KEPT), (0, 0, FINE_TUNED), (0, 0, REINITIALISED),
        (0, 14, KEPT), (0, 14, FINE_TUNED), (0, 14, REINITIALISED), (0, 14, RANDOM),
        (0, 18, KEPT), (0, 18, FINE_TUNED), (0, 18, RANDOM),
    ]  # fmt: skip
    by = {(r, n, c): config for r, n, c, config in runs}
    assert all(c.early_stopping_patience is None and c.min_steps == 0 and c.fine_tune is None for c in by.values())
    assert {c.seed for (r, _, _), c in by.items() if r == 1} == {8}  # each repeat its own seed
    assert by[(0, 18, KEPT)].learning_rate == 1e-3 and by[(0, 14, KEPT)].learning_rate == 1e-4  # the sweep's rates
    assert by[(0, 14, KEPT)].epochs == base.epochs
    tuned = by[(0, 14, FINE_TUNED)]  # the lab's own second phase, every layer: 3 epochs at 1e-5
    assert (tuned.freeze_at, tuned.epochs, tuned.learning_rate, tuned.cache_features) == (0, 3, 1e-5, False)
    assert by[(0, 14, RANDOM)].weights == "none" and by[(0, 14, REINITIALISED)].weights == "imagenet"
    assert curve_base(base, "mixed_bfloat16").precision == "mixed_bfloat16" and curve_base(base).precision == "float32"
    units = planned_units(curve_base(base), (0, 18), repeats=1)
    assert [(u.freeze_at, [c for c, _ in u.runs]) for u in units] == [
        (0, [KEPT, FINE_TUNED, REINITIALISED]),
        (18, [KEPT, FINE_TUNED, RANDOM]),
    ]
    assert units[1].tags("curve-x", RANDOM) == {"curve": "curve-x", "point": 18, "condition": RANDOM, "repeat": 1}


def _curve(bands: Mapping[tuple[int, str], tuple[float, ...]]) -> TransferCurve:
    return TransferCurve((0, 10, 18), {k: Band(v) for k, v in bands.items()}, 0.5, 2, 96, 5)


def test_the_json_has_a_band_per_condition_and_the_sentences_read_it():
    values = {
        0: {KEPT: (0.9, 0.8), REINITIALISED: (0.5, 0.55), FINE_TUNED: (0.95, 0.9), RANDOM: (0.5, 0.55)},
        10: {KEPT: (0.96, 0.94), REINITIALISED: (0.52, 0.5), FINE_TUNED: (0.98, 0.98), RANDOM: (0.6, 0.62)},
        18: {KEPT: (0.96, 0.98), REINITIALISED: (0.96, 0.98), FINE_TUNED: (0.96, 0.98), RANDOM: (0.66, 0.7)},
    }
    curve = _curve({(n, c): v for n, by in values.items() for c, v in by.items()})
    out = json.loads(json.dumps(curve.to_dict()))  # as a reader of the JSON gets it
    assert [b["freeze_at"] for b in out["boundaries"]] == [0, 10, 18]
    ten = out["boundaries"][1]
    assert ten[KEPT] == {"mean": pytest.approx(0.95), "min": 0.94, "max": 0.96, "runs": [0.96, 0.94]}
    assert set(ten) == {"freeze_at", *CONDITIONS}
    assert curve.summary == (
        "Kept ImageNet layers reach 97% at freeze point 18 (the head alone, at 18: 97%; chance 50%). "
        "Random frozen layers reach 61% to 68%: what training alone learns. "
        "Re-initialising the layers above costs most at 10 (44% below kept): with this few images they cannot "
        "relearn what ImageNet taught them. Re-initialised conv layers stay near chance at 0, 10. "
        "Fine-tuning everything afterwards helps at 0, 10."
    )


def test_random_layers_at_one_accuracy_everywhere_are_said_once():
    bands = {(n, c): (0.5, 0.5) for n in (0, 10, 18) for c in CONDITIONS}
    assert "Random frozen layers reach 50% at every freeze point: " in _curve(bands).summary


def test_reinitialising_draws_the_layers_above_the_freeze_point_afresh(tmp_path):
    """Below the freeze point the weights file's layers; above it random ones, from the run's seed."""
    import numpy as np

    from tests.weights_files import write_filled
    from tlcore.config import TrainConfig
    from tlcore.tf.build import build_for
    from tlcore.tf.model import backbone_layers
    from tlcore.tf.transfer_curve import _reinitialised

    config = TrainConfig(weights=str(write_filled(tmp_path / "filled.weights.h5")), image_size=32, freeze_at=10)
    kept, redrawn = backbone_layers(build_for(config, 2)), backbone_layers(_reinitialised(config, 2))
    random = backbone_layers(build_for(config.replace(weights="none"), 2))
    for i, (a, b, r) in enumerate(zip(kept, redrawn, random)):
        for wa, wb, wr in zip(a.get_weights(), b.get_weights(), r.get_weights()):
            np.testing.assert_array_equal(wb, wa if i < 10 else wr)
    assert any(
        not np.array_equal(a.get_weights()[0], r.get_weights()[0]) for a, r in zip(kept[10:], random[10:]) if a.weights
    )


@pytest.fixture(scope="module")
def curve(tmp_path_factory):
    """Points 0, 14 and 18, two repeats, 32 px, one epoch, random weights: every condition trained for real."""
    from tlcore.config import TrainConfig
    from tlcore.data import scan
    from tlcore.feature_store import FeatureStore
    from tlcore.runs import RunStore
    from tlcore.tf.transfer_curve import run_transfer_curve

    tmp = tmp_path_factory.mktemp("curve")
    info = scan(make_dataset_folder(tmp / "data", n_train=6, n_val=3))
    features, runs = FeatureStore(tmp / "features"), RunStore(tmp / "runs", student("a1a1a1a1a1a1"))
    lines: list[str] = []
    base = TrainConfig(weights="none", image_size=32, epochs=1, batch_size=4)
    result = run_transfer_curve(
        base, info, runs, features, (18, 0, 14), repeats=2, note=lambda _d, _t, line: lines.append(line)
    )
    return result, features, lines, runs


def test_every_condition_is_trained_each_duplicate_once_and_each_prefix_extracted_once(curve):
    result, features, lines, _ = curve
    assert result.points == (0, 14, 18) and result.repeats == 2 and result.chance == 0.5
    # Two repeats of 3 points x 4 conditions, less the two duplicate pairs each repeat: 20 runs trained.
    assert len(lines) == 20 and lines[-1].startswith("[20/20] repeat 2, freeze point 18, random: ")
    for n in result.points:
        for c in CONDITIONS:
            band = result.band(n, c)
            assert len(band.values) == 2 and all(0.0 <= v <= 1.0 for v in band.values)
    assert result.band(18, REINITIALISED) == result.band(18, KEPT)  # the same run, reported twice
    assert result.band(0, RANDOM) == result.band(0, REINITIALISED)
    # With random "pretrained" weights, kept and random are the same model from the same seed.
    assert result.band(14, RANDOM) == result.band(14, KEPT)
    # Frozen features: one entry per (freeze point with a frozen prefix, seed), shared by every condition.
    assert len(list(features.root.glob("*"))) == 2 * 2


def test_the_curve_and_its_tagged_runs_are_saved_outside_the_runs_list(curve):
    from tlcore.curve_records import CurveStore

    result, *_, runs = curve
    assert runs.list() == []  # hidden from the Runs list (and from the run quota)
    (saved,) = CurveStore(runs).list()
    assert saved.done and saved.owner == "a1a1a1a1a1a1" and saved.runs_planned == 20
    assert saved.curve is not None and saved.curve.to_dict() == result.to_dict()  # read back as it was
    recorded = CurveStore(runs).runs_of(saved.curve_id).list()
    assert len(recorded) == 20
    assert all(r.record.tags["curve"] == saved.curve_id and r.status == "completed" for r in recorded)
    assert all(r.record.model_saved is False and not (r.run_dir / "model.keras").exists() for r in recorded)
    by_tags = {(r.tags["repeat"], r.tags["point"], r.tags["condition"]): r.val_accuracy for r in recorded}
    assert len(by_tags) == 20 and sorted({str(k[2]) for k in by_tags}) == sorted(CONDITIONS)
    assert [by_tags[(1, 14, c)] for c in (KEPT, REINITIALISED)] == [
        result.band(14, c).values[0] for c in (KEPT, REINITIALISED)
    ]
    tuned = next(r for r in recorded if r.tags["condition"] == FINE_TUNED)
    assert tuned.config is not None and (tuned.config.freeze_at, tuned.config.epochs) == (0, 3)


def test_another_student_cannot_see_open_or_delete_a_curve(curve):
    from tlcore.access import ADMIN
    from tlcore.curve_records import CurveStore

    *_, runs = curve
    mine = CurveStore(runs)
    (saved,) = mine.list()
    theirs = CurveStore(runs.as_actor(student("b2b2b2b2b2b2")))
    assert theirs.list() == [] and theirs.newest_of("b2b2b2b2b2b2") is None
    assert theirs.newest_of(saved.owner) is None  # naming the owner does not open it either
    for attempt in (theirs.load, theirs.runs_of, theirs.delete):
        with pytest.raises(FileNotFoundError, match="No transfer curve"):
            attempt(saved.curve_id)
    with pytest.raises(FileNotFoundError):
        theirs.load("../" + saved.curve_id)
    assert [c.curve_id for c in CurveStore(runs.as_actor(ADMIN)).list()] == [saved.curve_id]  # the teacher sees it
    assert CurveStore(runs.as_actor(ADMIN)).newest_of(saved.owner) == saved == mine.newest_of(saved.owner)
    assert mine.load(saved.curve_id).done  # nothing was deleted


def test_the_command_prints_the_table_or_one_json_object(tmp_path):
    data = make_dataset_folder(tmp_path / "data", n_train=4, n_val=2)
    common = ["--data", str(data), "--weights", "none", "--image-size", "32", "--epochs", "1", "--repeats", "1"]
    common += ["--precision", "float32"]
    proc = run_cli("transfer-curve", *common, "--points", "14,18", "--runs-dir", str(tmp_path / "runs"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [b["freeze_at"] for b in out["boundaries"]] == [14, 18]
    assert set(out["boundaries"][0][KEPT]) == {"mean", "min", "max", "runs"}
    assert "[7/7] repeat 1, freeze point 18, random" in proc.stderr
    saved = json.loads((Path(out["folder"]) / "curve.json").read_text())  # kept with its runs in the runs folder
    assert out["curve_id"] == saved["curve_id"] and saved["status"] == "completed" and out["precision"] == "float32"
    assert saved["curve"]["boundaries"] == out["boundaries"]
    assert len([d for d in Path(out["folder"]).iterdir() if (d / "run.json").is_file()]) == 7
    text = run_cli("transfer-curve", *common, "--points", "18", "--runs-dir", str(tmp_path / "runs"))
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0].split()[:4] == ["freeze", "ImageNet", "layers", "kept"]
    assert "validation accuracy, mean (min-max) of 1 repeat(s) in float32" in text.stdout
    assert "The curve and its runs: " in text.stdout
    bad = run_cli("transfer-curve", *common, "--points", "19")
    assert bad.returncode == 2 and "distinct freeze points 0..18" in bad.stderr
