"""Grad-CAM: which regions of an image raised a class's score, and the overlay that shows them.

Grad-CAM (Selvaraju et al., 2017) weighs each channel of the last conv
layer's activations by the mean gradient of the class score with respect to
it, sums the weighted channels, and keeps the positive part. The score is the
class's logit, taken *before* the final softmax or sigmoid, as in the paper
and the keras-io example: a probability saturates, so with a confident model
(p = 1.0 in float32) its gradient is exactly zero and the map would come out
blank (a sigmoid head's logits: see `class_score`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from matplotlib import colormaps
from matplotlib.colors import to_hex
from PIL import Image

from tlcore.backbone_facts import DEFAULT_BACKBONE
from tlcore.backbones import get_backbone

COLORMAP = "jet"  # matplotlib's name; the overlay and its colour bar use the same map
OVERLAY_ALPHA = 0.4  # weight of the colour map over the image
# Final activations whose inputs are the class scores Grad-CAM differentiates.
SCORE_ACTIVATIONS = ("softmax", "sigmoid", "linear")


@dataclass(frozen=True)
class Explainer:
    """What Grad-CAM needs from a classifier: a model to (conv activations, the output layer's input), and that layer.

    Build one with `explainer_for`, once per model, and reuse it for every image. The gradient model
    stops at the output layer's input; the logits are computed from the output Dense layer's own
    kernel and bias under the tape (`scores`), so they use the model's live weights whether it is
    fresh from training or reloaded.
    """

    features: keras.Model
    output_layer: keras.layers.Dense  # ending in softmax, sigmoid or no activation (linear)

    def scores(self, inputs: tf.Tensor) -> tf.Tensor:
        """The output layer's logits for its inputs: the class scores before the final activation."""
        kernel = tf.cast(self.output_layer.kernel, inputs.dtype)
        logits = tf.matmul(inputs, kernel)
        if self.output_layer.use_bias:
            logits = logits + tf.cast(self.output_layer.bias, inputs.dtype)
        return logits


def gradcam_model(model: keras.Model, layer_name: str | None = None) -> Explainer:
    """The Grad-CAM explainer of `model` at `layer_name` (default: the backbone's last conv layer).

    Raises:
        ValueError: the model has no such layer, or does not end in a Dense layer with a
            softmax, sigmoid or linear activation (there would be no class score to differentiate).
    """
    layer_name = layer_name or get_backbone(DEFAULT_BACKBONE).last_conv_layer
    conv = model.get_layer(layer_name)  # raises ValueError naming the layer when it is missing
    output_layer = model.layers[-1]
    activation = output_layer.get_config().get("activation") if isinstance(output_layer, keras.layers.Dense) else None
    if activation not in SCORE_ACTIVATIONS:
        raise ValueError(
            f"Grad-CAM needs a model that ends in a Dense layer with one of the activations "
            f"{SCORE_ACTIVATIONS}. Received: {type(output_layer).__name__} {output_layer.name!r}"
            f"{f' with activation={activation!r}' if activation else ''}"
        )
    features = keras.Model(model.inputs, [conv.output, output_layer.input], name=f"gradcam_{layer_name}")
    return Explainer(features, output_layer)


def explainer_for(model: keras.Model) -> Explainer | None:
    """`gradcam_model(model)`, or None for a model Grad-CAM cannot explain (no backbone's last conv layer,
    or no class scores before its final activation: not built by this app)."""
    try:
        return gradcam_model(model)
    except ValueError:
        return None


def predicted_class(scores: tf.Tensor | np.ndarray) -> int:
    """The class a row of scores (logits) predicts; a single sigmoid logit predicts class 1 when it is >= 0."""
    scores = np.asarray(scores).reshape(-1)
    if scores.size == 1:
        return int(scores[0] >= 0.0)
    return int(np.argmax(scores))


def class_score(scores: tf.Tensor, class_index: int) -> tf.Tensor:
    """The score of one class per image: its logit; with one sigmoid logit z, class 1 is z and class 0 is -z
    (its probability is sigmoid(-z))."""
    if scores.shape[-1] == 1:
        if class_index not in (0, 1):
            raise ValueError(f"A sigmoid head has classes 0 and 1. Received: class_index={class_index}")
        return scores[:, 0] if class_index == 1 else -scores[:, 0]
    if not 0 <= class_index < scores.shape[-1]:
        raise ValueError(f"The model has {scores.shape[-1]} classes. Received: class_index={class_index}")
    return scores[:, class_index]


def gradcam(
    model: keras.Model,
    pixels: np.ndarray,
    class_index: int | None = None,
    layer_name: str | None = None,
    grad_model: Explainer | None = None,
) -> tuple[np.ndarray, int]:
    """Grad-CAM heatmap of one image for one class, from the class's score before the final activation.

    Args:
        pixels: uint8 or float (size, size, 3) raw RGB.
        class_index: the class to explain; None = the predicted class.
        grad_model: reuse one from `explainer_for` / `gradcam_model` when explaining many images.

    Returns:
        (heatmap, class_index): heatmap is float32 in [0, 1] at the conv
        layer's resolution (e.g. 4x4 for 64 px input with VGG16's block5);
        all zeros when no region raised the class's score (`is_blank`).
    """
    heatmaps, classes = gradcams(model, np.asarray(pixels)[None], [class_index], layer_name, grad_model)
    return heatmaps[0], classes[0]


def gradcams(
    model: keras.Model,
    pixels: np.ndarray,
    class_indices: Sequence[int | None],
    layer_name: str | None = None,
    grad_model: Explainer | None = None,
) -> tuple[np.ndarray, list[int]]:
    """`gradcam` of a batch in one pass: image i explained for class_indices[i] (None: its predicted class).

    One gradient of the summed scores gives every image its own: image i's score depends on its own
    activations only (VGG16 has no batch statistics at inference). The same image may appear several
    times, once per class to explain.

    Returns:
        (heatmaps, class_indices): float32 (n, h, w) in [0, 1], and the class each map explains.
    """
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 4 or len(class_indices) != len(pixels):
        raise ValueError(
            f"Expected a batch of images (n, size, size, 3) and one class per image. Received shape "
            f"{pixels.shape} and {len(class_indices)} classes"
        )
    grad_model = grad_model or gradcam_model(model, layer_name)
    x = tf.convert_to_tensor(pixels)
    with tf.GradientTape() as tape:
        activations, head_inputs = grad_model.features(x, training=False)
        scores = grad_model.scores(head_inputs)
        chosen = [predicted_class(row) if c is None else int(c) for c, row in zip(class_indices, scores.numpy())]
        score = tf.reduce_sum(tf.stack([class_score(scores[i : i + 1], c)[0] for i, c in enumerate(chosen)]))
    grads = tape.gradient(score, activations)
    weights = tf.reduce_mean(grads, axis=(1, 2))  # one weight per channel and image
    cams = tf.nn.relu(tf.reduce_sum(activations * weights[:, None, None, :], axis=-1)).numpy()
    peaks = cams.max(axis=(1, 2), keepdims=True)
    heatmaps = np.divide(cams, peaks, out=np.zeros_like(cams), where=peaks > 0)
    return heatmaps.astype(np.float32), chosen


def is_blank(heatmap: np.ndarray) -> bool:
    """True when the map has no heat at all: nothing to overlay."""
    return not np.any(np.asarray(heatmap) > 0)


def blank_map_message(class_name: str) -> str:
    """What to tell people instead of showing an empty map."""
    return (
        f"Grad-CAM found no region that raised the score of “{class_name}”: at the last convolution every "
        "region's evidence was zero or pointed to another class, so there is no map to show."
    )


# --- the overlay --------------------------------------------------------------------------


def upsample_heatmap(heatmap: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a [0, 1] heatmap to size x size."""
    image = Image.fromarray(np.uint8(np.clip(heatmap, 0, 1) * 255))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def gradcam_overlay(
    pixels: np.ndarray, heatmap: np.ndarray, alpha: float = OVERLAY_ALPHA, colormap: str = COLORMAP
) -> np.ndarray:
    """Blend a Grad-CAM heatmap over an image.

    Args:
        pixels: uint8 (H, W, 3) RGB; the heatmap is resized to H x W (H == W).
        heatmap: floats in [0, 1] at the conv layer's resolution (e.g. 4x4).
        alpha: weight of the colour map; 0 gives the image back unchanged.

    Returns:
        uint8 (H, W, 3) RGB: the image where the heat is low, red where it is high.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[-1] != 3 or pixels.shape[0] != pixels.shape[1]:
        raise ValueError(f"pixels must be a square (H, W, 3) RGB image. Received shape {pixels.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]. Received: alpha={alpha}")
    heat = upsample_heatmap(np.asarray(heatmap, dtype=np.float32), pixels.shape[0])
    colours = colormaps[colormap](heat)[..., :3] * 255.0  # RGBA floats in [0, 1] -> RGB 0..255
    blended = (1.0 - alpha) * pixels.astype(np.float32) + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def colorbar_colours(width: int, colormap: str = COLORMAP) -> list[str]:
    """The overlay's colour map from "low" to "high" as hex colours, one per 2 px of a colour bar `width` px wide.

    Whole-pixel blocks: fractional ones show seams between them. `dashboard.charts.gradcam_colorbar` draws them.
    """
    return [to_hex(c) for c in colormaps[colormap](np.linspace(0.0, 1.0, max(width // 2, 2)))]
