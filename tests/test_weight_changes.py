"""What fine-tuning changed: runs record where they started, and each layer's change is measured from there."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from typing import Any

import keras
import numpy as np
import pytest

from tests.helpers import TINY_CONFIG, history_row, make_dataset_folder
from tests.weights_files import write_filled
from tlcore.backbone_facts import VGG16_CONVS
from tlcore.backbones import WeightsError, weights_identity
from tlcore.config import FineTuneConfig
from tlcore.data import scan
from tlcore.history import History
from tlcore.records import RunRecord, StartRecord
from tlcore.run_folder import RUN_FILE, load_record
from tlcore.runs import RunStore
from tlcore.weight_changes import BACKBONE, HEAD, ChangesUnavailable, LayerChange, WeightChanges, trained_from

TINY = TINY_CONFIG.replace(epochs=2)
CONVS = [layer.name for layer in VGG16_CONVS]  # 13, input side first
HEAD_LAYERS = ["head_norm", "head_dense_1", "predictions"]  # TINY's head: its normalisation, a Dense of 8, the output


@pytest.fixture(scope="module")
def info(tmp_path_factory):
    return scan(make_dataset_folder(tmp_path_factory.mktemp("changes") / "data", n_train=8, n_val=4))


def _train(config, info, root):
    from tlcore.tf.training import train_and_record

    _, run = train_and_record(config, info, RunStore(root))
    return run.run_dir


@pytest.fixture
def fine_tuned(runs_at_10_and_14):
    """A run that trained blocks 4 and 5 and the head (freeze point 10), from random weights: TINY's config."""
    return runs_at_10_and_14[0]


def _copy(run_dir, tmp_path):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


def _edit_record(run_dir, edit) -> None:
    path = run_dir / RUN_FILE
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


# --- the start record --------------------------------------------------------------------


def test_a_run_records_where_it_started(fine_tuned):
    start = load_record(fine_tuned).start
    assert (start.weights, start.weights_file, start.weights_identity) == ("none", "", "none")
    assert (start.seed, start.keras) == (TINY.seed, keras.__version__)
    assert list(start.layer_norms) == CONVS + HEAD_LAYERS
    assert all(norm > 0 for norm in start.layer_norms.values())
    written = json.loads((fine_tuned / RUN_FILE).read_text())["start"]
    assert written == start.to_dict()


def test_the_start_record_round_trips_and_old_records_read_without_it():
    start = StartRecord("/w/vgg.weights.h5", "/w/vgg.weights.h5", "sha256:ab", 7, "3.15.1", {"block1_conv1": 2.5})
    record = RunRecord(run_id="r", start=start)
    again = RunRecord.from_json(record.to_json())
    assert again.start == start
    future = {**record.to_dict(), "start": {**start.to_dict(), "weights_dtype": "float32"}}
    kept = RunRecord.from_dict(future)
    assert kept.start.extra == {"weights_dtype": "float32"}
    rewritten: dict[str, Any] = kept.to_dict()  # read as plain JSON
    assert rewritten["start"]["weights_dtype"] == "float32"  # a newer key survives a rewrite
    old = record.to_dict()
    del old["start"]
    assert RunRecord.from_dict(old).start is None and "start" not in RunRecord.from_dict(old).to_dict()
    with pytest.raises(ValueError, match=r"start.seed"):
        RunRecord.from_dict({**record.to_dict(), "start": {**start.to_dict(), "seed": "seven"}})


def test_weights_identity_is_the_files_content(tmp_path, monkeypatch):
    assert weights_identity("none") == weights_identity("random") == "none"
    path = write_filled(tmp_path / "a.weights.h5")
    expected = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert weights_identity(str(path)) == expected
    assert weights_identity(str(path)) == expected  # asked again (memoised)
    copy = tmp_path / "renamed.weights.h5"
    shutil.copy(path, copy)
    assert weights_identity(str(copy)) == expected  # the content, not the name
    write_filled(path, bias=0.2)
    assert weights_identity(str(path)) not in (expected, "none")
    with pytest.raises(WeightsError, match="not found"):
        weights_identity(str(tmp_path / "gone.weights.h5"))
    # ImageNet is the Keras cache's file.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(WeightsError, match="not downloaded"):
        weights_identity("imagenet")
    cached = tmp_path / "keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cached.parent.mkdir(parents=True)
    shutil.copy(copy, cached)
    assert weights_identity("imagenet") == expected


# --- the changes ---------------------------------------------------------------------------


def test_frozen_layers_come_out_exactly_zero_and_trained_ones_moved(fine_tuned):
    from tlcore.tf.model import load_run_model
    from tlcore.tf.training import build_for
    from tlcore.tf.weight_changes import weight_changes

    changes = weight_changes(fine_tuned)
    assert [layer.name for layer in changes.layers] == CONVS + HEAD_LAYERS
    assert [layer.part for layer in changes.layers] == [BACKBONE] * 13 + [HEAD] * len(HEAD_LAYERS)
    assert [layer.block for layer in changes.layers][:3] == ["block1", "block1", "block2"]
    frozen = [layer for layer in changes.layers if not layer.trained]
    assert [layer.name for layer in frozen] == CONVS[:7]  # blocks 1-3: the first 10 layers with their poolings
    assert all(layer.change_norm == 0.0 and layer.relative_change == 0.0 for layer in frozen)
    trained = [layer for layer in changes.layers if layer.trained]
    assert all(layer.relative_change is not None and layer.relative_change > 0 for layer in trained)
    assert (changes.trained_from, changes.conv_layers_trained, changes.head_only) == (10, 6, False)
    assert changes.summary.startswith("6 VGG16 conv layer(s) trained, 7 stayed frozen (unchanged)")
    # The same figure by hand, from the model as built for the run and the model it saved.
    start = build_for(TINY.replace(freeze_at=10), 2).get_layer("block5_conv3").get_weights()
    end = load_run_model(fine_tuned).get_layer("block5_conv3").get_weights()
    by_hand = math.sqrt(sum(np.sum((w - w0).astype(np.float64) ** 2) for w, w0 in zip(end, start))) / math.sqrt(
        sum(np.sum(w0.astype(np.float64) ** 2) for w0 in start)
    )
    assert changes.layers[CONVS.index("block5_conv3")].relative_change == pytest.approx(by_hand, rel=1e-9)
    assert changes.layers[0].params == 3 * 3 * 3 * 64 + 64
    assert json.loads(json.dumps(changes.to_dict()))["layers"][0]["relative_change"] == 0.0


def test_an_old_run_without_a_start_record_says_so(fine_tuned, tmp_path):
    from tlcore.tf.weight_changes import weight_changes

    old = _copy(fine_tuned, tmp_path)
    _edit_record(old, lambda record: record.pop("start"))
    assert load_record(old).start is None  # still a readable run
    with pytest.raises(ChangesUnavailable, match="saved before the lab recorded its starting weights"):
        weight_changes(old)


def test_a_rebuild_that_is_not_the_recorded_start_is_refused(fine_tuned, tmp_path):
    from tlcore.tf.weight_changes import weight_changes

    other = _copy(fine_tuned, tmp_path)
    _edit_record(other, lambda record: record["start"].update(seed=TINY.seed + 1, keras="2.0.0"))
    with pytest.raises(ChangesUnavailable, match="not the ones it started from") as raised:
        weight_changes(other)
    assert "block1_conv1" in str(raised.value) and "Keras 2.0.0" in str(raised.value)


def test_a_head_only_run_changes_only_the_head(info, tmp_path):
    from tlcore.tf.weight_changes import weight_changes

    changes = weight_changes(_train(TINY.replace(epochs=1), info, tmp_path))
    assert all(layer.relative_change == 0.0 and not layer.trained for layer in changes.layers[:13])
    assert all(layer.relative_change is not None and layer.relative_change > 0 for layer in changes.layers[13:])
    assert changes.head_only and changes.summary.startswith("Only the head trained in this run")


def test_a_two_phase_run_is_measured_from_the_start_of_phase_1(info, tmp_path):
    from tlcore.tf.weight_changes import weight_changes

    config = TINY.replace(epochs=1, fine_tune=FineTuneConfig(freeze_at=14, epochs=1, learning_rate=1e-4))
    changes = weight_changes(_train(config, info, tmp_path))
    moved = {layer.name: layer.relative_change for layer in changes.layers}
    assert changes.trained_from == 14 and changes.conv_layers_trained == 3
    assert all(moved[name] == 0.0 for name in CONVS[:10])
    assert all((change := moved[name]) is not None and change > 0 for name in CONVS[10:] + HEAD_LAYERS)


def test_which_layers_trained_comes_from_the_phases_that_ran():
    config = TINY.replace(fine_tune=FineTuneConfig(freeze_at=14, epochs=1))
    stopped_in_phase_1 = RunRecord(config=config, history=History.of([history_row(freeze_at=18)]))
    assert trained_from(stopped_in_phase_1) == 18
    both = RunRecord(config=config, history=History.of([history_row(), history_row(phase=2, epoch=2, freeze_at=14)]))
    assert trained_from(both) == 14
    assert trained_from(RunRecord(config=config.replace(freeze_at=10, fine_tune=None))) == 10  # no epoch yet


def test_a_weights_file_run_is_measured_and_a_changed_or_missing_file_is_refused(info, tmp_path):
    from tlcore.tf.weight_changes import weight_changes

    path = write_filled(tmp_path / "start.weights.h5")
    run_dir = _train(TINY.replace(weights=str(path), freeze_at=14, epochs=1), info, tmp_path / "runs")
    start = load_record(run_dir).start
    assert start.weights == start.weights_file == str(path.resolve())
    assert start.weights_identity == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert start.layer_norms["block1_conv1"] == pytest.approx(math.sqrt(27 * 64 / 27**2 + 64 * 0.1**2), rel=1e-6)
    changes = weight_changes(run_dir)
    assert changes.weights == str(path.resolve())
    # Blocks 1-4 frozen (10 convolutions), block 5 and the head trained.
    assert [layer.relative_change == 0.0 for layer in changes.layers] == [True] * 10 + [False] * (3 + len(HEAD_LAYERS))

    write_filled(path, bias=0.2)  # the same name and size, other numbers
    with pytest.raises(ChangesUnavailable, match="has changed since the run") as raised:
        weight_changes(run_dir)
    assert str(path.resolve()) in str(raised.value)
    path.unlink()
    with pytest.raises(ChangesUnavailable, match="weights file this run started from is missing"):
        weight_changes(run_dir)


def test_a_run_still_training_or_without_a_model_is_not_measured(fine_tuned, tmp_path, info):
    from tlcore.tf.weight_changes import weight_changes

    no_model = _copy(fine_tuned, tmp_path)
    (no_model / "model.keras").unlink()
    with pytest.raises(ChangesUnavailable, match="saved no model"):
        weight_changes(no_model)
    running = RunStore(tmp_path / "runs").create(TINY, info)  # this process is alive: it reads "running"
    with pytest.raises(ChangesUnavailable, match="still training"):
        weight_changes(running.run_dir)


def test_a_change_relative_to_nothing_has_no_size():
    zero = LayerChange("block1_conv1", BACKBONE, "block1", True, start_norm=0.0, change_norm=0.5, params=1792)
    assert zero.relative_change is None and zero.to_dict()["relative_change"] is None
    diverged = LayerChange("predictions", HEAD, "head", True, start_norm=1.0, change_norm=math.nan, params=18)
    assert diverged.to_dict()["relative_change"] is None  # NaN is not JSON
    changes = WeightChanges("r", (zero, diverged), trained_from=0, weights="none")
    json.dumps(changes.to_dict(), allow_nan=False)


# --- what the layers compute: CKA ------------------------------------------------------------


def test_each_trained_layers_cka_is_that_of_its_own_activations(fine_tuned):
    """The layer-by-layer pass gives what the two models' own sub-models give, through linear_cka."""
    from tlcore.cka import linear_cka
    from tlcore.tf.inference import run_validation_images
    from tlcore.tf.model import load_run_model
    from tlcore.tf.weight_changes import starting_model, weight_changes

    changes = weight_changes(fine_tuned, cka=True)
    reps = changes.representations
    assert reps is not None and reps.images == 8 and reps.unreadable == ()
    assert [layer.name for layer in reps.layers] == CONVS
    assert [layer.trained for layer in reps.layers] == [False] * 7 + [True] * 6  # freeze point 10: blocks 4 and 5
    assert all(layer.cka == 1.0 for layer in reps.layers[:7])
    record = load_record(fine_tuned)
    images, _ = run_validation_images(record, TINY.image_size)
    initial, final = starting_model(record), load_run_model(fine_tuned)
    for name in ("block3_conv3", "block4_conv1", "block5_conv3"):  # the last frozen one, then two trained ones
        before = keras.Model(initial.inputs, initial.get_layer(name).output).predict(images, verbose=0)
        after = keras.Model(final.inputs, final.get_layer(name).output).predict(images, verbose=0)
        assert reps.by_layer()[name] == pytest.approx(linear_cka(before, after), abs=1e-5), name
    assert reps.by_layer()["block5_conv3"] < 1.0 - 1e-6  # training moved it
    assert "Measured on 8 validation images" in reps.summary


def test_cka_on_a_run_whose_validation_images_are_gone_says_why(fine_tuned, tmp_path):
    from tlcore.tf.weight_changes import weight_changes

    copy = _copy(fine_tuned, tmp_path)
    _edit_record(copy, lambda record: record["dataset"].update(root=str(tmp_path / "moved")))
    with pytest.raises(ChangesUnavailable, match="validation images cannot be read"):
        weight_changes(copy, cka=True)
    assert weight_changes(copy).representations is None  # the weight changes alone still work
