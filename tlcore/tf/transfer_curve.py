"""Training the transfer curve (planned and described by `tlcore.transfer_curve`): every condition, every repeat.

Every run is recorded among its curve's runs (`tlcore.curve_records`), without its model. Frozen features come
from the feature store, so the ImageNet prefix at each freeze point is computed once for the kept and
re-initialised conditions of every repeat (the same weights and images: the same key), and a random prefix
once per repeat's seed. Fixed epochs validated after the last one only, no early stopping, and the sweep's
rates (`tlcore.sweep.point_learning_rate`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras

from tlcore.backbones import NO_WEIGHTS, get_backbone
from tlcore.config import TrainConfig
from tlcore.curve_records import CurveRecording
from tlcore.data import DatasetInfo
from tlcore.feature_store import FeatureStore
from tlcore.process_memory import TRACING
from tlcore.progress import StopFlag
from tlcore.records import COMPLETED, FAILED, STOPPED
from tlcore.runs import RunStore
from tlcore.tf.build import build_for
from tlcore.tf.model import backbone_layers
from tlcore.tf.pipeline import PreparedData, prepare_data
from tlcore.tf.training import train_and_record
from tlcore.transfer_curve import (
    DEFAULT_POINTS,
    DEFAULT_REPEATS,
    FINE_TUNED,
    KEPT,
    REINITIALISED,
    CurveUnit,
    TransferCurve,
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


def train_unit(
    unit: CurveUnit,
    curve_id: str,
    info: DatasetInfo,
    data: PreparedData,
    runs: RunStore,
    features: FeatureStore,
    ran: Callable[[str, float], None],
    stop: StopFlag | None = None,
) -> None:
    """Train a unit's runs in order, each recorded in `runs` (the curve's) without its model; `ran(condition,
    validation accuracy)` after each.

    Raises:
        CurveStopped: `stop` was set; the run it stopped is recorded as stopped.
    """
    n_classes = len(data.class_names)
    kept_model: keras.Model | None = None  # the kept run's model: the fine-tuned run trains it on
    for condition, config in unit.runs:
        if stop is not None and stop.is_set():
            raise CurveStopped("stopped between two runs")
        if condition == KEPT:
            model = kept_model = build_for(config, n_classes)
        elif condition == FINE_TUNED and kept_model is not None:
            model = kept_model
        elif condition == REINITIALISED:
            model = _reinitialised(config, n_classes)
        else:  # RANDOM: a random backbone of this repeat's seed, frozen up to n (fine-tuned without kept: none)
            model = build_for(config, n_classes)
        result, _ = train_and_record(
            config,
            info,
            runs,
            stop=stop,
            tags=unit.tags(curve_id, condition),
            data=data,
            features=features,
            model=model,
            keep_model=False,
            validate_last_only=True,  # fixed epochs: only the final accuracy counts
        )
        if result.status != COMPLETED:
            raise CurveStopped(result.reason or f"the {condition} run at {unit.freeze_at} did not finish")
        ran(condition, float(result.final.get("val_accuracy", float("nan"))))
        del model, result
        TRACING.between()  # the run's traces and model can go, unless other work is tracing


def run_transfer_curve(
    base: TrainConfig,
    info: DatasetInfo,
    store: RunStore,
    features: FeatureStore,
    points: Sequence[int] = DEFAULT_POINTS,
    repeats: int = DEFAULT_REPEATS,
    note: Note | None = None,
    stop: StopFlag | None = None,
    curve_id: str | None = None,
) -> TransferCurve:
    """Train every condition at every freeze point `repeats` times (seeds base.seed, base.seed + 1, ...), unit
    after unit in this process, and save the curve with its runs among `store`'s curves (`CurveRecording`).

    `base`: the weights the kept layers come from, the image size, the epochs of every run (its fine_tune,
    early stopping and minimum steps are ignored). `features`: where frozen features are kept.

    Raises:
        ValueError: bad points or repeats.
        CurveStopped: `stop` was set (the saved curve says stopped).
    """
    recording = CurveRecording(store, base, info, points, repeats, curve_id)
    say = note or (lambda _done, _total, _line: None)
    results: list[tuple[int, str, float]] = []
    try:
        data = prepare_data(info, recording.base.image_size)
        for unit in recording.units:

            def ran(condition: str, accuracy: float, unit: CurveUnit = unit) -> None:
                done = len(results) + 1
                line = f"repeat {unit.repeat + 1}, freeze point {unit.freeze_at}, {condition}: {accuracy:.3f}"
                say(done, recording.total, f"[{done}/{recording.total}] {line}")
                results.append((unit.freeze_at, condition, accuracy))

            train_unit(unit, recording.curve_id, info, data, recording.runs, features, ran, stop)
    except BaseException as err:
        recording.ended(STOPPED if isinstance(err, CurveStopped) else FAILED, str(err))
        raise
    return recording.finish(results)
