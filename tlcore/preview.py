"""What augmentation settings do, before anything trains: in words, and whether they change anything.

The augmented images themselves come from `tlcore.tf.augment.augment_preview`.
"""

from __future__ import annotations

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
