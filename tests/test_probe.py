"""Linear probes and the 2-D map of features (tlcore.probe, tlcore.tf.probe, `tlcore probe`)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tests.helpers import make_dataset_folder
from tlcore.cli import main
from tlcore.data import scan
from tlcore.inside import PRETRAINED, RANDOM, Comparison, Weighting, compared_weightings
from tlcore.probe import PROBE_BOUNDARIES, ProbeResult, layer_at, probe_accuracy, project_2d, scores_table

rng = np.random.default_rng(0)


def _blobs(n: int, shift: float, dims: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes of points, the second moved by `shift` along every axis."""
    r = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return r.normal(size=(n, dims)) + shift * y[:, None], y


def test_block_boundaries_are_the_five_poolings():
    assert PROBE_BOUNDARIES == (3, 6, 10, 14, 18)
    assert [layer_at(k) for k in PROBE_BOUNDARIES] == [f"block{b}_pool" for b in range(1, 6)]
    assert layer_at(1) == "block1_conv1"
    for bad in (0, 19):
        with pytest.raises(ValueError, match="1 <= freeze_at <= 18"):
            layer_at(bad)


def test_a_probe_separates_separable_features_and_not_noise():
    train_x, train_y = _blobs(80, shift=3.0, seed=1)
    val_x, val_y = _blobs(40, shift=3.0, seed=2)
    assert probe_accuracy(train_x, train_y, val_x, val_y) == 1.0
    noise_x, noise_y = _blobs(400, shift=0.0, seed=3)
    assert 0.35 < probe_accuracy(noise_x[:200], noise_y[:200], noise_x[200:], noise_y[200:]) < 0.65


def test_a_probe_is_deterministic_and_never_fits_on_validation_labels():
    train_x, train_y = _blobs(60, shift=0.7, seed=4)
    val_x, val_y = _blobs(60, shift=0.7, seed=5)
    first = probe_accuracy(train_x, train_y, val_x, val_y, seed=3)
    assert probe_accuracy(train_x, train_y, val_x, val_y, seed=3) == first
    # With the validation labels flipped, every right answer becomes wrong: the two accuracies add up
    # to 1 only if the predictions did not change, i.e. the labels were used only to score.
    assert probe_accuracy(train_x, train_y, val_x, 1 - val_y, seed=3) == pytest.approx(1 - first)


def test_a_probe_copes_with_overflowing_features_and_names_missing_classes():
    train_x, train_y = _blobs(40, shift=3.0)
    train_x[0, 0] = np.inf  # random deep layers can overflow float32
    assert probe_accuracy(train_x, train_y, *_blobs(20, shift=3.0, seed=9)) == 1.0
    with pytest.raises(ValueError, match="two classes"):
        probe_accuracy(train_x, np.zeros(40, int), train_x, train_y)
    with pytest.raises(ValueError, match="validation images"):
        probe_accuracy(train_x, train_y, train_x[:0], train_y[:0])


def test_the_map_is_fitted_on_training_features_only():
    train_x, _ = _blobs(50, shift=2.0, seed=6)
    val_a, _ = _blobs(10, shift=2.0, seed=7)
    train_xy, val_xy = project_2d(train_x, val_a)
    assert train_xy.shape == (50, 2) and val_xy.shape == (10, 2)
    # Other validation images move no training point, and the same image lands on the same spot.
    train_again, val_b = project_2d(train_x, np.vstack([val_a[:3], rng.normal(size=(5, 20))]))
    np.testing.assert_allclose(train_again, train_xy)
    np.testing.assert_allclose(val_b[:3], val_xy[:3])
    with pytest.raises(ValueError, match="method must be one of"):
        project_2d(train_x, val_a, method="tsne")


def test_the_json_has_a_boundaries_list_and_a_reason_when_imagenet_is_missing():
    scores = scores_table({RANDOM: {k: 0.5 + k / 100 for k in PROBE_BOUNDARIES}}, PROBE_BOUNDARIES)
    result = ProbeResult(scores, image_size=32, num_train=10, num_validation=4, reason="No pretrained side: offline.")
    out: dict[str, Any] = result.to_json()  # read as plain JSON
    assert [b["freeze_at"] for b in out["boundaries"]] == [3, 6, 10, 14, 18]
    assert out["boundaries"][0] == {"freeze_at": 3, "layer": "block1_pool", "imagenet": None, "random": 0.53}
    assert out["reason"] == "No pretrained side: offline."
    assert "LogisticRegression" in out["classifier"]


def test_random_weights_ahead_of_imagenet_are_explained_where_they_are():
    imagenet = {3: 0.70, 6: 0.75, 10: 0.85, 14: 0.95, 18: 0.97}
    random = {3: 0.80, 6: 0.75, 10: 0.70, 14: 0.60, 18: 0.55}
    scores = scores_table({PRETRAINED: imagenet, RANDOM: random}, PROBE_BOUNDARIES)
    note = ProbeResult(scores, image_size=32, num_train=10, num_validation=4).random_ahead_note()
    assert "at block1_pool (80% against 70%), block2_pool (75% against 75%)." in note
    assert "block3_pool" not in note and "grows with depth" in note
    behind = scores_table({PRETRAINED: imagenet, RANDOM: dict.fromkeys(imagenet, 0.5)}, PROBE_BOUNDARIES)
    assert ProbeResult(behind, image_size=32, num_train=10, num_validation=4).random_ahead_note() == ""
    alone = scores_table({RANDOM: random}, PROBE_BOUNDARIES)  # no ImageNet side: nothing to compare
    assert ProbeResult(alone, image_size=32, num_train=10, num_validation=4).random_ahead_note() == ""


def test_random_weights_still_compare_against_the_default_pretrained_weights(monkeypatch, tmp_path):
    from tests.weights_files import write_keras3

    weights = write_keras3(tmp_path / "vgg.weights.h5")
    monkeypatch.setenv("TLLAB_WEIGHTS", str(weights))
    comparison = compared_weightings("none", seed=4)
    assert [w.side for w in comparison.weightings] == [PRETRAINED, RANDOM]
    assert comparison.pretrained.weights == str(weights) and comparison.random.seed == 4
    alone = compared_weightings("none", seed=4, fall_back=False)
    assert [w.side for w in alone.weightings] == [RANDOM] and "random weights (none) were asked for" in alone.reason
    monkeypatch.delenv("TLLAB_WEIGHTS")
    offline = compared_weightings(None)  # ImageNet, not downloaded into this test's empty Keras cache
    assert offline.pretrained is None and "ImageNet weights are not downloaded" in offline.reason


# --- the TensorFlow side: tiny images, generated weights --------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from tlcore.tf.training import prepare_data

    folder = make_dataset_folder(tmp_path_factory.mktemp("probe") / "data", n_train=8, n_val=4)
    return prepare_data(scan(folder), 32)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A real VGG16 weights file (random values drawn from seed 5), standing in for ImageNet's."""
    from tlcore.backbones import get_backbone
    from tlcore.tf.backbones import random_backbone

    path = tmp_path_factory.mktemp("weights") / "vgg16_seed5.weights.h5"
    random_backbone(get_backbone("vgg16"), 32, seed=5).save_weights(str(path))
    return path


def test_every_boundary_comes_from_one_pass_and_matches_each_layer_computed_alone(data, weights_file):
    import keras

    from tlcore.tf.backbones import backbone_for, outputs_model
    from tlcore.tf.probe import extract_inside_features

    comparison = Comparison((Weighting(PRETRAINED, str(weights_file), 0), Weighting(RANDOM, "none", 0)))
    done = []
    features = extract_inside_features(data, comparison, PROBE_BOUNDARIES, progress=lambda d, t: done.append((d, t)))
    assert done[-1] == (2 * (16 + 8), 2 * (16 + 8))  # both sides, both splits: 16 training + 8 validation images
    channels = {3: 64, 6: 128, 10: 256, 14: 512, 18: 512}
    for side in (PRETRAINED, RANDOM):
        for k, (train_x, val_x) in features.features[side].items():
            assert train_x.shape == (16, channels[k]) and val_x.shape == (8, channels[k])
    # block3_pool of the pretrained side, computed on its own: the mean of each channel's map.
    assert comparison.pretrained is not None
    base = backbone_for(comparison.pretrained, 32)
    alone = outputs_model(base, ["block3_pool"]).predict_on_batch(data.validation.images.astype("float32"))
    expected = keras.ops.convert_to_numpy(alone).mean(axis=(1, 2))
    np.testing.assert_allclose(features.at(PRETRAINED, 10)[1], expected, rtol=1e-4, atol=1e-5)
    # The two sides are different networks.
    assert not np.allclose(features.at(PRETRAINED, 18)[0], features.at(RANDOM, 18)[0])


def test_random_weights_come_from_the_seed(data):
    from tlcore.tf.probe import extract_inside_features

    def top_features(seed: int) -> np.ndarray:
        comparison = Comparison((Weighting(RANDOM, "none", seed),))
        return extract_inside_features(data, comparison, [18]).at(RANDOM, 18)[0]

    np.testing.assert_array_equal(top_features(3), top_features(3))
    assert not np.allclose(top_features(3), top_features(4))


def test_run_probe_scores_both_sides_at_every_boundary(data, weights_file):
    from tlcore.tf.probe import run_probe

    comparison = Comparison((Weighting(PRETRAINED, str(weights_file), 0), Weighting(RANDOM, "none", 0)))
    result = run_probe(data, comparison)
    assert [s.freeze_at for s in result.boundaries] == list(PROBE_BOUNDARIES)
    for score in result.boundaries:
        assert score.imagenet is not None and score.random is not None
        assert 0.0 <= score.imagenet <= 1.0 and 0.0 <= score.random <= 1.0
    assert result.to_json() == run_probe(data, comparison).to_json() | {"seconds": result.to_json()["seconds"]}
    assert (result.num_train, result.num_validation, result.image_size) == (16, 8, 32)


def test_the_head_s_last_hidden_layer_is_found_or_missing():
    from tlcore.config import HeadConfig
    from tlcore.tf.model import build_model
    from tlcore.tf.probe import hidden_layer_name

    assert hidden_layer_name(build_model(2, 32, head=HeadConfig(dense=(16, 8)))) == "head_dense_2"
    assert hidden_layer_name(build_model(2, 32, head=HeadConfig(dense=()))) is None


# --- the command ------------------------------------------------------------------------------------


def test_probe_json_without_pretrained_weights_gives_null_and_the_reason(tiny_dataset, monkeypatch, capsys):
    monkeypatch.delenv("TLLAB_WEIGHTS", raising=False)
    assert main(["probe", "--data", str(tiny_dataset), "--image-size", "32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [b["freeze_at"] for b in out["boundaries"]] == [3, 6, 10, 14, 18]
    assert all(b["imagenet"] is None and 0.0 <= b["random"] <= 1.0 for b in out["boundaries"])
    assert "ImageNet weights are not downloaded" in out["reason"]
    assert (out["train_images"], out["validation_images"]) == (24, 12)


def test_probe_prints_a_row_per_boundary_for_both_weightings(tiny_dataset, weights_file, capsys):
    assert main(["probe", "--data", str(tiny_dataset), "--image-size", "32", "--weights", str(weights_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "24 training, 12 validation images, 32 px" in lines[0]
    assert lines[1].split() == ["freeze_at", "layer", "ImageNet", "random"]
    rows = [line.split() for line in lines[2:7]]
    assert [(r[0], r[1]) for r in rows] == [(str(k), layer_at(k)) for k in PROBE_BOUNDARIES]
    assert all(0.0 <= float(r[2]) <= 1.0 and 0.0 <= float(r[3]) <= 1.0 for r in rows)


def test_probe_refuses_an_image_size_vgg16_cannot_take(tiny_dataset, capsys):
    assert main(["probe", "--data", str(tiny_dataset), "--image-size", "16"]) == 2
    assert "--image-size must be at least 32. Received: 16" in capsys.readouterr().err
