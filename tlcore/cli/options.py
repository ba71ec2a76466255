"""The options that describe a TrainConfig, declared once (train, code and lr-find take them all, sweep the
length ones), and `config_from_args`, which reads them back: defaults, a preset or a run's config, then flags."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TypeVar

from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.backbones import default_weights
from tlcore.cli.errors import UsageError
from tlcore.config import FineTuneConfig, TrainConfig
from tlcore.devices import PRECISIONS
from tlcore.presets import PRESETS, apply_preset
from tlcore.schedule import MIN_VALIDATION_PER_CLASS

T = TypeVar("T")


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_length_options(p: argparse.ArgumentParser) -> None:
    """How long training runs on the data (tlcore.schedule): train's, code's and sweep's."""
    d = TrainConfig()
    p.add_argument(
        "--min-steps",
        type=int,
        help="a head trained on cached features takes at least this many steps, and the batch shrinks to make "
        f"several steps an epoch (0: exactly --epochs and --batch-size; default {d.min_steps})",
    )
    p.add_argument(
        "--early-stopping",
        type=int,
        metavar="PATIENCE",
        help="end a phase after PATIENCE epochs without val_loss improvement, keeping the best epoch's weights, "
        f"when every class has {MIN_VALIDATION_PER_CLASS}+ validation images "
        f"(0: off; default {d.early_stopping_patience})",
    )


def length_settings(args: argparse.Namespace, base: TrainConfig) -> tuple[int, int | None]:
    """(min_steps, early_stopping_patience) as `add_length_options` set them, else the base's."""
    min_steps = base.min_steps if args.min_steps is None else args.min_steps
    patience = base.early_stopping_patience if args.early_stopping is None else (args.early_stopping or None)
    return min_steps, patience


def add_config_options(p: argparse.ArgumentParser) -> None:
    """The options that make a TrainConfig (`config_from_args` reads them): train's, and code's, said once."""
    d = TrainConfig()  # the defaults an option falls back to, shown in its help
    p.add_argument("--config", help="a run folder or its run.json: reuse that run's configuration")
    p.add_argument(
        "--preset",
        help=f"start from a preset: {', '.join(sorted(PRESETS))} (explicit flags override it; the old names "
        f"{', '.join(sorted(p.alias for p in PRESETS.values()))} still work)",
    )
    p.add_argument("--freeze-at", type=int, help=f"VGG16 layers frozen, 0..{VGG16_LAYERS} (default {d.freeze_at})")
    p.add_argument("--epochs", type=int, help=f"epochs of the first phase (default {d.epochs})")
    p.add_argument("--image-size", type=int, help=f"square input size in pixels (default {d.image_size})")
    p.add_argument("--weights", help="imagenet | none | PATH (default: $TLLAB_WEIGHTS or imagenet)")
    p.add_argument("--batch-size", type=int, help=f"images per training step (default {d.batch_size})")
    p.add_argument("--learning-rate", type=float, help=f"first phase's learning rate (default {d.learning_rate:g})")
    p.add_argument("--optimizer", choices=["adam", "rmsprop", "sgd"], help=f"(default {d.optimizer})")
    p.add_argument(
        "--pooling",
        choices=["flatten", "avg", "max"],
        help=f"how the head turns feature maps into one vector (default {d.head.pooling})",
    )
    p.add_argument(
        "--dense",
        type=int_list,
        help=f"hidden layer sizes, e.g. 1024,1024,512 (empty: none; default {','.join(map(str, d.head.dense))})",
    )
    p.add_argument("--dropout", type=float, help=f"dropout before each dense layer (default {d.head.dropout})")
    p.add_argument(
        "--output",
        choices=["softmax", "sigmoid"],
        help=f"the head's last activation; sigmoid for 2 classes only (default {d.head.output})",
    )
    p.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="layer-normalise the pooled features before the head's dense layers (default on)",
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random flips, rotations, zooms, shifts and contrast on training images (default off)",
    )
    p.add_argument("--fine-tune-at", type=int, help="second phase: unfreeze down to this freeze point")
    p.add_argument("--fine-tune-epochs", type=int, default=FineTuneConfig().epochs, help="epochs of the second phase")
    p.add_argument(
        "--fine-tune-lr", type=float, default=FineTuneConfig().learning_rate, help="learning rate of the second phase"
    )
    p.add_argument("--seed", type=int, help=f"seed of the head's initial weights and the data order (default {d.seed})")
    p.add_argument(
        "--balance-classes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="weight each class inversely to its training images (for imbalanced datasets)",
    )
    add_length_options(p)
    p.add_argument(
        "--reduce-lr-on-plateau",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="halve the learning rate after 2 epochs without val_loss improvement (default off)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help=f"numeric precision of the model's layers (default {d.precision}): mixed_float16 on an NVIDIA GPU "
        "(compute capability 7.0+), mixed_bfloat16 on a GPU of compute capability 8.0+ or a CPU with "
        "AVX-512 BF16 or AMX; the output and the loss stay float32",
    )


def _given(value: T | None, default: T) -> T:
    """An option's value where it was given, else what it falls back to."""
    return default if value is None else value


def _starting_config(args: argparse.Namespace) -> TrainConfig:
    """The defaults, a preset (--preset) or a saved run's config (--config): what explicit flags change."""
    preset = getattr(args, "preset", None)
    if preset and args.config:
        raise UsageError("--preset and --config both give a starting configuration: use one of them")
    if preset:
        return apply_preset(preset, weights=default_weights())  # ValueError (unknown name) -> exit 2
    if not args.config:
        return TrainConfig(weights=default_weights())
    path = Path(args.config)
    path = path / "run.json" if path.is_dir() else path
    if not path.is_file():
        raise UsageError(f"--config: no such file: {path}")
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise UsageError(f"--config: {path} is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config: {path} holds a JSON {type(data).__name__}, not a run.json object")
    try:
        return TrainConfig.from_dict(data.get("config", data))
    except (TypeError, ValueError) as err:
        raise UsageError(f"--config: {path}: {err}") from None


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then a preset (--preset) or a saved run's config (--config), then explicit flags.

    Raises:
        UsageError: a preset with a config, or a config file that cannot be used.
        ValueError: settings a TrainConfig refuses (the message names the setting and its value).
    """
    base = _starting_config(args)
    h = base.head
    head = dataclasses.replace(
        h,
        pooling=_given(args.pooling, h.pooling),
        dense=_given(args.dense, h.dense),
        dropout=_given(args.dropout, h.dropout),
        output=_given(args.output, h.output),
        normalize=_given(args.normalize, h.normalize),
    )
    augment = dataclasses.replace(base.augment, enabled=_given(args.augment, base.augment.enabled))
    fine_tune = base.fine_tune
    if args.fine_tune_at is not None:
        fine_tune = FineTuneConfig(args.fine_tune_at, args.fine_tune_epochs, args.fine_tune_lr)
    min_steps, patience = length_settings(args, base)
    return base.replace(
        freeze_at=_given(args.freeze_at, base.freeze_at),
        epochs=_given(args.epochs, base.epochs),
        image_size=_given(args.image_size, base.image_size),
        weights=_given(args.weights, base.weights),
        batch_size=_given(args.batch_size, base.batch_size),
        learning_rate=_given(args.learning_rate, base.learning_rate),
        optimizer=_given(args.optimizer, base.optimizer),
        seed=_given(args.seed, base.seed),
        balance_classes=_given(args.balance_classes, base.balance_classes),
        reduce_lr_on_plateau=_given(args.reduce_lr_on_plateau, base.reduce_lr_on_plateau),
        precision=_given(args.precision, base.precision),
        min_steps=min_steps,
        early_stopping_patience=patience,
        head=head,
        augment=augment,
        fine_tune=fine_tune,
    )
