"""What one VGG16 layer makes of one image: its feature maps, the most active channels first.

A layer's output is h x w x channels numbers: one map per channel (filter),
bright where that filter found its pattern. `tlcore.featuremaps` lays the maps
out as a picture; here they are computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from tlcore.featuremaps import DEFAULT_TOP, check_layer, shape_text
from tlcore.tf.backbones import outputs_model
from tlcore.tf.inference import ImageInput, image_size_of, to_pixels


@dataclass(frozen=True)
class FeatureMaps:
    """One layer's response to one image: its shape, every channel by activity, and the top maps."""

    layer: str
    shape: tuple[int, int, int]  # the layer's output: height, width, channels
    channels: np.ndarray  # int (channels,): every channel index, most active first (by mean activation)
    maps: np.ndarray  # float32 (top, height, width): the maps of channels[:top], in that order
    mean_activations: np.ndarray  # float32 (top,): the mean of each of those maps

    @property
    def top_channels(self) -> list[int]:
        """The channels whose maps are in `maps`, most active first."""
        return [int(c) for c in self.channels[: len(self.maps)]]

    @property
    def shape_text(self) -> str:
        """'32 × 32 × 256'."""
        return shape_text(self.shape)


def layer_model(base: keras.Model, layer: str) -> keras.Model:
    """A model from raw RGB pixels to one layer's output; build it once to reuse for many images.

    Raises:
        ValueError: VGG16 has no such layer (the message lists its layers).
    """
    return outputs_model(base, [check_layer(layer)])


def feature_maps(
    base: keras.Model, image: ImageInput, layer: str, top: int = DEFAULT_TOP, model: keras.Model | None = None
) -> FeatureMaps:
    """The layer's activations for one image, as maps ordered by mean activation.

    Args:
        base: VGG16's convolutional base (`tlcore.tf.backbones.backbone_for`), with the weights to look through.
        image: a path, bytes, file object, PIL image or array (`to_pixels`): resized to the base's input size.
        layer: a VGG16 layer name (`tlcore.featuremaps.LAYER_NAMES`).
        top: how many maps to keep (all channels when the layer has fewer).
        model: `layer_model(base, layer)` built earlier, to skip building it again.

    Raises:
        ValueError: an unknown layer, or top < 1.
        tlcore.imageio.ImageProblem: an image that cannot be read.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1. Received: top={top}")
    model = model if model is not None else layer_model(base, layer)
    pixels = to_pixels(image, image_size_of(base))
    # One image: a direct call, no per-model tf.function to trace as predict would.
    outputs = model(pixels[None].astype(np.float32), training=False)
    activations = np.asarray(outputs[0] if isinstance(outputs, list | tuple) else outputs)[0]  # one named layer
    means = activations.mean(axis=(0, 1))
    order = np.argsort(-means, kind="stable")  # ties (channels silent everywhere) keep their index order
    kept = order[:top]
    return FeatureMaps(
        layer=layer,
        shape=(int(activations.shape[0]), int(activations.shape[1]), int(activations.shape[2])),
        channels=order,
        maps=np.ascontiguousarray(np.moveaxis(activations[..., kept], -1, 0), dtype=np.float32),
        mean_activations=means[kept].astype(np.float32),
    )
