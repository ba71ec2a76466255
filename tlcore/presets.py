"""Presets: the experiments of the two seed articles, runnable with one click or `--preset`.

Each preset reproduces what its article trained, adapted only where the
article is wrong or leaves something out; its notes say what changed and why.
The articles are seeds 004 and 000 in the project's shared seeds (a comment
above each preset says what it trained).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.config import AugmentConfig, HeadConfig, TrainConfig


@dataclass(frozen=True)
class Preset:
    name: str  # what it teaches, for --preset
    label: str  # short enough for a button
    title: str
    config: TrainConfig
    notes: list[str] = field(default_factory=list)
    alias: str = ""  # the name it had before (the seed article's number), still accepted


AS_THE_ARTICLE_NOTE = (
    "As in the article, the head takes VGG16's features unscaled, and exactly its epochs and batch size run "
    "with no early stopping. The lab's own defaults differ there: they normalise the head's input (a new "
    "head then starts near chance instead of a loss of 6-11), shrink the batch and train a small set for "
    "at least 100 steps, and stop early when the validation split is large enough to judge."
)


PREPROCESS_NOTE = (
    "Preprocessing: VGG16's own preprocess_input (RGB to BGR, ImageNet channel means subtracted, "
    "pixels kept in 0..255) runs inside the model. The ImageNet filters were learned on exactly that "
    "input; pixels rescaled by 1/255 reach them about 255 times too small, in the wrong channel order "
    "and not centred, so the frozen layers would compute features unlike the ones ImageNet taught."
)

# Seed 004, "Transfer Learning with Python – Tensorflow": cats vs dogs at 224 px on a frozen VGG16,
# Flatten-512-Dropout-sigmoid, RMSprop 1e-4, ImageDataGenerator augmentation, 10 epochs.
AUGMENT_224 = Preset(
    name="augment-224",
    alias="seed-004",
    label="Augmentation, 224 px",
    title="Augmented images on a frozen VGG16 at 224 px (the cats vs dogs article: Transfer Learning with "
    "Python – Tensorflow)",
    config=TrainConfig(
        weights="imagenet",
        image_size=224,
        batch_size=20,
        epochs=10,
        optimizer="rmsprop",
        learning_rate=1e-4,
        freeze_at=VGG16_LAYERS,
        head=HeadConfig(pooling="flatten", dense=(512,), dropout=0.5, output="sigmoid", normalize=False),
        augment=AugmentConfig(enabled=True, flip=True, rotation=40 / 360, zoom=0.2, translation=0.2, contrast=0.0),
        fine_tune=None,
        min_steps=0,  # the article's own training: exactly its epochs and batch size,
        early_stopping_patience=None,  # no early stopping, and its head unnormalised (AS_THE_ARTICLE_NOTE)
    ),
    notes=[
        "Changed — preprocessing: the article rescales pixels by 1/255 (ImageDataGenerator(rescale=1./255)). "
        + PREPROCESS_NOTE,
        "Changed — epochs are full passes over the training images. The article's steps_per_epoch=100 counts "
        "batches, not images: with its 2,000 training images and batches of 20 that is exactly one pass, but "
        "on any other dataset 100 steps are more or less than one. Here one epoch is always one pass.",
        "Batch size 20: the article's text does not show its train_generator. 20 is the size for which its "
        "steps_per_epoch=100 covers its 2,000 training images exactly once (flow_from_directory's default of "
        "32 would make 100 steps 3,200 images, 1.6 passes).",
        "Augmentation, as close as Keras preprocessing layers get to its ImageDataGenerator: rotation_range=40 "
        "(degrees) -> rotation 40/360 = 0.111 of a turn (±40°); width/height_shift_range=0.2 -> translation "
        "0.2; zoom_range=0.2 -> zoom 0.2 (RandomZoom keeps the aspect ratio, ImageDataGenerator draws width "
        "and height zoom separately in [0.8, 1.2]); horizontal_flip -> flip; no contrast change (it has "
        "none). Empty borders are filled by reflection instead of its default 'nearest'. Validation images "
        "are never augmented, as in the article.",
        "Left out — shear_range=0.2: tlcore's augmentation settings have no shear (Keras 3 does have a "
        "RandomShear layer, measured in fractions of the image). Little is lost: ImageDataGenerator reads "
        "shear_range in degrees, so the article shears by at most 0.2°, under one pixel across 224 px.",
        "Head as in the article: Flatten -> Dense(512, relu) -> Dropout(0.5) -> Dense(1, sigmoid) with binary "
        "cross-entropy; RMSprop at learning rate 1e-4 (its RMSprop(lr=...) is learning_rate= in Keras 3); "
        f"all {VGG16_LAYERS} VGG16 layers frozen.",
        "Time: at 224 px on a CPU this is slow. With augmentation on, every epoch runs the frozen VGG16 on "
        "every image again (no cached features): tlcore.estimate puts the article's 2,000 + 1,000 images at "
        "about 6.7 min per epoch, over an hour for 10 epochs, on a 2-core CPU doing ~230 GFLOP/s (the "
        "bundled 140-image sample: about 3 min). Turning augmentation off takes the cached path: the "
        "features are computed once (about as long as one such epoch), then each epoch takes under a second.",
        AS_THE_ARTICLE_NOTE,
    ],
)

# Seed 000, "Transfer Learning" (M. A. Abbasi, 2019): lung X-rays at 64 px, Dense 1024-1024-512-softmax on
# VGG16, Adam 1e-4, 50 epochs.
BIG_HEAD_64 = Preset(
    name="big-head-64",
    alias="seed-000",
    label="A big dense head, 64 px",
    title="A big dense head (1024-1024-512) on a frozen VGG16 at 64 px (the X-ray article: Transfer Learning, 2019)",
    config=TrainConfig(
        weights="imagenet",
        image_size=64,
        epochs=50,
        optimizer="adam",
        learning_rate=1e-4,
        freeze_at=VGG16_LAYERS,
        head=HeadConfig(pooling="flatten", dense=(1024, 1024, 512), dropout=0.0, output="softmax", normalize=False),
        augment=AugmentConfig(enabled=False),
        fine_tune=None,
        min_steps=0,  # the article's own training: exactly its epochs and batch size,
        early_stopping_patience=None,  # no early stopping, and its head unnormalised (AS_THE_ARTICLE_NOTE)
    ),
    notes=[
        "Changed — a Flatten is added: the article applies Dense(1024) straight to base_model.output, the "
        "4-D block5_pool map (2x2x512 at 64 px). Keras then applies each Dense at every one of the 2x2 "
        "positions and the softmax gives 2x2x2 values per image, which do not match one label per image; "
        "it needs a flattening step it does not show (here: 2,048 values into Dense(1024)).",
        "What its `for layer in model.layers[:20]: layer.trainable = False` froze: "
        "keras.applications.VGG16(include_top=False) has 19 layers (the input, 13 convolutions, 5 "
        "poolings) and its head adds 4 Dense layers, 23 in all. layers[:20] is the 19 VGG16 layers plus "
        "the first Dense(1024), so only the last 3 layers train — Dense(1024), Dense(512) and the "
        "Dense(2) softmax — not 'the last 5' it claims. The frozen Dense(1024) also keeps its random "
        "initial weights: a fixed random projection the other layers must work around. With the Flatten "
        "its model needs, the list is 24 layers long and layers[:20] ends at the Flatten (no weights), "
        "so all 4 Dense layers train.",
        f"This preset freezes all {VGG16_LAYERS} VGG16 layers and trains the whole head (1024-1024-512, softmax, no "
        "dropout): 3,673,602 trainable parameters for 2 classes at 64 px — what its code does once the "
        "Flatten is in place, with no layer left frozen at random weights.",
        "Preprocessing: the article does not show how its train_datagen was made. "
        + PREPROCESS_NOTE
        + " Every tlcore model does this, never a 1/255 rescale.",
        "Adam at learning rate 1e-4 (its Adam(lr=...) is learning_rate= in Keras 3), 50 epochs, batch size "
        "32 (the article does not show it; 32 is flow_from_directory's default). No augmentation (it shows "
        "none), so the frozen features are computed once and 50 epochs cost seconds on a CPU.",
        "Validation: its step_size_valid = n // batch_size drops the last partial batch, and its "
        "valid_generator comes from train_datagen (augmenting validation if that generator augments). Here "
        "every validation image is evaluated once per epoch, never augmented.",
        AS_THE_ARTICLE_NOTE,
    ],
)

PRESETS: dict[str, Preset] = {p.name: p for p in (AUGMENT_224, BIG_HEAD_64)}
_BY_ALIAS = {p.alias: p for p in PRESETS.values() if p.alias}


def get_preset(name: str) -> Preset:
    """The preset called name (or by its old alias).

    Raises:
        ValueError: no such preset; the message lists the known ones and echoes the value.
    """
    preset = PRESETS.get(name) or _BY_ALIAS.get(name)
    if preset is None:
        raise ValueError(f"Unknown preset. Expected one of {sorted(PRESETS)}. Received: preset={name!r}")
    return preset


def apply_preset(name: str, **changes: Any) -> TrainConfig:
    """The preset's TrainConfig, with any changes applied (e.g. weights="none" offline)."""
    config = get_preset(name).config
    return config.replace(**changes) if changes else config
