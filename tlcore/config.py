"""The whole configuration of a training run, as frozen dataclasses that round-trip to JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tlcore.backbone_facts import BLOCK5, DEFAULT_BACKBONE, VGG16_LAYERS
from tlcore.devices import FLOAT32, PRECISIONS

POOLINGS = ("flatten", "avg", "max")
OUTPUTS = ("softmax", "sigmoid")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
SGD_MOMENTUM = 0.9  # the "sgd" optimizer is SGD with momentum
# What the fit options mean, for the lab (tlcore.tf.training) and for the scripts it writes (tlcore.codegen):
# reduce on plateau halves the rate after 2 epochs without a val_loss improvement, never below a hundredth
# of the phase's starting rate; an improvement of val_loss smaller than MIN_IMPROVEMENT does not count
# (early stopping and plateau alike).
PLATEAU_FACTOR, PLATEAU_PATIENCE, PLATEAU_MIN_LR_FRACTION = 0.5, 2, 0.01
MIN_IMPROVEMENT = 1e-4
# Training length that follows the data (tlcore.schedule applies it): a head trained on cached features
# takes at least this many optimiser steps, and early stopping watches val_loss for this many epochs.
MIN_STEPS = 100
PATIENCE = 5
# What a config written before these defaults meant by the settings it lacks: an older run.json re-runs
# with its own head and length (TrainConfig.from_dict fills a missing key from here, not from today's default).
LEGACY_VALUES: dict[str, Any] = {"min_steps": 0, "early_stopping_patience": None}
LEGACY_HEAD_VALUES: dict[str, Any] = {"normalize": False}


# Settings in words, for people comparing two configs (dotted names as flatten_config gives them): the labels
# of the dashboard's widgets, lower-cased.
SETTING_NAMES = {
    "weights": "weights",
    "image_size": "image size",
    "batch_size": "batch size",
    "epochs": "epochs",
    "optimizer": "optimizer",
    "learning_rate": "learning rate",
    "freeze_at": "phase 1: layers frozen",
    "head.pooling": "pooling",
    "head.dense": "dense layer sizes",
    "head.dropout": "dropout",
    "head.output": "output",
    "head.normalize": "normalise the pooled features",
    "augment.enabled": "augmentation",
    "augment.flip": "horizontal flip",
    "augment.rotation": "rotation",
    "augment.zoom": "zoom",
    "augment.translation": "translation",
    "augment.contrast": "contrast",
    "fine_tune": "phase 2",
    "fine_tune.freeze_at": "phase 2: layers frozen",
    "fine_tune.epochs": "phase 2 epochs",
    "fine_tune.learning_rate": "phase 2 learning rate",
    "seed": "seed",
    "balance_classes": "balance classes",
    "early_stopping_patience": "early stopping (epochs without improvement)",
    "reduce_lr_on_plateau": "reduce learning rate on plateau",
    "precision": "precision",
    "min_steps": "at least this many steps for the head",
    "validation_split": "validation share",
    "cache_features": "cache frozen features",
    "backbone": "backbone",
}


def flatten_config(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: {"head": {"dense": [8]}} -> {"head.dense": [8]}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(flatten_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_keys(cls: type, data: Any, name: str) -> dict[str, Any]:
    """`data` if it is an object whose keys are all fields of `cls` (ValueError naming `name` otherwise)."""
    _check(isinstance(data, dict), f"{name} must be a JSON object, not {type(data).__name__}")
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    _check(not unknown, f"Unknown {name} keys: {sorted(unknown)}")
    return dict(data)


@dataclass(frozen=True)
class HeadConfig:
    """The classifier put on top of the convolutional base."""

    pooling: str = "max"  # flatten | avg | max
    dense: tuple[int, ...] = (256,)
    dropout: float = 0.5
    output: str = "softmax"  # softmax (any number of classes) | sigmoid (2 classes)
    # A LayerNormalization after the pooling: VGG16's pooled features reach the head in the hundreds, which
    # made a new head's first loss 6-11 on two classes; normalised, it starts near ln(classes).
    normalize: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "dense", tuple(int(n) for n in self.dense))
        _check(isinstance(self.normalize, bool), f"normalize must be true or false. Received: {self.normalize!r}")
        _check(self.pooling in POOLINGS, f"pooling must be one of {POOLINGS}. Received: pooling={self.pooling!r}")
        _check(self.output in OUTPUTS, f"output must be one of {OUTPUTS}. Received: output={self.output!r}")
        _check(all(n > 0 for n in self.dense), f"dense sizes must be positive. Received: dense={list(self.dense)}")
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1). Received: dropout={self.dropout}")


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation applied to training batches only (never to validation)."""

    enabled: bool = False
    flip: bool = True  # horizontal
    rotation: float = 0.1  # fraction of a full turn
    zoom: float = 0.1
    translation: float = 0.1
    contrast: float = 0.1

    def __post_init__(self) -> None:
        for name in ("rotation", "zoom", "translation", "contrast"):
            value = getattr(self, name)
            _check(0.0 <= value < 1.0, f"{name} must be in [0, 1). Received: {name}={value}")


@dataclass(frozen=True)
class FineTuneConfig:
    """Optional second phase: unfreeze down to a deeper freeze point at a lower learning rate."""

    freeze_at: int = BLOCK5
    epochs: int = 3
    learning_rate: float = 1e-5

    def __post_init__(self) -> None:
        _check(
            0 <= self.freeze_at <= VGG16_LAYERS,
            f"fine_tune.freeze_at must be between 0 and {VGG16_LAYERS}. Received: freeze_at={self.freeze_at}",
        )
        _check(self.epochs >= 1, f"fine_tune.epochs must be at least 1. Received: epochs={self.epochs}")
        _check(self.learning_rate > 0, f"fine_tune.learning_rate must be positive. Received: {self.learning_rate}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's result. `weights` is "imagenet", "none" or a file path."""

    backbone: str = DEFAULT_BACKBONE
    weights: str = "imagenet"
    image_size: int = 128
    batch_size: int = 32
    epochs: int = 5
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    freeze_at: int = VGG16_LAYERS
    head: HeadConfig = field(default_factory=HeadConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    fine_tune: FineTuneConfig | None = None
    seed: int = 1337
    validation_split: float = 0.2
    cache_features: bool = True
    # Options Keras' fit offers (tlcore.tf.training explains each); older run.json files lack them.
    balance_classes: bool = False  # class weights inversely proportional to training class counts
    # Epochs without a val_loss improvement before a phase ends (None: off); used where the validation split
    # allows it (tlcore.schedule).
    early_stopping_patience: int | None = PATIENCE
    reduce_lr_on_plateau: bool = False  # halve the learning rate when val_loss stops improving
    # The Keras dtype policy of the model's layers (its output layer and the loss stay float32); which ones a
    # device supports: tlcore.devices.
    precision: str = FLOAT32
    # Training length that follows the data (tlcore.schedule): the batch shrinks so an epoch has several steps,
    # and a head on cached features trains at least this many steps. 0: exactly the epochs and batch size set.
    min_steps: int = MIN_STEPS

    def __post_init__(self) -> None:
        _check(
            self.image_size >= 32, f"image_size must be at least 32 for VGG16. Received: image_size={self.image_size}"
        )
        _check(self.batch_size >= 1, f"batch_size must be at least 1. Received: batch_size={self.batch_size}")
        _check(self.epochs >= 1, f"epochs must be at least 1. Received: epochs={self.epochs}")
        _check(
            self.optimizer in OPTIMIZERS,
            f"optimizer must be one of {OPTIMIZERS}. Received: optimizer={self.optimizer!r}",
        )
        _check(self.learning_rate > 0, f"learning_rate must be positive. Received: learning_rate={self.learning_rate}")
        _check(
            0 <= self.freeze_at <= VGG16_LAYERS,
            f"freeze_at must be between 0 and {VGG16_LAYERS}. Received: freeze_at={self.freeze_at}",
        )
        _check(
            0.0 < self.validation_split < 1.0,
            f"validation_split must be between 0 and 1. Received: validation_split={self.validation_split}",
        )
        for name in ("balance_classes", "reduce_lr_on_plateau"):
            value = getattr(self, name)
            _check(isinstance(value, bool), f"{name} must be true or false. Received: {name}={value!r}")
        _check(
            self.precision in PRECISIONS,
            f"precision must be one of {PRECISIONS}. Received: precision={self.precision!r}",
        )
        _check(
            isinstance(self.min_steps, int) and not isinstance(self.min_steps, bool) and self.min_steps >= 0,
            f"min_steps must be a whole number, 0 or more. Received: min_steps={self.min_steps!r}",
        )
        patience = self.early_stopping_patience
        _check(
            patience is None or (isinstance(patience, int) and not isinstance(patience, bool) and patience >= 1),
            f"early_stopping_patience must be a whole number of epochs, at least 1 (or None for off). "
            f"Received: early_stopping_patience={patience!r}",
        )
        if self.fine_tune is not None:
            _check(
                self.fine_tune.freeze_at < self.freeze_at,
                "fine_tune.freeze_at must unfreeze more layers than freeze_at "
                f"(be smaller). Received: freeze_at={self.freeze_at}, fine_tune.freeze_at={self.fine_tune.freeze_at}",
            )

    @property
    def weights_label(self) -> str:
        """The weights in words; "from scratch" only when random weights meet every layer training."""
        if self.weights != "none":
            return self.weights
        if self.freeze_at == 0:
            return "random weights, every layer trains (no transfer — from scratch)"
        return f"random weights (no transfer), {self.freeze_at} random layers frozen"

    def total_epochs(self) -> int:
        return self.epochs + (self.fine_tune.epochs if self.fine_tune else 0)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def differences(self, other: TrainConfig) -> list[tuple[str, Any, Any]]:
        """(setting, this value, other's value) for each setting that differs; nested ones dotted ("head.dense")."""
        mine, theirs = flatten_config(self.to_dict()), flatten_config(other.to_dict())
        return [
            (key, mine.get(key), theirs.get(key))
            for key in sorted(mine.keys() | theirs.keys())
            if mine.get(key) != theirs.get(key)
        ]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["head"]["dense"] = list(self.head.dense)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The config a dict describes; a key it lacks takes its LEGACY_VALUES value (an older run.json's)."""
        _check_keys(cls, data, "config")
        data = {**LEGACY_VALUES, **data}
        if "head" in data:
            data["head"] = HeadConfig(**{**LEGACY_HEAD_VALUES, **_check_keys(HeadConfig, data["head"], "head")})
        if "augment" in data:
            data["augment"] = AugmentConfig(**_check_keys(AugmentConfig, data["augment"], "augment"))
        if data.get("fine_tune") is not None:
            data["fine_tune"] = FineTuneConfig(**_check_keys(FineTuneConfig, data["fine_tune"], "fine_tune"))
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))
