"""What the frozen layers see: one layer's feature maps (tlcore.tf.activations), their mosaic and the layer at a
freeze point (tlcore.featuremaps), and the `featuremaps` command."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from tests.helpers import make_image
from tests.test_cli import assert_one_line_error, run_cli
from tests.weights_files import write_keras3
from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.featuremaps import (
    GAP,
    GAP_COLOUR,
    LAYER_NAMES,
    MAP_COLORMAP,
    check_layer,
    default_layer,
    default_layer_note,
    grid_shape,
    is_frozen,
    mosaic,
    shape_text,
)
from tlcore.inside import RANDOM, SIDE_TITLES, Weighting
from tlcore.tf.activations import feature_maps, layer_model
from tlcore.tf.backbones import backbone_for

SIZE = 32


@pytest.fixture(scope="module")
def base() -> keras.Model:
    return backbone_for(Weighting(RANDOM, "none", seed=3), SIZE)


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.asarray(make_image((200, 90, 40), size=SIZE, seed=5))


def direct_activations(base: keras.Model, pixels: np.ndarray, layer: str) -> np.ndarray:
    """The layer's output computed the plain Keras way: VGG16's preprocess_input, then the base up to the layer."""
    x = keras.applications.vgg16.preprocess_input(pixels[None].astype(np.float32))
    return np.asarray(keras.Model(base.input, base.get_layer(layer).output)(x))[0]


@pytest.mark.parametrize("layer", ["block1_conv1", "block2_conv2", "block3_pool"])
def test_maps_are_the_layers_activations_most_active_first(base, pixels, layer):
    maps = feature_maps(base, pixels, layer, top=8)
    expected = direct_activations(base, pixels, layer)
    means = expected.mean(axis=(0, 1))
    assert maps.layer == layer and maps.shape == expected.shape
    assert sorted(maps.channels.tolist()) == list(range(expected.shape[-1]))  # every channel, once
    assert np.all(np.diff(means[maps.channels]) <= 1e-4)  # most active first
    assert maps.top_channels == maps.channels[:8].tolist() and maps.maps.shape == (8, *expected.shape[:2])
    np.testing.assert_allclose(maps.maps, np.moveaxis(expected[..., maps.top_channels], -1, 0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(maps.mean_activations, means[maps.top_channels], rtol=1e-4, atol=1e-4)
    assert maps.mean_activations[0] > 0  # random weights still respond: a real ordering, not ties at zero


def test_shapes_follow_the_layer_and_top_is_capped_by_the_channels(base, pixels):
    assert feature_maps(base, pixels, "block3_conv3").shape_text == "8 × 8 × 256"
    last = feature_maps(base, pixels, "block5_pool", top=600)
    assert last.shape == (1, 1, 512) and last.maps.shape == (512, 1, 1)
    again = feature_maps(base, pixels, "block5_pool", top=600, model=layer_model(base, "block5_pool"))
    np.testing.assert_array_equal(again.maps, last.maps)  # a reused layer model gives the same maps
    with pytest.raises(ValueError, match="top must be at least 1"):
        feature_maps(base, pixels, "block1_conv1", top=0)


def test_an_unknown_layer_is_refused_with_the_list_of_layers(base, pixels):
    for call in (lambda: feature_maps(base, pixels, "block6_conv1"), lambda: check_layer("block6_conv1")):
        with pytest.raises(ValueError) as err:  # noqa: PT011 - the message is checked below, in two parts
            call()
        assert "'block6_conv1'" in str(err.value)
        assert all(name in str(err.value) for name in LAYER_NAMES)


def test_the_default_layer_is_the_last_frozen_one():
    assert len(LAYER_NAMES) == VGG16_LAYERS == 18
    assert default_layer(18) == "block5_pool"
    assert default_layer(10) == "block3_pool"  # blocks 1-3 frozen
    assert default_layer(9) == "block3_conv3"
    assert default_layer(1) == "block1_conv1"
    assert is_frozen("block3_pool", 10) and not is_frozen("block4_conv1", 10)
    assert default_layer_note(10) == "block3_pool is the last of the 10 frozen layers at freeze point 10."
    with pytest.raises(ValueError, match="freeze_at=19"):
        default_layer(19)


def test_nothing_frozen_shows_the_first_conv_layer_and_says_so():
    assert default_layer(0) == "block1_conv1"
    assert not is_frozen("block1_conv1", 0)
    note = default_layer_note(0)
    assert "Nothing is frozen" in note and "first conv layer, block1_conv1" in note


def test_mosaic_lays_out_maps_in_a_grid_of_sharp_cells():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(5, 4, 4)).astype(np.float32) * 50 + 7  # any range: each cell is scaled on its own
    maps[3] = 2.0  # a flat map
    image = mosaic(maps)
    assert grid_shape(5) == (2, 3)
    cell = 4 * 24  # a 4 px map blown up 24 times to reach 96 px
    assert image.dtype == np.uint8 and image.shape == (2 * cell + GAP, 3 * cell + 2 * GAP, 3)
    low, high = (np.rint(np.array(colormaps[MAP_COLORMAP](v)[:3]) * 255).astype(np.uint8) for v in (0.0, 1.0))
    for i in range(6):
        row, column = divmod(i, 3)
        block = image[
            row * (cell + GAP) : row * (cell + GAP) + cell, column * (cell + GAP) : column * (cell + GAP) + cell
        ]
        if i == 5:  # no sixth map: an empty white cell
            assert np.all(block == GAP_COLOUR)
        elif i == 3:  # flat: all the colour map's low end
            assert np.all(block == low)
        else:  # the map's lowest value is the low end, its highest the high end; 24 x 24 blocks of one colour
            colours = block.reshape(-1, 3)
            assert (colours == low).all(axis=1).any() and (colours == high).all(axis=1).any()
            np.testing.assert_array_equal(block, np.repeat(np.repeat(block[::24, ::24], 24, axis=0), 24, axis=1))
    assert np.all(image[cell : cell + GAP] == GAP_COLOUR)  # the gap between the two rows
    big = mosaic(rng.normal(size=(4, 128, 128)))  # already big enough: not blown up
    assert big.shape == (2 * 128 + GAP, 2 * 128 + GAP, 3)


def test_shape_text():
    assert shape_text((32, 32, 256)) == "32 × 32 × 256"


def _featuremaps(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """`tllab featuremaps ARGS` in this process (TensorFlow is loaded here already; a subprocess would load it
    again for seconds), as run_cli runs it: no TLLAB_WEIGHTS. (exit code, stdout, stderr)."""
    from tlcore.cli import main

    monkeypatch.delenv("TLLAB_WEIGHTS", raising=False)
    capsys.readouterr()
    code = main(["featuremaps", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_featuremaps_command_writes_the_png_and_prints_the_top_channels(tmp_path, capsys, monkeypatch):
    image = tmp_path / "cat.png"
    make_image((30, 160, 200), size=48, seed=1).save(image)
    out = tmp_path / "maps.png"
    code, stdout, stderr = _featuremaps(
        capsys,
        monkeypatch,
        "--image",
        str(image),
        "--weights",
        str(write_keras3(tmp_path / "tiny.weights.h5")),
        "--image-size",
        str(SIZE),
        "--freeze-at",
        "6",
        "--top",
        "4",
        "--seed",
        "3",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0] == "block2_pool · 8 × 8 × 128 (height × width × channels)"
    assert lines[1] == default_layer_note(6)
    assert lines[2].startswith("ImageNet weights: most active channels (mean activation): ")
    # The random side is the network `backbone_for` builds for seed 3: the same top channels.
    expected = feature_maps(backbone_for(Weighting(RANDOM, "none", 3), SIZE), image, "block2_pool", top=4)
    shown = ", ".join(f"{c} ({m:,.2f})" for c, m in zip(expected.top_channels, expected.mean_activations))
    assert lines[3] == f"{SIDE_TITLES[RANDOM]} (seed 3): most active channels (mean activation): {shown}"
    assert lines[4] == f"wrote {out}"
    with Image.open(out) as png:
        assert png.format == "PNG" and png.width > 2 * png.height  # the image and two mosaics side by side


def test_featuremaps_command_json_without_pretrained_weights(tmp_path, capsys, monkeypatch):
    image = tmp_path / "cat.png"
    make_image((30, 160, 200), size=48, seed=1).save(image)
    code, stdout, stderr = _featuremaps(
        capsys,
        monkeypatch,
        "--image",
        str(image),
        "--weights",
        "none",
        "--image-size",
        str(SIZE),
        "--layer",
        "block1_conv2",
        "--top",
        "3",
        "--out",
        str(tmp_path / "maps.png"),
        "--json",
    )
    assert code == 0, stderr
    report = json.loads(stdout)  # JSON only on stdout
    assert report["layer"] == "block1_conv2" and report["shape"] == [SIZE, SIZE, 64]
    assert [side["side"] for side in report["sides"]] == [RANDOM]  # no ImageNet weights in this Keras cache
    assert len(report["sides"][0]["channels"]) == 3 and report["reason"].startswith("No pretrained side")
    assert "Showing random weights alone" in stderr
    assert (tmp_path / "maps.png").stat().st_size > 0


def test_featuremaps_command_refuses_an_unknown_layer(tmp_path):
    proc = run_cli("featuremaps", "--image", "x.png", "--layer", "block9_conv9", "--out", str(tmp_path / "m.png"))
    assert_one_line_error(proc, 2, "no layer 'block9_conv9'", "block1_conv1", "block5_pool")
    assert not (tmp_path / "m.png").exists()
