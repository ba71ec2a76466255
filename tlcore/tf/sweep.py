"""Running a freeze sweep (planned by `tlcore.sweep`): each point an ordinary run in the run store.

Images are decoded once per sweep and every point trains on the same decoded arrays.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import keras
import numpy as np

from tlcore.backbones import NO_WEIGHTS, get_backbone, normalize_weights
from tlcore.config import TrainConfig
from tlcore.data import DatasetInfo
from tlcore.devices import check_precision
from tlcore.feature_store import FeatureKey, FeatureStore
from tlcore.history import History
from tlcore.progress import PhaseStart, ProgressFn, StepProgress, StopFlag
from tlcore.recording import Run
from tlcore.records import COMPLETED, STOPPED
from tlcore.route import CACHED, DEFAULT_FEATURE_BUDGET_BYTES, planned_route
from tlcore.runs import RunStore
from tlcore.sweep import DEFAULT_POINTS, SweepPoint, SweepPointStart, SweepResult, new_sweep_id, plan
from tlcore.tf.backbones import load_backbone
from tlcore.tf.build import build_for
from tlcore.tf.cached_route import feature_key
from tlcore.tf.devices import device_report
from tlcore.tf.model import backbone_layers
from tlcore.tf.pipeline import PreparedData, predict_outputs, prepare_data
from tlcore.tf.training import train_and_record


def check_weights(config: TrainConfig) -> None:
    """Fail before decoding anything when the weights cannot be had (offline, bad file).

    The convolution weights do not depend on the image size, so a 32 px base is enough.
    """
    if normalize_weights(config.weights) != NO_WEIGHTS:
        load_backbone(get_backbone(config.backbone), 32, config.weights)


def run_sweep(
    base_config: TrainConfig,
    info: DatasetInfo,
    points: Sequence[int] = DEFAULT_POINTS,
    scratch: bool = True,
    store: RunStore | None = None,
    progress: ProgressFn | None = None,
    stop: StopFlag | None = None,
    data: PreparedData | None = None,
    sweep_id: str | None = None,
    on_point: Callable[[SweepPoint], None] | None = None,
    on_run_created: Callable[[Run], None] | None = None,
    features: FeatureStore | None = None,
    feature_budget_bytes: int = DEFAULT_FEATURE_BUDGET_BYTES,
) -> SweepResult:
    """Train base_config at each freeze point (and from scratch), one tagged run per point.

    Args:
        base_config: everything but the freeze point (its fine_tune is ignored).
        points: freeze points k, run in this order.
        scratch: add the baseline: random weights, k = 0 (every layer learns).
        data: images already decoded at base_config.image_size; decoded here otherwise.
        progress: gets SweepPointStart before each point, then that point's
            training events (tlcore.tf.training), and the decode progress once.
        on_point: called with each point as it finishes (stopped ones included).
        features: the feature store (default: the run store's). The frozen features of every
            cached point come from one forward pass through the backbone when they fit
            `feature_budget_bytes` together (`extract_sweep_features`); each point then reads its own.

    Raises:
        ValueError: bad points, or `data` decoded at another image size.
        WeightsError: the weights cannot be loaded (before anything is decoded).
        PrecisionUnsupported: base_config's precision does not run on this machine's device (before too).
    """
    started = time.perf_counter()
    store = store or RunStore()
    report = progress or (lambda _event: None)
    planned, data, result = prepare_sweep(
        base_config, info, points, scratch, store, report, stop, data, features, feature_budget_bytes
    )
    result.sweep_id = sweep_id or result.sweep_id
    features = features or FeatureStore.default(store.root)

    for index, (label, config) in enumerate(planned, start=1):
        if stop is not None and stop.is_set():
            result.skipped = [name for name, _ in planned[index - 1 :]]
            result.status = STOPPED
            break
        report(SweepPointStart(index, len(planned), label, config.freeze_at, config.weights))
        point = run_point(label, config, info, store, data, result.sweep_id, report, stop, on_run_created, features)
        result.points.append(point)
        if on_point:
            on_point(point)
        if point.status == STOPPED:
            result.skipped = [name for name, _ in planned[index:]]
            result.status = STOPPED
            break

    result.seconds = time.perf_counter() - started
    return result


def prepare_sweep(
    base_config: TrainConfig,
    info: DatasetInfo,
    points: Sequence[int] = DEFAULT_POINTS,
    scratch: bool = True,
    store: RunStore | None = None,
    report: ProgressFn | None = None,
    stop: StopFlag | None = None,
    data: PreparedData | None = None,
    features: FeatureStore | None = None,
    feature_budget_bytes: int = DEFAULT_FEATURE_BUDGET_BYTES,
) -> tuple[list[tuple[str, TrainConfig]], PreparedData, SweepResult]:
    """What every point shares, done once: check the weights, decode the images, extract the shared features.

    Returns:
        The planned points, the decoded images, and a SweepResult with its timings
        (decode_seconds, shared_points, shared_extract_seconds) and no points yet.

    Raises:
        ValueError: bad points, or `data` decoded at another image size.
        WeightsError: the weights cannot be loaded (before anything is decoded).
    """
    planned = plan(base_config, points, scratch)
    check_precision(base_config.precision, device_report())  # before decoding, as the weights
    store = store or RunStore()
    report = report or (lambda _event: None)
    result = SweepResult(sweep_id=new_sweep_id(), status=COMPLETED)
    if any(normalize_weights(config.weights) != NO_WEIGHTS for _, config in planned):
        check_weights(base_config)
    if data is None:
        t0 = time.perf_counter()
        data = prepare_data(info, base_config.image_size, report)
        result.decode_seconds = time.perf_counter() - t0
    elif data.train.image_size != base_config.image_size:
        raise ValueError(
            f"The decoded images are {data.train.image_size} px but the sweep trains at "
            f"{base_config.image_size} px. Received: image_size={base_config.image_size}"
        )
    t0 = time.perf_counter()
    result.shared_points = extract_sweep_features(
        planned, data, features or FeatureStore.default(store.root), report, stop, feature_budget_bytes
    )
    result.shared_extract_seconds = time.perf_counter() - t0
    return planned, data, result


def extract_sweep_features(
    planned: Sequence[tuple[str, TrainConfig]],
    data: PreparedData,
    features: FeatureStore,
    report: ProgressFn,
    stop: StopFlag | None = None,
    budget_bytes: int = DEFAULT_FEATURE_BUDGET_BYTES,
) -> list[int]:
    """Put the frozen features of the sweep's cached points into the store from one pass through the backbone.

    Every point at freeze point k would otherwise run the images through layers 1..k itself: five
    pretrained points run the shallow blocks five times. One pass with an output at each point's
    boundary gives them all. The shallow boundaries are large (block 1 at 96 px: 590 KB per image),
    so boundaries are taken deepest first while they fit `budget_bytes` together; the others, and
    points whose features are already stored, extract (or read) their own as before.

    Returns:
        The freeze points whose features this pass stored (none when fewer than two needed it).
    """
    wanted: dict[int, tuple[TrainConfig, FeatureKey]] = {}
    for _, config in planned:
        if (
            config.freeze_at == 0
            or planned_route(config, config.freeze_at, len(data.train) + len(data.validation))[0] != CACHED
        ):
            continue
        key = feature_key(config, data, config.freeze_at)
        if not features.has(key):
            wanted[config.freeze_at] = (config, key)
    # Points share a pass only when they share weights (a random start differs by seed).
    by_weights: dict[str, list[int]] = {}
    for k, (_, key) in wanted.items():
        by_weights.setdefault(key.weights, []).append(k)
    points = max(by_weights.values(), key=len, default=[])
    if len(points) < 2:
        return []
    config = wanted[points[0]][0]
    model = build_for(config, len(data.class_names))
    layers = backbone_layers(model, get_backbone(config.backbone))
    images = len(data.train) + len(data.validation)
    chosen, need = [], 0
    for k in sorted(points, reverse=True):  # deepest (smallest) first
        size = int(np.prod(layers[k - 1].output.shape[1:])) * 4 * images
        if need + size <= budget_bytes:
            chosen.append(k)
            need += size
    if len(chosen) < 2:
        return []
    prefix = keras.Model(model.inputs, [layers[k - 1].output for k in chosen], name="sweep_boundaries")

    def progress(n: int, offset: int = 0) -> None:
        report(StepProgress("extract", offset + n, images))

    train = predict_outputs(prefix, data.train, progress=progress, stop=stop)
    val = (
        None
        if train is None
        else predict_outputs(prefix, data.validation, progress=lambda n: progress(n, len(data.train)), stop=stop)
    )
    if train is None or val is None:
        return []  # stopped: the sweep loop sees the flag next
    for k, x_train, x_val in zip(chosen, train, val):
        try:
            features.put(wanted[k][1], x_train, x_val)
        except OSError:
            return []  # a store that cannot be written: every point extracts its own, as before
    return sorted(chosen)


def run_point(
    label: str,
    config: TrainConfig,
    info: DatasetInfo,
    store: RunStore,
    data: PreparedData | None,
    sweep_id: str,
    report: ProgressFn,
    stop: StopFlag | None,
    on_run_created: Callable[[Run], None] | None = None,
    features: FeatureStore | None = None,
) -> SweepPoint:
    """Train one point as a run tagged with its sweep (decoding the images itself when `data` is None)."""
    started = time.perf_counter()
    phase_start: list[PhaseStart] = []

    def on_event(event: object) -> None:
        if isinstance(event, PhaseStart) and event.phase == 1:
            phase_start.append(event)
        report(event)

    result, run = train_and_record(
        config,
        info,
        store,
        progress=on_event,
        stop=stop,
        tags={"sweep": sweep_id, "point": label},
        data=data,
        on_run_created=on_run_created,
        features=features,
    )
    history = History.of(result.history)
    first = phase_start[0] if phase_start else None
    return SweepPoint(
        label=label,
        freeze_at=config.freeze_at,
        weights=config.weights,
        trainable_params=first.trainable_params if first else 0,
        frozen_params=first.frozen_params if first else 0,
        epoch_seconds=history.mean_epoch_seconds,
        extract_seconds=result.extract_seconds,
        best_val_accuracy=history.best_val_accuracy,
        final_val_accuracy=history.final_val_accuracy,
        best_val_loss=history.best_val_loss,
        final_val_loss=history.final_val_loss,
        route=result.routes[0] if result.routes else "",
        run_dir=str(run.run_dir),
        status=result.status,
        epochs_done=len(history),
        seconds=time.perf_counter() - started,
        reason=result.reason or result.save_error,
    )
