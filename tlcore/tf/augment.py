"""Random augmentation as Keras layers: training's augmenter, and the Dataset page's preview drawn by it."""

from __future__ import annotations

import keras
import numpy as np

from tlcore.config import AugmentConfig
from tlcore.preview import augmentation_is_identity


def build_augmenter(augment: AugmentConfig, seed: int = 0) -> keras.Sequential:
    """Keras preprocessing layers for the chosen augmentations (call with training=True)."""
    layers: list[keras.layers.Layer] = []
    if augment.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if augment.rotation:
        layers.append(keras.layers.RandomRotation(augment.rotation, fill_mode="reflect", seed=seed + 1))
    if augment.zoom:
        layers.append(keras.layers.RandomZoom(augment.zoom, fill_mode="reflect", seed=seed + 2))
    if augment.translation:
        layers.append(
            keras.layers.RandomTranslation(augment.translation, augment.translation, fill_mode="reflect", seed=seed + 3)
        )
    if augment.contrast:
        layers.append(keras.layers.RandomContrast(augment.contrast, value_range=(0, 255), seed=seed + 4))
    return keras.Sequential(layers, name="augment")


def augment_preview(pixels: np.ndarray, augment: AugmentConfig, n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """n random augmentations of one image, drawn as training would draw them.

    Uses the same Keras preprocessing layers as training
    (`build_augmenter`), run in training mode (in inference
    mode they pass images through unchanged). The n copies go through as one
    batch, so each gets its own random draw. `augment.enabled` is ignored:
    the preview shows what the settings would do.

    Args:
        pixels: uint8 RGB image, shape (height, width, 3).
        augment: the augmentation settings.
        n: number of augmented versions.
        seed: the same seed gives the same previews.

    Returns:
        n uint8 arrays shaped like `pixels`; n copies of it when every
        augmentation is off (see `augmentation_is_identity`).
    """
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ValueError(f"pixels must have shape (height, width, 3). Received: shape={pixels.shape}")
    if n < 1:
        raise ValueError(f"n must be at least 1. Received: n={n}")
    if augmentation_is_identity(augment):
        # Keras refuses to call an empty Sequential; nothing would change anyway.
        return [pixels.copy() for _ in range(n)]
    batch = np.repeat(pixels[None].astype("float32"), n, axis=0)
    augmented = np.asarray(build_augmenter(augment, seed=seed)(batch, training=True))
    return [np.clip(np.rint(image), 0, 255).astype(np.uint8) for image in augmented]
