"""Previews of what a setting does before anything trains: augmented images, the layer table.

Importing this module does not import TensorFlow: only `augment_preview`
does, when it is called (the Dataset page renders without TensorFlow).
"""

from __future__ import annotations

import numpy as np

from tlcore.config import AugmentConfig



def augmentation_is_identity(augment: AugmentConfig) -> bool:
    """True when every augmentation is off: images would pass through unchanged."""
    return not (augment.flip or augment.rotation or augment.zoom or augment.translation or augment.contrast)


def describe_augmentation(augment: AugmentConfig) -> str:
    """The settings in words, e.g. 'horizontal flip, rotation up to ±36°, zoom up to ±10%'."""
    parts = []
    if augment.flip:
        parts.append("horizontal flip")
    if augment.rotation:
        # Keras' RandomRotation factor is a fraction of a full turn.
        parts.append(f"rotation up to ±{augment.rotation * 360:.0f}°")
    if augment.zoom:
        parts.append(f"zoom up to ±{augment.zoom:.0%}")
    if augment.translation:
        parts.append(f"shift up to ±{augment.translation:.0%} of the width and height")
    if augment.contrast:
        parts.append(f"contrast up to ±{augment.contrast:.0%}")
    return ", ".join(parts) or "no augmentation (every setting is off)"


def augment_preview(pixels: np.ndarray, augment: AugmentConfig, n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """n random augmentations of one image, drawn as training would draw them.

    Uses the same Keras preprocessing layers as training
    (`tlcore.training.build_augmenter`), run in training mode (in inference
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
    from tlcore.training import build_augmenter  # imports TensorFlow (seconds), so only here

    batch = np.repeat(pixels[None].astype("float32"), n, axis=0)
    augmented = np.asarray(build_augmenter(augment, seed=seed)(batch, training=True))
    return [np.clip(np.rint(image), 0, 255).astype(np.uint8) for image in augmented]
