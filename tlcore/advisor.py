"""Rules of thumb for a dataset: how much of VGG16 to freeze, and is it balanced?

Pure Python (no TensorFlow, no Streamlit): the app asks these questions on
every rerun, and a notebook can ask them too.

The freeze advice follows the classic four cases of transfer learning
(dataset small or large, similar to ImageNet or not). Freeze points count
VGG16's layers after the input; the advice picks one of the block boundaries
named in `tlcore.backbone_facts` (HEAD_ONLY, BLOCK5, BLOCKS4_5, EVERYTHING).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from tlcore.backbone_facts import BLOCK5, BLOCKS4_5, EVERYTHING, HEAD_ONLY, VGG16_LAYERS
from tlcore.backbones import NO_WEIGHTS, normalize_weights
from tlcore.config import FineTuneConfig, TrainConfig

# At or above this many training images a dataset counts as "large".
# Why 2,000: Chollet's Keras example "Building powerful image classification
# models using very little data" fine-tunes VGG16's block 5 (about 7 M
# weights) successfully on 2,000 training images (1,000 per class). Below
# that, even block 5 alone memorises the training set quickly, so the safer
# choices are a frozen backbone (similar data) or augmentation (different data).
LARGE_DATASET_MIN_IMAGES = 2_000
IMBALANCE_THRESHOLD = 1.5  # most / fewest images per class worth a warning

FINE_TUNE_MAX_LEARNING_RATE = 1e-4
# The keras.io guide "Transfer learning & fine-tuning": train the new head on the frozen backbone
# first, then unfreeze at a very low rate. Measured from the CLI on the sample data (ImageNet
# weights, 128 px, the dashboard's seed 1337): freeze 14 straight away at 1e-3 ends at 0.50 validation
# accuracy (seed 0: 0.76); the head for 5 epochs at 1e-3, then freeze 14 for 3 epochs at 1e-5, reaches
# 0.96 (seed 0: 0.96).
HEAD_FIRST_WHY = (
    "A new head starts random, and its large early gradients would wreck the pretrained "
    "filters, so the head learns first on the frozen backbone; then the chosen layers "
    f"unfreeze at a low learning rate ({FineTuneConfig().learning_rate:g})."
)
_SPLIT_WORDS = {"train": "training", "validation": "validation", "test": "test"}


@dataclass(frozen=True)
class Advice:
    """A recommended freeze point (and augmentation), with the reasoning in plain words."""

    freeze_at: int
    augment: bool
    case: str  # e.g. "small dataset, similar to ImageNet"
    explanation: str


def is_large(num_train_images: int) -> bool:
    """True when the training set has at least LARGE_DATASET_MIN_IMAGES images."""
    return num_train_images >= LARGE_DATASET_MIN_IMAGES


def advise(num_train_images: int, similar_to_imagenet: bool, pretrained: bool = True) -> Advice:
    """Recommend how many VGG16 layers to freeze for a dataset.

    Args:
        num_train_images: images in the training split (validation excluded).
        similar_to_imagenet: whether the images look like everyday photos of
            objects, animals and scenes (ImageNet) rather than, say, X-rays,
            microscopy, satellite views or drawings.
        pretrained: False for random weights: then no layer holds anything worth freezing.

    Returns:
        Advice. Small means fewer than LARGE_DATASET_MIN_IMAGES (2,000)
        training images in total.
    """
    if num_train_images < 0:
        raise ValueError(f"num_train_images must be >= 0. Received: num_train_images={num_train_images}")
    if not pretrained:
        return Advice(
            EVERYTHING,
            False,
            "random weights, no transfer",
            (
                "With random weights a frozen layer computes random features: they carry no knowledge, so "
                "freezing them only limits what can learn. Choose ImageNet or a weights file in the sidebar "
                "for transfer learning, or train every layer (freeze 0) for a from-scratch baseline, at a "
                f"low learning rate ({FINE_TUNE_MAX_LEARNING_RATE:g} or less)."
            ),
        )
    large = is_large(num_train_images)
    size = (
        f"{num_train_images:,} training images is a large dataset (at least {LARGE_DATASET_MIN_IMAGES:,})"
        if large
        else f"{num_train_images:,} training images is a small dataset (fewer than {LARGE_DATASET_MIN_IMAGES:,})"
    )
    if similar_to_imagenet and not large:
        return Advice(
            HEAD_ONLY,
            False,
            "small dataset, similar to ImageNet",
            (
                f"{size}, and the images look like ImageNet photos. VGG16's features already describe them "
                "well, and too few images would let any trainable conv layer memorise them. Use the whole "
                "backbone as a fixed feature extractor and train only the head. With augmentation off, the "
                "frozen features are computed once, so every epoch takes a fraction of a second."
            ),
        )
    if similar_to_imagenet and large:
        return Advice(
            BLOCK5,
            False,
            "large dataset, similar to ImageNet",
            (
                f"{size}, and the images look like ImageNet photos. Keep blocks 1-4 frozen (edges, textures, "
                "object parts) and also train block 5, the most ImageNet-specific features, so they adapt to "
                "your classes. There are enough images to do that without overfitting. Use a low learning "
                "rate (1e-4 or less) so the pretrained weights are nudged, not overwritten."
            ),
        )
    if not large:
        # Freeze point 10 (blocks 1-3 frozen), not 6: blocks 1-3 hold generic
        # edges, colours and textures that suit almost any image, while blocks
        # 4-5 hold ImageNet's object parts, which a different domain must
        # relearn. Also unfreezing block 3 would add 1.5 M weights for few images.
        return Advice(
            BLOCKS4_5,
            True,
            "small dataset, different from ImageNet",
            (
                f"{size}, and the images differ from ImageNet photos. This is the hardest case: train too "
                "many layers and the model memorises the few images; train too few and ImageNet's "
                "object-part features (blocks 4-5) do not fit your images. Keep the generic early blocks "
                "1-3 frozen, train blocks 4-5 and the head, and turn augmentation on so every epoch shows "
                "new variations of the images. Use a low learning rate (1e-4 or less)."
            ),
        )
    return Advice(
        EVERYTHING,
        False,
        "large dataset, different from ImageNet",
        (
            f"{size}, and the images differ from ImageNet photos. There is enough data to train every layer: "
            "keep VGG16's architecture and start from the pretrained weights (usually better than random "
            "ones), but let all of them adapt. Use a low learning rate (1e-4 or less); training everything "
            "is the slowest option."
        ),
    )


def train_down_to(config: TrainConfig, freeze_at: int) -> TrainConfig:
    """`config` changed to train every layer above `freeze_at`, in a way that learns.

    Pretrained conv layers that train get the head-first recipe (HEAD_FIRST_WHY): phase 1 trains the head
    on the frozen backbone at the config's rate, phase 2 unfreezes down to freeze_at at the config's
    phase-2 rate when that is low enough, else FineTuneConfig's default. Random weights need no head
    first (no filters to protect): one phase at freeze_at, at most FINE_TUNE_MAX_LEARNING_RATE once conv
    layers train, as the sweep's from-scratch baseline does. freeze_at=VGG16_LAYERS trains only the head.
    """
    if not 0 <= freeze_at <= VGG16_LAYERS:
        raise ValueError(f"freeze_at must be between 0 and {VGG16_LAYERS}. Received: freeze_at={freeze_at}")
    if freeze_at == VGG16_LAYERS:
        return config.replace(freeze_at=freeze_at, fine_tune=None)
    if normalize_weights(config.weights) == NO_WEIGHTS:
        return config.replace(
            freeze_at=freeze_at, fine_tune=None, learning_rate=min(config.learning_rate, FINE_TUNE_MAX_LEARNING_RATE)
        )
    phase_2 = config.fine_tune or FineTuneConfig()
    if phase_2.learning_rate > FINE_TUNE_MAX_LEARNING_RATE:
        phase_2 = dataclasses.replace(phase_2, learning_rate=FineTuneConfig().learning_rate)
    return config.replace(freeze_at=VGG16_LAYERS, fine_tune=dataclasses.replace(phase_2, freeze_at=freeze_at))


def apply_advice(config: TrainConfig, advice: Advice) -> TrainConfig:
    """`config` with the advice's freeze point (by train_down_to) and augmentation switch."""
    augment = dataclasses.replace(config.augment, enabled=advice.augment)
    return train_down_to(config.replace(augment=augment), advice.freeze_at)


def imbalance_warnings(counts: Mapping[str, Mapping[str, int]], threshold: float = IMBALANCE_THRESHOLD) -> list[str]:
    """A warning per split whose largest class has >= threshold times the images of its smallest.

    Args:
        counts: {split: {class: images}}, as DatasetInfo.counts() returns.
        threshold: ratio from which a split counts as imbalanced.

    Returns:
        Messages like "'cats' has 3.0x as many training images as 'dogs' (30 vs 10)".
        Classes with no image in a split are left out: the scan already warns about them.
    """
    messages = []
    for split, per_class in counts.items():
        present = {name: n for name, n in per_class.items() if n > 0}
        if len(present) < 2:
            continue
        most = max(present, key=lambda name: present[name])
        fewest = min(present, key=lambda name: present[name])
        ratio = present[most] / present[fewest]
        if ratio >= threshold:
            word = _SPLIT_WORDS.get(split, split)
            messages.append(
                f"'{most}' has {ratio:.1f}x as many {word} images as '{fewest}' ({present[most]} vs {present[fewest]})."
            )
    return messages


def learning_rate_warning(
    freeze_at: int, learning_rate: float, pretrained: bool, num_layers: int = VGG16_LAYERS
) -> str | None:
    """A warning when pretrained conv layers would train at a rate that wrecks them, else None.

    Measured on the sample data (96 px, Adam, 5 epochs): at 1e-3 every freeze
    point below 18 ended at chance (0.50-0.60 validation accuracy) while 1e-4
    reached 0.76-0.82; the head alone (k=18) reached 0.98 at 1e-3.
    """
    if not pretrained or freeze_at >= num_layers or learning_rate <= FINE_TUNE_MAX_LEARNING_RATE:
        return None
    return (
        f"Learning rate {learning_rate:g} with pretrained layers unfrozen: large updates overwrite what "
        f"ImageNet taught them (on the sample data every such run fell to chance at 1e-3). Fine-tune at "
        f"{FINE_TUNE_MAX_LEARNING_RATE:g} or lower, or freeze all {num_layers} layers to train only the head."
    )
