"""Model building, freeze points, layer table and weights loading (weights=None, 32 px)."""

from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest

from tests.weights_files import write_keras3, write_legacy
from tlcore import backbones
from tlcore.architecture import counts_at, with_freeze_point
from tlcore.backbones import WeightsError, get_backbone
from tlcore.config import HeadConfig
from tlcore.tf import backbones as tf_backbones
from tlcore.tf.backbones import build_base, load_weights_file
from tlcore.tf.layers import CaffePreprocess
from tlcore.tf.model import (
    backbone_layers,
    build_model,
    freeze_point_of,
    layer_table,
    load_model,
    param_counts,
    set_freeze_point,
)

VGG = get_backbone("vgg16")
VGG_NAMES = [
    "block1_conv1",
    "block1_conv2",
    "block1_pool",
    "block2_conv1",
    "block2_conv2",
    "block2_pool",
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block3_pool",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block4_pool",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
    "block5_pool",
]


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_model(3, image_size=32, weights="none", head=HeadConfig(dense=(16,), dropout=0.0))


def test_preprocess_layer_matches_vgg16_preprocess_input():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    expected = keras.applications.vgg16.preprocess_input(x.copy())
    np.testing.assert_allclose(CaffePreprocess()(x), expected, atol=1e-4)
    # Not a 1/255 rescale: values stay in the hundreds around zero.
    assert float(np.abs(CaffePreprocess()(x)).max()) > 50


def test_model_is_a_flat_chain(model):
    assert [layer.name for layer in backbone_layers(model)] == VGG_NAMES
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.layers[1].name == "preprocess"
    assert model.output_shape == (None, 3)
    assert model.get_layer("block5_conv3").output.shape[1:] == (2, 2, 512)


def test_block_boundaries():
    assert VGG.block_boundaries == (0, 3, 6, 10, 14, 18)
    assert VGG.num_layers == 18


@pytest.mark.parametrize("freeze_at", [0, 3, 6, 10, 14, 18, 7])
def test_freeze_point_sets_trainable_and_counts_match_keras(model, freeze_at):
    set_freeze_point(model, freeze_at)
    layers = backbone_layers(model)
    assert [layer.trainable for layer in layers] == [i >= freeze_at for i in range(18)]
    assert freeze_point_of(model) == freeze_at
    trainable, frozen = param_counts(model)
    assert trainable + frozen == model.count_params()
    frozen_expected = sum(layer.count_params() for layer in layers[:freeze_at])
    assert frozen == frozen_expected
    keras_trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == keras_trainable
    # The table predicts the same counts without touching the model.
    assert counts_at(layer_table(model), freeze_at) == (trainable, frozen)


def test_vgg16_parameter_counts_are_the_published_ones(model):
    set_freeze_point(model, 18)
    trainable, frozen = param_counts(model)
    assert frozen == 14_714_688  # VGG16 convolutional base, include_top=False
    assert trainable == 2 * 512 + 512 * 16 + 16 + 16 * 3 + 3  # the head: normalisation, dense, output


def test_layer_table_columns_and_blocks(model):
    set_freeze_point(model, 14)
    table = layer_table(model)
    assert list(table.columns) == [
        "freeze_index",
        "name",
        "type",
        "output_shape",
        "params",
        "trainable",
        "block",
        "part",
    ]
    backbone = table[table.part == "backbone"]
    assert list(backbone.name) == VGG_NAMES
    assert list(backbone.freeze_index) == list(range(1, 19))
    assert list(backbone.block)[:3] == ["block1"] * 3 and list(backbone.block)[-4:] == ["block5"] * 4
    row = table.set_index("name").loc["block3_conv1"]
    assert (row.type, row.output_shape, row.params, row.trainable) == ("Conv2D", "8x8x256", 295168, False)
    assert table.set_index("name").loc["block5_conv1"].trainable
    assert table.params.sum() == model.count_params()
    # What the table would say at another freeze point, computed without the model.
    moved = with_freeze_point(table, 3)
    assert list(moved[moved.part == "backbone"].trainable) == [i >= 3 for i in range(18)]


def test_freeze_point_out_of_range_is_refused(model):
    with pytest.raises(ValueError, match="freeze_at=19"):
        set_freeze_point(model, 19)


@pytest.mark.parametrize(
    ("head", "output_shape", "head_layers"),
    [
        (
            HeadConfig(pooling="flatten", dense=(512,), dropout=0.5),
            (None, 2),
            ["head_flatten", "head_norm", "head_dense_1", "head_dropout_1"],
        ),
        (
            HeadConfig(pooling="max", dense=(1024, 1024, 512), dropout=0.0),
            (None, 2),
            ["head_max_pool", "head_norm", "head_dense_1", "head_dense_2", "head_dense_3"],
        ),
        (HeadConfig(pooling="avg", dense=(), dropout=0.0, output="sigmoid"), (None, 1), ["head_avg_pool", "head_norm"]),
        (  # a head as the lab built it before normalising its input (an older run.json's)
            HeadConfig(pooling="avg", dense=(8,), dropout=0.0, normalize=False),
            (None, 2),
            ["head_avg_pool", "head_dense_1"],
        ),
    ],
)
def test_head_options(head, output_shape, head_layers):
    m = build_model(2, image_size=32, weights="none", head=head)
    names = [layer.name for layer in m.layers[20:]]
    assert names == [*head_layers, "predictions"]
    assert m.output_shape == output_shape


def test_bad_head_and_class_counts_are_refused():
    with pytest.raises(ValueError, match="pooling='maxx'"):
        HeadConfig(pooling="maxx")
    with pytest.raises(ValueError, match="sigmoid output needs exactly 2 classes"):
        build_model(3, image_size=32, head=HeadConfig(output="sigmoid"))
    with pytest.raises(ValueError, match="num_classes=1"):
        build_model(1, image_size=32)
    with pytest.raises(ValueError, match="image_size=16"):
        build_model(2, image_size=16)


def test_saved_model_reloads_in_safe_mode_with_same_predictions(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = load_model(str(path))
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(reloaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    assert isinstance(reloaded.get_layer("preprocess"), CaffePreprocess)


# --- weights ---------------------------------------------------------------------------


def _reference_base(seed: int = 3) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_base(VGG, 32)


def _assert_same_weights(a: keras.Model, b_layers) -> None:
    for got, want in zip(a, b_layers):
        np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """A Keras 3 .weights.h5 and a legacy-format .h5 of the same random VGG16."""
    from keras.src.legacy.saving import legacy_h5_format

    folder = tmp_path_factory.mktemp("weights")
    base = _reference_base()
    keras3 = folder / "vgg.weights.h5"
    base.save_weights(keras3)
    legacy = folder / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(legacy, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, base)
    return {"keras3": keras3, "legacy": legacy, "expected": [w.numpy() for w in base.weights]}


@pytest.mark.parametrize("kind", ["keras3", "legacy"])
def test_weights_file_loads_whatever_its_name(weight_files, tmp_path, kind):
    target = build_base(VGG, 32)
    load_weights_file(target, weight_files[kind], VGG)
    _assert_same_weights([w.numpy() for w in target.weights], weight_files["expected"])
    # Content, not the file name, decides how it is read.
    renamed = tmp_path / "my-weights.bin"
    renamed.write_bytes(weight_files[kind].read_bytes())
    target = build_base(VGG, 32)
    load_weights_file(target, renamed, VGG)
    _assert_same_weights([w.numpy() for w in target.weights], weight_files["expected"])


@pytest.mark.parametrize("write", [write_keras3, write_legacy])
def test_the_layouts_the_check_accepts_are_the_ones_keras_loads(tmp_path, write):
    # The TensorFlow-free check (tlcore.backbones.check_weights_file) and Keras agree on both layouts.
    path = write(tmp_path / "tiny-vgg16.h5")  # right shapes, no data: every weight reads back as 0
    target = build_base(VGG, 32)
    load_weights_file(target, path, VGG)
    assert all(not np.any(w.numpy()) for w in target.weights)


def test_build_model_with_weights_file_uses_them(weight_files):
    m = build_model(2, image_size=32, weights=str(weight_files["legacy"]))
    got = [w.numpy() for layer in backbone_layers(m) for w in layer.weights]
    _assert_same_weights(got, weight_files["expected"])


def test_weights_file_that_does_not_fit_is_refused(tmp_path):
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    wrong = tmp_path / "dense.weights.h5"
    small.save_weights(wrong)
    with pytest.raises(WeightsError, match="does not fit vgg16"):
        load_weights_file(build_base(VGG, 32), wrong, VGG)
    not_hdf5 = tmp_path / "notes.h5"
    not_hdf5.write_text("hello")
    with pytest.raises(WeightsError, match="not a readable HDF5"):
        load_weights_file(build_base(VGG, 32), not_hdf5, VGG)
    with pytest.raises(WeightsError, match="not found"):
        build_model(2, image_size=32, weights=str(tmp_path / "missing.h5"))


def test_weights_env_names_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("TLLAB_WEIGHTS", raising=False)
    assert backbones.default_weights() == "imagenet"
    monkeypatch.setenv("TLLAB_WEIGHTS", str(tmp_path / "w.h5"))
    assert backbones.normalize_weights(None) == str((tmp_path / "w.h5").resolve())
    assert backbones.normalize_weights("Scratch") == "none"
    assert backbones.normalize_weights("ImageNet") == "imagenet"


def test_imagenet_offline_fails_fast_with_two_ways_out(monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("must not try to download when the host is unreachable")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    with pytest.raises(WeightsError) as err:
        build_model(2, image_size=32, weights="imagenet")
    message = str(err.value)
    assert "could not be downloaded" in message and "not reachable" in message
    assert "--weights none" in message and "weights file" in message and "TLLAB_WEIGHTS" in message


def test_imagenet_download_failure_is_explained(monkeypatch):
    monkeypatch.setattr(tf_backbones, "can_reach", lambda url, timeout=3.0: True)

    def failing(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", failing)
    with pytest.raises(WeightsError, match=r"URL fetch failure.*--weights none"):
        tf_backbones.download_imagenet(VGG)


def test_imagenet_download_path_with_mocked_download(monkeypatch, weight_files):
    calls = []

    def fake_get_file(fname, origin, cache_subdir, file_hash):
        calls.append((fname, origin, cache_subdir, file_hash))
        return str(weight_files["legacy"])

    monkeypatch.setattr(tf_backbones, "can_reach", lambda url, timeout=3.0: True)
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    m = build_model(2, image_size=32, weights="imagenet")
    assert calls == [(VGG.imagenet_file, VGG.imagenet_url, "models", VGG.imagenet_md5)]
    got = [w.numpy() for layer in backbone_layers(m) for w in layer.weights]
    _assert_same_weights(got, weight_files["expected"])


def test_imagenet_from_keras_cache_needs_no_network(monkeypatch, tmp_path, weight_files):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / VGG.imagenet_file).write_bytes(weight_files["legacy"].read_bytes())
    ok, message = backbones.weights_status("imagenet")
    assert ok and "Keras cache" in message
    m = build_model(2, image_size=32, weights="imagenet")  # sockets are blocked in tests
    got = [w.numpy() for layer in backbone_layers(m) for w in layer.weights]
    _assert_same_weights(got, weight_files["expected"])


def test_weights_status_in_plain_words(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    ok, message = backbones.weights_status("imagenet")
    assert not ok and "not downloaded" in message
    ok, message = backbones.weights_status("none")
    assert ok and "no transfer (random weights)" in message
    ok, message = backbones.weights_status(str(tmp_path / "nope.h5"))
    assert not ok and "not found" in message
