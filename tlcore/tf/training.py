"""Train a TrainConfig phase by phase with Keras' fit (or, on cached features, compiled epochs) and record the run.

Each phase is one `fit` call end to end, or one `fit_arrays` call on the cached route (`tlcore.tf.cached_route`);
what the product adds are callbacks (`tlcore.tf.callbacks`), plus the user's own. Every epoch of a phase visits
the images in the order fixed by (seed, epoch) (`pipeline.epoch_orders`) on either route. Devices: TensorFlow's
default placement, or with several devices and a phase that trains end to end, MirroredStrategy (`strategy_for`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from tlcore.backbones import get_backbone
from tlcore.config import TrainConfig
from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.devices import DeviceReport, check_precision, training_device
from tlcore.feature_store import FeatureStore
from tlcore.history import History
from tlcore.jsontypes import JSONValue
from tlcore.progress import EpochEnd, PhaseStart, Planned, ProgressFn, StopFlag
from tlcore.recording import Run
from tlcore.records import COMPLETED, FAILED, STOPPED
from tlcore.route import CACHED, DEFAULT_FEATURE_BUDGET_BYTES, planned_route
from tlcore.run_result import RunResult
from tlcore.runs import RunStore
from tlcore.schedule import EARLY_STOPPING_NOTE, Schedule, schedule
from tlcore.tf.build import build_for, compile_for, start_record
from tlcore.tf.cached_route import apply_fixed, cut, phase_features, route_for, split_fixed
from tlcore.tf.callbacks import PhaseInfo, TensorBoardScalars, TrainingMonitor, option_callbacks
from tlcore.tf.devices import choose_strategy, device_report, replicas
from tlcore.tf.model import param_counts, set_freeze_point
from tlcore.tf.phase_fit import PhaseFit
from tlcore.tf.pipeline import PreparedData, prepare_data

TENSORBOARD_DIR = "tensorboard"  # inside a run's folder


def plan_for(
    config: TrainConfig,
    model: keras.Model,
    data: PreparedData,
    feature_budget_bytes: int = DEFAULT_FEATURE_BUDGET_BYTES,
    strategy: tf.distribute.Strategy | None = None,
) -> Schedule:
    """How long `config` trains on this data (`tlcore.schedule`), from the route its first phase takes."""
    first_route, _ = route_for(config, model, config.freeze_at, data, feature_budget_bytes, strategy)
    return schedule(config, len(data.train), _per_class(data.validation.labels, len(data.class_names)), first_route)


def _per_class(labels: np.ndarray, num_classes: int) -> tuple[int, ...]:
    """Images of each class among `labels`, in class order."""
    return tuple(int(n) for n in np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes))


def _scope(strategy: tf.distribute.Strategy | None) -> contextlib.AbstractContextManager[None]:
    """The strategy's scope (a fresh one each time: a scope is entered once), or nothing without one."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def train(
    config: TrainConfig,
    data: PreparedData,
    model: keras.Model | None = None,
    progress: ProgressFn | None = None,
    stop: StopFlag | None = None,
    feature_budget_bytes: int = DEFAULT_FEATURE_BUDGET_BYTES,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    features: FeatureStore | None = None,
    strategy: tf.distribute.Strategy | None = None,
    *,
    drop_remainder: bool = False,
    batches_per_call: int | None = None,
    validate_last_only: bool = False,
) -> RunResult:
    """Train `config` on prepared data; returns the result with the model (`RunResult.model`) and its history.

    Runs one phase at config.freeze_at, then the optional fine-tuning phase,
    each as one `model.fit` (end to end) or one `fit_arrays` (cached).
    `callbacks` (your own Keras callbacks) get every phase's calls, after the
    product's own; on the cached path their `self.model` is the trainable
    suffix above the head's pooling, which shares its layers with the model.
    Stop: the current batch (cached: the current compiled call, a fraction of
    a second) finishes, no further batch runs, the partial epoch is recorded
    as such (with validation metrics), later phases are skipped, and the model
    learned so far is returned with status "stopped".
    A NaN loss ends the run with status "failed" and a reason. Early stopping
    ends only its phase (the reason says so); the status stays "completed".

    `features`: a feature store for the cached route: frozen features are read
    from it when an earlier run computed them, and kept in it otherwise. Only
    for a model whose frozen layers hold the config's starting weights (one
    `build_for` made, as `train_and_record` does).

    `strategy`: a tf.distribute strategy (`tlcore.tf.devices.choose_strategy`) the model was built in the
    scope of (None: TensorFlow's default device); every compile happens in its scope too.

    `drop_remainder`, `batches_per_call`: whole batches only, and at most this many batches per compiled call
    (batch hooks run once a call; see `PhaseFit`). The learning-rate range test (`tlcore.tf.lr_finder`) sets both.
    `validate_last_only`: each phase validates after its last epoch only (`PhaseFit`).
    """
    started = time.perf_counter()
    report = progress or (lambda _event: None)
    spec = get_backbone(config.backbone)
    if model is None:
        with _scope(strategy):
            model = build_for(config, len(data.class_names))
    result = RunResult(list(data.class_names), model=model)
    plan = result.schedule = plan_for(config, model, data, feature_budget_bytes, strategy)
    report(Planned(plan, tuple(data.class_names), _per_class(data.validation.labels, len(data.class_names))))
    rates = [config.learning_rate] + ([config.fine_tune.learning_rate] if config.fine_tune else [])
    phases = [(p.freeze_at, p.epochs, rate) for p, rate in zip(plan.phases, rates)]
    fit = PhaseFit.of(config, data, plan, drop_remainder, batches_per_call, validate_last_only)
    notes: list[str] = []

    epoch_offset = 0
    for phase, (freeze_at, epochs, learning_rate) in enumerate(phases, start=1):
        set_freeze_point(model, freeze_at, spec)
        trainable, frozen = param_counts(model)
        route, why = route_for(config, model, freeze_at, data, feature_budget_bytes, strategy)
        result.routes.append(route)
        report(PhaseStart(phase, freeze_at, epochs, learning_rate, route, why, trainable, frozen))

        arrays: tuple[np.ndarray, np.ndarray] | None = None
        if route == CACHED:
            prefix, suffix = cut(model, freeze_at, spec)
            got = phase_features(prefix, config, data, phase, freeze_at, features, report, stop)
            result.extract_seconds += got.extract_seconds
            if got.arrays is None or got.line is None:
                result.status, result.reason = STOPPED, "stopped while extracting features"
                break
            result.features.append(got.line)
            fixed, trained = split_fixed(suffix)
            arrays = (apply_fixed(fixed, got.arrays[0]), apply_fixed(fixed, got.arrays[1]))
        else:
            if stop is not None and stop.is_set():
                result.status, result.reason = STOPPED, f"stopped by the user before epoch {epoch_offset + 1}"
                break
            trained = model

        with _scope(strategy):
            compile_for(trained, config, learning_rate, fused=route == CACHED)  # the suffix is never saved
        options, early = option_callbacks(config, learning_rate, plan.patience)
        last_epoch = epoch_offset + epochs
        monitor = TrainingMonitor(
            PhaseInfo(phase, freeze_at, route, fit.batches_per_epoch, last_epoch, phase == len(phases)), report, stop
        )
        t0 = time.perf_counter()
        # initial_epoch makes the epoch numbers (callbacks, TensorBoard steps) count over all phases.
        if arrays is not None:
            fit.cached(trained, arrays, epoch_offset, epochs, [monitor, *options, *callbacks])
        else:
            fit.end_to_end(trained, epoch_offset, epochs, [monitor, *options, *callbacks])
        result.train_seconds += time.perf_counter() - t0
        result.history = History((*result.history, *monitor.rows))
        if monitor.status != COMPLETED:
            result.status, result.reason = monitor.status, monitor.reason
        epoch_offset = len(result.history)  # a phase early stopping ended leaves no gap before the next
        # Keras 3 restores the best epoch's weights at the end of fit, stopped early or not; a later phase
        # trains on from them.
        restored = early is not None and early.best_weights is not None
        result.history = result.history.keeping(early.best_epoch + 1 if early is not None and restored else None)
        if result.status != COMPLETED:
            break
        if early is not None and early.stopped_epoch:
            notes.append(
                f"{EARLY_STOPPING_NOTE}no val_loss improvement for {plan.patience} epochs "
                f"(phase {phase} ended after epoch {early.stopped_epoch + 1}; "
                f"the weights of epoch {early.best_epoch + 1} were kept)"
            )

    if result.status == COMPLETED:
        result.reason = "; ".join(notes)
    result.seconds = time.perf_counter() - started
    return result


def strategy_for(config: TrainConfig, devices: DeviceReport, num_images: int) -> tf.distribute.Strategy | None:
    """MirroredStrategy when several devices are there (`choose_strategy`) and a phase of `config` trains end to end.

    A run whose every phase takes the cached route trains only its head, milliseconds an epoch on one device:
    it runs without the strategy, on TensorFlow's default device (see SEVERAL_REPLICAS).
    """
    phases = [config.freeze_at] + ([config.fine_tune.freeze_at] if config.fine_tune else [])
    if all(planned_route(config, freeze_at, num_images)[0] == CACHED for freeze_at in phases):
        return None
    return choose_strategy(devices)


def train_and_record(
    config: TrainConfig,
    info: DatasetInfo,
    store: RunStore | None = None,
    progress: ProgressFn | None = None,
    stop: StopFlag | None = None,
    tags: Mapping[str, JSONValue] | None = None,
    data: PreparedData | None = None,
    on_run_created: Callable[[Run], None] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    features: FeatureStore | None = None,
    model: keras.Model | None = None,
    keep_model: bool = True,
    validate_last_only: bool = False,
) -> tuple[RunResult, Run]:
    """Train and keep the run in the run store: record first, history every epoch, model at the end.

    The run's folder also gets TensorBoard logs (TENSORBOARD_DIR, one scalar per
    metric per epoch); `callbacks` are your own Keras callbacks, as for `train`.

    The disk failing (full, unwritable) never stops the training or loses its
    result: the result comes back with `save_error` saying what was not saved,
    and its model stays in memory.

    `features`: where frozen features are read from and kept (default: the
    feature store of the run store's folder, or TLLAB_CACHE_DIR).

    `model`: the model to train instead of one `build_for(config)` makes (a transfer curve's re-initialised or
    fine-tuned model: `train`'s `features` rule holds). `keep_model=False` records the run without its
    model file (the record says model_saved false). `validate_last_only`: as for `train`.
    """
    # The run's wall time counts building the model too: tlcore.speed measures what a run costs from it.
    started = time.perf_counter()
    # A precision this device cannot run, and weights problems (offline, bad file), surface here: before any run
    # folder or decoding.
    devices = device_report()
    check_precision(config.precision, devices)
    strategy = strategy_for(config, devices, info.num_images(TRAIN) + info.num_images(VALIDATION))
    if model is None:
        with _scope(strategy):
            model = build_for(config, len(info.class_names))
    store = store or RunStore()
    run = store.create(
        config, info, tags, start=start_record(config, model), device=training_device(devices, replicas(strategy))
    )
    features = features or FeatureStore.default(store.root)
    if on_run_created:
        on_run_created(run)
    write_errors: list[str] = []

    def record(write: Callable[[], object], what: str) -> str:
        """Do one write to the run folder; on OSError remember why and carry on."""
        try:
            write()
            return ""
        except OSError as err:
            message = f"The {what} could not be saved to {run.run_dir}: {err.strerror or err}"
            write_errors.append(message)
            return message

    def on_event(event: object) -> None:
        if isinstance(event, EpochEnd):
            record(lambda: run.add_epoch(event.row), "history")
        elif isinstance(event, PhaseStart):
            record(lambda: run.update(routes=[*(run.record.routes or []), event.route]), "run record")
        else:
            record(run.heartbeat, "run record")
        if progress:
            progress(event)

    try:
        if data is None:
            data = prepare_data(info, config.image_size, on_event)
        tensorboard = TensorBoardScalars(run.run_dir / TENSORBOARD_DIR)
        result = train(
            config,
            data,
            model=model,
            progress=on_event,
            stop=stop,
            callbacks=[tensorboard, *callbacks],
            features=features,
            strategy=strategy,
            validate_last_only=validate_last_only,
        )
        if tensorboard.error:
            write_errors.append(tensorboard.error)
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        record(lambda: run.finish(FAILED, reason=reason), "run record")
        raise
    model_error = record(lambda: run.save_model(result.model), "model") if keep_model else ""
    record(
        lambda: run.finish(
            result.status,
            result.reason or model_error or next(iter(write_errors), ""),
            final=result.final,
            kept_epoch=result.kept_epoch,
            routes=result.routes,
            seconds=time.perf_counter() - started,
            extract_seconds=result.extract_seconds,
            features=result.features,
            train_seconds=result.train_seconds,
            model_saved=keep_model and not model_error,
        ),
        "run record",
    )
    # The lost model matters most; otherwise the first write that failed (the last record's included) says it.
    result.save_error = model_error or next(iter(write_errors), "")
    result.run_dir = str(run.run_dir)
    return result, run
