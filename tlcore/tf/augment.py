"""Augmented versions of one image, drawn by the same Keras layers training uses (the Dataset page's preview)."""

from __future__ import annotations

import numpy as np

from tlcore.config import AugmentConfig
from tlcore.preview import augmentation_is_identity
from tlcore.tf.training import build_augmenter


def augment_preview(pixels: np.ndarray, augment: AugmentConfig, n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """n random augmentations of one image, drawn as training would draw them.

    Uses the same Keras preprocessing layers as training
    (`tlcore.tf.training.build_augmenter`), run in training mode (in inference
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
