"""Training the transfer curve (planned and described by `tlcore.transfer_curve`): every condition, every repeat.

The images are decoded once. Frozen features come from the feature store, so the ImageNet prefix at each
freeze point is computed once for the kept and re-initialised conditions of every repeat (the same weights
and images: the same key), and a random prefix once per repeat's seed. Fixed epochs, no early stopping, and
the sweep's rates (`tlcore.sweep.point_learning_rate`); nothing is recorded in the run store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import keras
import numpy as np

from tlcore.backbones import NO_WEIGHTS, get_backbone
from tlcore.config import TrainConfig
from tlcore.data import DatasetInfo
from tlcore.feature_store import FeatureStore
from tlcore.progress import StopFlag
from tlcore.tf.build import build_for
from tlcore.tf.model import backbone_layers
from tlcore.tf.pipeline import prepare_data
from tlcore.tf.training import train
from tlcore.transfer_curve import (
    CONDITIONS,
    DEFAULT_POINTS,
    DEFAULT_REPEATS,
    FINE_TUNED,
    KEPT,
    REINITIALISED,
    Band,
    TransferCurve,
    check_points,
    curve_base,
    planned_runs,
    same_run_as,
)

Note = Callable[[int, int, str], None]  # runs done, runs in all, and what the last one found, in words


class CurveStopped(Exception):
    """The stop flag was set: the curve ends before its next run."""


def _reinitialised(config: TrainConfig, num_classes: int) -> keras.Model:
    """`config`'s model with every backbone layer above its freeze point drawn afresh (from the config's seed)."""
    model = build_for(config, num_classes)
    fresh = build_for(config.replace(weights=NO_WEIGHTS), num_classes)
    spec = get_backbone(config.backbone)
    for kept, drawn in list(zip(backbone_layers(model, spec), backbone_layers(fresh, spec)))[config.freeze_at :]:
        kept.set_weights(drawn.get_weights())
    return model


def run_transfer_curve(
    base: TrainConfig,
    info: DatasetInfo,
    features: FeatureStore,
    points: Sequence[int] = DEFAULT_POINTS,
    repeats: int = DEFAULT_REPEATS,
    note: Note | None = None,
    stop: StopFlag | None = None,
) -> TransferCurve:
    """Train every condition at every freeze point `repeats` times (seeds base.seed, base.seed + 1, ...).

    `base`: the weights the kept layers come from, the image size, the epochs of every run (its fine_tune,
    early stopping and minimum steps are ignored). `features`: where frozen features are kept.

    Raises:
        ValueError: bad points or repeats.
        CurveStopped: `stop` was set (between runs).
    """
    started = time.perf_counter()
    chosen = check_points(points)
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1. Received: {repeats}")
    say = note or (lambda _done, _total, _line: None)
    base = curve_base(base)
    data = prepare_data(info, base.image_size)
    n_classes = len(data.class_names)
    values: dict[tuple[int, str], list[float]] = {(n, c): [] for n in chosen for c in CONDITIONS}
    runs = planned_runs(base, chosen, repeats)
    kept_model: keras.Model | None = None  # the kept run's model: the fine-tuned run trains it on
    for done, (repeat, n, condition, config) in enumerate(runs, start=1):
        if stop is not None and stop.is_set():
            raise CurveStopped(f"stopped before run {done} of {len(runs)}")
        if condition == KEPT:
            kept_model = build_for(config, n_classes)
            model, store = kept_model, features
        elif condition == FINE_TUNED and kept_model is not None:
            model, store = kept_model, None  # every layer trains: nothing frozen to keep
        elif condition == REINITIALISED:
            model, store = _reinitialised(config, n_classes), features
        else:  # RANDOM: a random backbone of this repeat's seed, frozen up to n
            model, store = build_for(config, n_classes), features
        accuracy = float(train(config, data, model=model, features=store).final.get("val_accuracy", float("nan")))
        values[(n, condition)].append(accuracy)
        for twin in CONDITIONS:  # the same run under another name (trained once)
            if same_run_as(n, twin) == condition:
                values[(n, twin)].append(accuracy)
        say(done, len(runs), f"[{done}/{len(runs)}] repeat {repeat + 1}, freeze point {n}, {condition}: {accuracy:.3f}")
    counts = np.bincount(np.asarray(data.validation.labels, dtype=np.int64), minlength=n_classes)
    return TransferCurve(
        points=tuple(chosen),
        bands={key: Band(tuple(v)) for key, v in values.items()},
        chance=float(counts.max() / max(1, counts.sum())),
        repeats=repeats,
        image_size=base.image_size,
        epochs=base.epochs,
        seconds=time.perf_counter() - started,
    )
