"""The options that describe a TrainConfig, declared once (train, code and lr-find take them all, sweep the
length ones), and `config_from_args`, which reads them back: defaults, a preset or a run's config, then flags."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tlcore.backbones import default_weights
from tlcore.cli.errors import UsageError
from tlcore.config import OUTPUTS, POOLINGS, FineTuneConfig, HeadConfig, TrainConfig
from tlcore.presets import PRESETS, apply_preset
from tlcore.schedule import MIN_VALIDATION_PER_CLASS
from tlcore.setting import Setting, declared, value_type

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
    """The options that make a TrainConfig (`config_from_args` reads them): train's, and code's, said once.

    A field that declares `flag=True` (tlcore.setting) gets its option here without a line of its own; the
    options made by hand stand among them by the `order` of the field they sit after.
    """
    p.add_argument("--config", help="a run folder or its run.json: reuse that run's configuration")
    p.add_argument(
        "--preset",
        help=f"start from a preset: {', '.join(sorted(PRESETS))} (explicit flags override it; the old names "
        f"{', '.join(sorted(p.alias for p in PRESETS.values()))} still work)",
    )
    adders: list[tuple[int, Callable[[argparse.ArgumentParser], None]]] = [
        (40, _add_weights_option),
        (80, _add_head_options),
        (90, _add_augment_option),
        (100, _add_fine_tune_options),
        (130, add_length_options),
    ]
    adders += [(info.order, functools.partial(_add_declared, name, info)) for name, info in declared_flags()]
    for _, add in sorted(adders, key=lambda pair: pair[0]):
        add(p)


def declared_flags() -> list[tuple[str, Setting]]:
    """The TrainConfig fields whose command-line option comes from their declaration."""
    return [(name, info) for name, info in declared(TrainConfig) if info.flag]


def _add_declared(name: str, info: Setting, p: argparse.ArgumentParser) -> None:
    kind, _ = value_type(TrainConfig, name)
    flag, text = "--" + name.replace("_", "-"), info.help.format(default=getattr(TrainConfig(), name))
    if kind is bool:
        p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
    elif info.choices:
        p.add_argument(flag, choices=info.choices, help=text)
    else:
        p.add_argument(flag, type=kind, help=text)


WEIGHTS_HELP = "imagenet | none | PATH (default: $TLLAB_WEIGHTS or imagenet)"


def _add_weights_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help=WEIGHTS_HELP)


def _add_head_options(p: argparse.ArgumentParser) -> None:
    d = HeadConfig()
    p.add_argument(
        "--pooling", choices=POOLINGS, help=f"how the head turns feature maps into one vector (default {d.pooling})"
    )
    p.add_argument(
        "--dense",
        type=int_list,
        help=f"hidden layer sizes, e.g. 1024,1024,512 (empty: none; default {','.join(map(str, d.dense))})",
    )
    p.add_argument("--dropout", type=float, help=f"dropout before each dense layer (default {d.dropout})")
    p.add_argument(
        "--output", choices=OUTPUTS, help=f"the head's last activation; sigmoid for 2 classes only (default {d.output})"
    )
    p.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="layer-normalise the pooled features before the head's dense layers (default on)",
    )


def _add_augment_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random flips, rotations, zooms, shifts and contrast on training images (default off)",
    )


def _add_fine_tune_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fine-tune-at", type=int, help="second phase: unfreeze down to this freeze point")
    p.add_argument("--fine-tune-epochs", type=int, default=FineTuneConfig().epochs, help="epochs of the second phase")
    p.add_argument(
        "--fine-tune-lr", type=float, default=FineTuneConfig().learning_rate, help="learning rate of the second phase"
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
    declared_values = {name: _given(getattr(args, name), getattr(base, name)) for name, _ in declared_flags()}
    return base.replace(
        **declared_values,
        weights=_given(args.weights, base.weights),
        min_steps=min_steps,
        early_stopping_patience=patience,
        head=head,
        augment=augment,
        fine_tune=fine_tune,
    )
