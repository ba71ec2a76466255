"""The whole configuration of a training run, as frozen dataclasses that round-trip to JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tlcore.backbone_facts import BLOCK5, DEFAULT_BACKBONE, VGG16_LAYERS
from tlcore.backbones import get_backbone
from tlcore.devices import FLOAT32, PRECISIONS
from tlcore.jsontypes import JSONObject, JSONValue
from tlcore.setting import DECLARED_WIDGET, NO_WIDGET, Setting, check_fields, setting, setting_names

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
LEGACY_VALUES: JSONObject = {"min_steps": 0, "early_stopping_patience": None}
LEGACY_HEAD_VALUES: JSONObject = {"normalize": False}


# Settings in words, for people comparing two configs (dotted names as flatten_config gives them).
SETTING_NAMES: dict[str, str] = {}  # filled below, from the fields' declarations


def flatten_config(data: Mapping[str, JSONValue], prefix: str = "") -> JSONObject:
    """Nested settings as dotted keys: {"head": {"dense": [8]}} -> {"head.dense": [8]}."""
    out: JSONObject = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(flatten_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_keys(cls: type, data: JSONValue, name: str) -> dict[str, Any]:
    """`data` if it is an object whose keys are all fields of `cls` (ValueError naming `name` otherwise).

    Its values are typed loosely, for `cls(**fields)`: the dataclass checks each (setting.check_fields).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{name} must be a JSON object, not {type(data).__name__}")
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    _check(not unknown, f"Unknown {name} keys: {sorted(unknown)}")
    return dict(data)


@dataclass(frozen=True)
class HeadConfig:
    """The classifier put on top of the convolutional base."""

    pooling: str = setting("max", Setting("pooling", choices=POOLINGS))
    dense: tuple[int, ...] = setting((256,), Setting("dense layer sizes"))
    dropout: float = setting(0.5, Setting("dropout", low=0.0, high=1.0, high_open=True))
    # softmax (any number of classes) | sigmoid (2 classes)
    output: str = setting("softmax", Setting("output", choices=OUTPUTS))
    # A LayerNormalization after the pooling: VGG16's pooled features reach the head in the hundreds, which
    # made a new head's first loss 6-11 on two classes; normalised, it starts near ln(classes).
    normalize: bool = setting(True, Setting("normalise the pooled features"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "dense", tuple(int(n) for n in self.dense))
        check_fields(self)
        _check(all(n > 0 for n in self.dense), f"dense sizes must be positive. Received: dense={list(self.dense)}")


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation applied to training batches only (never to validation)."""

    enabled: bool = setting(False, Setting("augmentation"))
    flip: bool = setting(True, Setting("horizontal flip"))
    rotation: float = setting(0.1, Setting("rotation", low=0.0, high=1.0, high_open=True))  # of a full turn
    zoom: float = setting(0.1, Setting("zoom", low=0.0, high=1.0, high_open=True))
    translation: float = setting(0.1, Setting("translation", low=0.0, high=1.0, high_open=True))
    contrast: float = setting(0.1, Setting("contrast", low=0.0, high=1.0, high_open=True))

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class FineTuneConfig:
    """Optional second phase: unfreeze down to a deeper freeze point at a lower learning rate."""

    freeze_at: int = setting(BLOCK5, Setting("phase 2: layers frozen", low=0))  # below phase 1's
    epochs: int = setting(3, Setting("phase 2 epochs", low=1))
    learning_rate: float = setting(1e-5, Setting("phase 2 learning rate", low=0.0, low_open=True))

    def __post_init__(self) -> None:
        check_fields(self, prefix="fine_tune.")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's result. `weights` is "imagenet", "none" or a file path.

    Each field declares how people meet it (tlcore.setting): its words, bounds, command-line flag and widget.
    """

    backbone: str = setting(DEFAULT_BACKBONE, Setting("backbone", widget=NO_WIDGET))
    weights: str = setting("imagenet", Setting("weights"))
    image_size: int = setting(
        # at least the backbone's smallest input (its spec, in __post_init__)
        128,
        Setting("image size", flag=True, order=30, help="square input size in pixels (default {default})"),
    )
    batch_size: int = setting(
        32, Setting("batch size", low=1, flag=True, order=50, help="images per training step (default {default})")
    )
    epochs: int = setting(
        5, Setting("epochs", low=1, flag=True, order=20, help="epochs of the first phase (default {default})")
    )
    optimizer: str = setting(
        "adam", Setting("optimizer", choices=OPTIMIZERS, flag=True, order=70, help="(default {default})")
    )
    learning_rate: float = setting(
        1e-3,
        Setting(
            "learning rate",
            low=0.0,
            low_open=True,
            flag=True,
            order=60,
            help="first phase's learning rate (default {default:g})",
        ),
    )
    freeze_at: int = setting(
        VGG16_LAYERS,
        Setting(
            "phase 1: layers frozen",
            low=0,  # at most the backbone's layer count (its spec, in __post_init__)
            flag=True,
            order=10,
            help=f"VGG16 layers frozen, 0..{VGG16_LAYERS} (default {{default}})",
        ),
    )
    head: HeadConfig = field(default_factory=HeadConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    fine_tune: FineTuneConfig | None = setting(None, Setting("phase 2"))
    seed: int = setting(
        1337,
        Setting(
            "seed",
            flag=True,
            order=110,
            help="seed of the head's initial weights and the data order (default {default})",
        ),
    )
    validation_split: float = setting(
        0.2, Setting("validation share", low=0.0, low_open=True, high=1.0, high_open=True, widget=NO_WIDGET)
    )
    cache_features: bool = setting(True, Setting("cache frozen features", widget=NO_WIDGET))
    # Options Keras' fit offers (tlcore.tf.training explains each); older run.json files lack them.
    balance_classes: bool = setting(
        False,  # class weights inversely proportional to training class counts
        Setting(
            "balance classes",
            flag=True,
            order=120,
            help="weight each class inversely to its training images (for imbalanced datasets)",
        ),
    )
    # Epochs without a val_loss improvement before a phase ends (None: off); used where the validation split
    # allows it (tlcore.schedule).
    early_stopping_patience: int | None = setting(
        PATIENCE, Setting("early stopping (epochs without improvement)", low=1)
    )
    reduce_lr_on_plateau: bool = setting(
        False,
        Setting(
            "reduce learning rate on plateau",
            flag=True,
            order=140,
            widget=DECLARED_WIDGET,
            help="halve the learning rate after 2 epochs without val_loss improvement (default off)",
            tip="Halve the learning rate after 2 epochs without a val_loss improvement (down to a hundredth of "
            "the phase's rate).",
        ),
    )
    # The Keras dtype policy of the model's layers (its output layer and the loss stay float32); which ones a
    # device supports: tlcore.devices.
    precision: str = setting(
        FLOAT32,
        Setting(
            "precision",
            choices=PRECISIONS,
            flag=True,
            order=150,
            help="numeric precision of the model's layers (default {default}): mixed_float16 on an NVIDIA GPU "
            "(compute capability 7.0+), mixed_bfloat16 on a GPU of compute capability 8.0+ or a CPU with "
            "AVX-512 BF16 or AMX; the output and the loss stay float32",
        ),
    )
    # Targets (1 - s) for the true class and s spread evenly over all classes (Szegedy et al. 2016): a head
    # trained on few images is less sure of itself. 0: off, as runs before it were.
    label_smoothing: float = setting(
        0.0,
        Setting(
            "label smoothing",
            low=0.0,
            high=1.0,
            high_open=True,
            flag=True,
            widget=DECLARED_WIDGET,
            step=0.05,
            help="move this share of each target onto all classes evenly (default {default:g}: off)",
        ),
    )
    # Training length that follows the data (tlcore.schedule): the batch shrinks so an epoch has several steps,
    # and a head on cached features trains at least this many steps. 0: exactly the epochs and batch size set.
    min_steps: int = setting(MIN_STEPS, Setting("at least this many steps for the head", low=0))

    def __post_init__(self) -> None:
        check_fields(self)
        spec = get_backbone(self.backbone)  # ValueError naming an unknown backbone
        _check(
            self.image_size >= spec.min_image_size,
            f"image_size must be at least {spec.min_image_size}. Received: image_size={self.image_size}",
        )
        _check(
            self.freeze_at <= spec.num_layers,
            f"freeze_at must be between 0 and {spec.num_layers}. Received: freeze_at={self.freeze_at}",
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

    def differences(self, other: TrainConfig) -> list[tuple[str, JSONValue, JSONValue]]:
        """(setting, this value, other's value) for each setting that differs; nested ones dotted ("head.dense")."""
        mine, theirs = flatten_config(self.to_dict()), flatten_config(other.to_dict())
        return [
            (key, mine.get(key), theirs.get(key))
            for key in sorted(mine.keys() | theirs.keys())
            if mine.get(key) != theirs.get(key)
        ]

    def to_dict(self) -> JSONObject:
        data = dataclasses.asdict(self)
        data["head"]["dense"] = list(self.head.dense)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: JSONValue) -> TrainConfig:
        """The config a JSON object describes; a key it lacks takes its LEGACY_VALUES value (an older run.json's)."""
        fields = {**LEGACY_VALUES, **_check_keys(cls, data, "config")}
        if "head" in fields:
            fields["head"] = HeadConfig(**{**LEGACY_HEAD_VALUES, **_check_keys(HeadConfig, fields["head"], "head")})
        if "augment" in fields:
            fields["augment"] = AugmentConfig(**_check_keys(AugmentConfig, fields["augment"], "augment"))
        if fields.get("fine_tune") is not None:
            fields["fine_tune"] = FineTuneConfig(**_check_keys(FineTuneConfig, fields["fine_tune"], "fine_tune"))
        return cls(**fields)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))


SETTING_NAMES.update(setting_names(TrainConfig))
