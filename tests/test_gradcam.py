"""Grad-CAM from the class score before the final activation, the blank-map message, and the overlay."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
from PIL import Image

from tlcore.tf.gradcam import (
    blank_map_message,
    colorbar_colours,
    explainer_for,
    gradcam,
    gradcam_model,
    gradcam_overlay,
    is_blank,
)
from tlcore.tf.inference import explain, probabilities

SIZE = 16


def red_green_model(bias: float, size: int = SIZE, conv_name: str = "last_conv") -> keras.Model:
    """A sigmoid classifier whose last conv layer has one "red" channel and one "green" channel.

    The red channel votes for class 1 and the green one for class 0 (Dense weights +1 and -1); a large
    `bias` makes it sure of class 1 whatever the image shows.
    """
    inputs = keras.Input((size, size, 3))
    conv = keras.layers.Conv2D(2, 1, activation="relu", name=conv_name)
    x = conv(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inputs, dense(x))
    red_minus_green = np.array([1.0, -1.0, 0.0]) / 255.0
    conv.set_weights(
        [np.stack([red_minus_green, -red_minus_green], axis=-1)[None, None].astype("float32"), np.zeros(2, "float32")]
    )
    dense.set_weights([np.array([[1.0], [-1.0]], "float32"), np.array([bias], "float32")])
    return model


def _left_red_right_green() -> np.ndarray:
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[:, : SIZE // 2] = (220, 20, 20)
    image[:, SIZE // 2 :] = (20, 220, 20)
    return image


def test_a_confident_sigmoid_model_gives_each_class_its_own_non_blank_map():
    model = red_green_model(bias=40.0)
    image = _left_red_right_green()
    p = probabilities(model, image[None].astype("float32"))[0, 1]
    assert p > 0.999  # 1.0 in float32: the probability's gradient is exactly zero here
    positive, cls = gradcam(model, image, class_index=1, layer_name="last_conv")
    assert cls == 1
    negative, _ = gradcam(model, image, class_index=0, layer_name="last_conv")  # the score -z
    half = SIZE // 2
    # Class 1's evidence is the red half; class 0's is the green half, although p(class 0) is 0.0.
    assert not is_blank(positive) and not is_blank(negative)
    np.testing.assert_allclose(positive[:, :half], 1.0, atol=1e-6)
    np.testing.assert_allclose(positive[:, half:], 0.0, atol=1e-6)
    np.testing.assert_allclose(negative[:, half:], 1.0, atol=1e-6)
    np.testing.assert_allclose(negative[:, :half], 0.0, atol=1e-6)
    # The bias changes the probabilities, not the maps.
    unsure = red_green_model(bias=0.0)
    np.testing.assert_allclose(gradcam(unsure, image, 1, "last_conv")[0], positive, atol=1e-6)


def test_a_map_with_no_positive_evidence_is_blank_and_explain_says_so():
    model = red_green_model(bias=40.0)
    red = np.zeros((SIZE, SIZE, 3), np.uint8)
    red[...] = (220, 20, 20)
    heatmap, _ = gradcam(model, red, class_index=0, layer_name="last_conv")
    assert is_blank(heatmap) and heatmap.shape == (SIZE, SIZE)  # nothing green: nothing raised class 0's score

    # explain names the class and shows no overlay rather than an empty one.
    explainer = gradcam_model(model, "last_conv")
    green = red.copy()
    green[...] = (20, 220, 20)
    buffer = io.BytesIO()
    Image.fromarray(green).save(buffer, format="PNG")
    unsure = red_green_model(bias=-5.0)  # green pushes it further to class 0: class 0 is predicted
    (result,), _ = explain(
        unsure, gradcam_model(unsure, "last_conv"), [("green.png", buffer.getvalue())], ["cats", "dogs"]
    )
    assert result.top_class == "cats" and result.overlay is not None and result.gradcam_note is None
    (result,), _ = explain(model, explainer, [("green.png", buffer.getvalue())], ["cats", "dogs"])
    assert result.top_class == "dogs"  # the bias wins, but no green region raised "dogs"'s score
    assert result.heatmap is not None
    assert is_blank(result.heatmap) and result.overlay is None
    assert result.gradcam_note == blank_map_message("dogs")
    assert "“dogs”" in result.gradcam_note and "no region" in result.gradcam_note


def test_a_model_without_class_scores_before_its_activation_has_no_explainer():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(2, 1, name="block5_conv3")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(2)(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax")(x))  # the softmax in a layer of its own
    assert explainer_for(model) is None
    with pytest.raises(ValueError, match="ends in a Dense layer"):
        gradcam_model(model)
    logits_model = keras.Model(inputs, x)  # a Dense with no activation: its outputs are the scores
    assert explainer_for(logits_model) is not None


def test_a_class_outside_the_model_is_refused():
    model = red_green_model(bias=0.0)
    with pytest.raises(ValueError, match="classes 0 and 1"):
        gradcam(model, _left_red_right_green(), class_index=2, layer_name="last_conv")


# --- the overlay ----------------------------------------------------------------------------


def test_gradcam_overlay_is_an_rgb_image_that_changes_only_where_the_heat_is():
    pixels = np.full((64, 64, 3), 128, dtype=np.uint8)
    heatmap = np.zeros((4, 4), dtype=np.float32)
    heatmap[0, 0] = 1.0  # hot top-left corner
    out = gradcam_overlay(pixels, heatmap)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    hot, cold = out[:4, :4].astype(int), out[-4:, -4:].astype(int)
    assert np.abs(hot - 128).max() > 40  # coloured where the heat is high
    assert hot[..., 0].mean() > hot[..., 2].mean()  # ...and the hot end of jet is red
    # Where the heat is zero, jet is dark blue: blended at 0.4, not the hot colour.
    assert cold[..., 2].mean() > cold[..., 0].mean()
    np.testing.assert_array_equal(gradcam_overlay(pixels, heatmap, alpha=0.0), pixels)


def test_gradcam_overlay_checks_its_inputs():
    with pytest.raises(ValueError, match="square"):
        gradcam_overlay(np.zeros((10, 12, 3), np.uint8), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="alpha"):
        gradcam_overlay(np.zeros((8, 8, 3), np.uint8), np.zeros((2, 2)), alpha=2.0)


def test_the_colour_bar_runs_the_overlays_colour_map_from_low_to_high():
    colours = colorbar_colours(224)
    assert len(colours) == 112  # 2 px each
    # jet: dark blue at "low", dark red at "high", like the overlay's cold and hot regions
    low, high = (tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in (colours[0], colours[-1]))
    assert low[2] > 100 and low[0] == 0 and high[0] > 100 and high[2] == 0
    # The overlay of a heat of 0 and of 1 leans to the same ends.
    cold_and_hot = gradcam_overlay(np.zeros((2, 2, 3), np.uint8), np.array([[0.0, 1.0], [0.0, 1.0]]), alpha=1.0)
    assert tuple(cold_and_hot[0, 0]) == low and tuple(cold_and_hot[0, 1]) == high
