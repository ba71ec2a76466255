"""Train a transfer-learning model, reporting progress to a plain callable.

The loop is our own (train_on_batch over tf.data batches) rather than
`model.fit`, so that: a stop flag is checked before every batch (no further
batch runs once it is seen), every epoch visits the data in an order fixed by
(seed, epoch) whatever the source (images or cached features), and progress
is reported per batch without Keras' console logging.

Feature caching: with augmentation off, the frozen prefix of the model
computes the same activations every epoch. When they fit a memory budget we
compute them once and train only the layers above the freeze point.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import keras
import numpy as np
import tensorflow as tf

from tlcore.backbone_facts import DEFAULT_BACKBONE
from tlcore.backbones import get_backbone
from tlcore.config import AugmentConfig, TrainConfig
from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.model import backbone_layers, build_model, param_counts, set_freeze_point
from tlcore.records import History
from tlcore.runs import Run, RunStore
from tlcore.pipeline import (
    DEFAULT_IMAGE_BUDGET_BYTES,
    ImageSet,
    array_dataset,
    epoch_order,
    load_split,
    make_dataset,
)

CACHED, END_TO_END = "cached", "end_to_end"
DEFAULT_FEATURE_BUDGET_BYTES = 1 << 30
COMPLETED, STOPPED, FAILED = "completed", "stopped", "failed"


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


# --- progress events -------------------------------------------------------------


@dataclass(frozen=True)
class StepProgress:
    """Progress through decoding images or extracting features."""

    stage: str  # "decode" | "extract"
    done: int
    total: int


@dataclass(frozen=True)
class PhaseStart:
    phase: int
    freeze_at: int
    epochs: int
    learning_rate: float
    path: str
    path_reason: str
    trainable_params: int
    frozen_params: int


@dataclass(frozen=True)
class BatchEnd:
    phase: int
    epoch: int  # 1-based, counted over all phases
    batch: int  # 1-based
    batches: int
    loss: float


@dataclass(frozen=True)
class EpochEnd:
    row: dict[str, Any]  # one history row: see TrainResult.history


ProgressFn = Callable[[object], None]


@dataclass
class PreparedData:
    """Decoded train and validation images of a dataset at one image size."""

    info: DatasetInfo
    train: ImageSet
    validation: ImageSet

    @property
    def class_names(self) -> list[str]:
        return self.info.class_names


@dataclass
class TrainResult:
    model: keras.Model | None  # None once a caller has let it go
    config: TrainConfig
    class_names: list[str]
    status: str  # completed | stopped | failed
    reason: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # per phase
    extract_seconds: float = 0.0
    train_seconds: float = 0.0
    seconds: float = 0.0
    save_error: str = ""  # set when the run store could not save the model

    @property
    def final(self) -> dict[str, float]:
        """Last epoch's metrics, plus the best validation accuracy (see History.final_metrics)."""
        return History.of(self.history).final_metrics()


def build_for(config: TrainConfig, num_classes: int) -> keras.Model:
    """The model a config describes, with the head initialised from config.seed."""
    keras.utils.set_random_seed(config.seed)
    return build_model(num_classes, config.image_size, config.weights, config.head, config.freeze_at, config.backbone)


def prepare_data(
    info: DatasetInfo,
    image_size: int,
    progress: ProgressFn | None = None,
    budget_bytes: int = DEFAULT_IMAGE_BUDGET_BYTES,
) -> PreparedData:
    """Decode both splits once (in memory when they fit budget_bytes)."""
    total = info.num_images(TRAIN) + info.num_images(VALIDATION)
    offset = 0

    def report(split_offset: int) -> Callable[[int, int], None]:
        return lambda done, _n: progress and progress(StepProgress("decode", split_offset + done, total))

    train_set = load_split(info, TRAIN, image_size, budget_bytes, report(offset))
    offset += len(train_set)
    val_set = load_split(info, VALIDATION, image_size, budget_bytes, report(offset))
    return PreparedData(info, train_set, val_set)


def build_augmenter(augment: AugmentConfig, seed: int = 0) -> keras.Sequential:
    """Keras preprocessing layers for the chosen augmentations (call with training=True)."""
    layers: list[keras.layers.Layer] = []
    if augment.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if augment.rotation:
        layers.append(keras.layers.RandomRotation(augment.rotation, fill_mode="reflect", seed=seed + 1))
    if augment.zoom:
        layers.append(keras.layers.RandomZoom(augment.zoom, fill_mode="reflect", seed=seed + 2))
    if augment.translation:
        layers.append(
            keras.layers.RandomTranslation(augment.translation, augment.translation, fill_mode="reflect", seed=seed + 3)
        )
    if augment.contrast:
        layers.append(keras.layers.RandomContrast(augment.contrast, value_range=(0, 255), seed=seed + 4))
    return keras.Sequential(layers, name="augment")


def cut(model: keras.Model, freeze_at: int) -> tuple[keras.Model, keras.Model]:
    """Split the chain after `freeze_at` backbone layers into (prefix, suffix).

    Both share the model's layer objects, so training the suffix trains the model.
    """
    spec = get_backbone(DEFAULT_BACKBONE)
    if not 1 <= freeze_at <= spec.num_layers:
        raise ValueError(f"A cut needs 1 <= freeze_at <= {spec.num_layers}. Received: freeze_at={freeze_at}")
    boundary = backbone_layers(model, spec)[freeze_at - 1]
    prefix = keras.Model(model.inputs, boundary.output, name=f"prefix_{freeze_at}")
    after = model.layers[model.layers.index(boundary) + 1 :]
    features = keras.Input(shape=tuple(boundary.output.shape[1:]), name="features")
    x = features
    for layer in after:
        x = layer(x)
    suffix = keras.Model(features, x, name=f"suffix_{freeze_at}")
    return prefix, suffix


def choose_path(
    config: TrainConfig,
    freeze_at: int,
    boundary_floats_per_image: int,
    num_images: int,
    feature_budget_bytes: int = DEFAULT_FEATURE_BUDGET_BYTES,
) -> tuple[str, str]:
    """("cached" | "end_to_end", why) for a phase with this freeze point."""
    if not config.cache_features:
        return END_TO_END, "feature caching is turned off"
    if config.augment.enabled:
        return END_TO_END, "augmentation is on, so every epoch sees different pixels"
    if freeze_at == 0:
        return END_TO_END, "nothing is frozen, so there is nothing to cache"
    need = boundary_floats_per_image * 4 * num_images
    if need > feature_budget_bytes:
        return END_TO_END, (
            f"the features at the freeze point need {need / 2**20:.0f} MiB, "
            f"over the {feature_budget_bytes / 2**20:.0f} MiB budget"
        )
    return CACHED, (
        f"the frozen layers are computed once ({need / 2**20:.1f} MiB of features); "
        "each epoch trains only the layers above"
    )


def extract_features(
    prefix: keras.Model,
    images: ImageSet,
    batch_size: int = 32,
    progress: ProgressFn | None = None,
    stop: StopFlag | None = None,
    done_before: int = 0,
    total: int | None = None,
) -> np.ndarray | None:
    """Run the frozen prefix once over every image; None if stopped."""
    total = total or len(images)
    outputs = []
    done = done_before
    for x, _ in make_dataset(images, batch_size):
        if stop is not None and stop.is_set():
            return None
        outputs.append(np.asarray(prefix.predict_on_batch(x)))
        done += int(x.shape[0])
        if progress:
            progress(StepProgress("extract", done, total))
    if not outputs:
        return np.zeros((0, *prefix.output.shape[1:]), dtype=np.float32)
    return np.concatenate(outputs)


def _make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    return keras.optimizers.Adam(learning_rate)


def compile_for(model: keras.Model, config: TrainConfig, learning_rate: float) -> None:
    """Compile with the loss and accuracy that match the head's output."""
    if config.head.output == "sigmoid":
        loss, accuracy = keras.losses.BinaryCrossentropy(), keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss, accuracy = (
            keras.losses.SparseCategoricalCrossentropy(),
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        )
    model.compile(optimizer=_make_optimizer(config.optimizer, learning_rate), loss=loss, metrics=[accuracy])


def _targets(config: TrainConfig, y: tf.Tensor) -> tf.Tensor:
    if config.head.output == "sigmoid":
        return tf.cast(tf.reshape(y, (-1, 1)), tf.float32)
    return y


def train(
    config: TrainConfig,
    data: PreparedData,
    model: keras.Model | None = None,
    progress: ProgressFn | None = None,
    stop: StopFlag | None = None,
    feature_budget_bytes: int = DEFAULT_FEATURE_BUDGET_BYTES,
) -> TrainResult:
    """Train `config` on prepared data; returns the model and its history.

    Runs one phase at config.freeze_at, then the optional fine-tuning phase.
    Stop: the current batch finishes, no further batch runs, the partial
    epoch is recorded as such (with validation metrics), later phases are
    skipped, and the model learned so far is returned with status "stopped".
    A NaN loss ends the run with status "failed" and a reason.
    """
    started = time.perf_counter()
    report = progress or (lambda _event: None)
    spec = get_backbone(config.backbone)
    if model is None:
        model = build_for(config, len(data.class_names))
    result = TrainResult(model=model, config=config, class_names=list(data.class_names), status=COMPLETED)
    phases = [(config.freeze_at, config.epochs, config.learning_rate)]
    if config.fine_tune:
        phases.append((config.fine_tune.freeze_at, config.fine_tune.epochs, config.fine_tune.learning_rate))
    augmenter = build_augmenter(config.augment, config.seed) if config.augment.enabled else None

    epoch_offset = 0
    for phase, (freeze_at, epochs, learning_rate) in enumerate(phases, start=1):
        set_freeze_point(model, freeze_at, spec)
        trainable, frozen = param_counts(model)
        boundary = backbone_layers(model, spec)[freeze_at - 1] if freeze_at else None
        floats = int(np.prod(boundary.output.shape[1:])) if boundary is not None else 0
        path, why = choose_path(
            config, freeze_at, floats, len(data.train) + len(data.validation), feature_budget_bytes
        )
        result.paths.append(path)
        report(PhaseStart(phase, freeze_at, epochs, learning_rate, path, why, trainable, frozen))

        if path == CACHED:
            t0 = time.perf_counter()
            prefix, trained = cut(model, freeze_at)
            total = len(data.train) + len(data.validation)
            x_train = extract_features(prefix, data.train, 32, report, stop, 0, total)
            x_val = None if x_train is None else extract_features(
                prefix, data.validation, 32, report, stop, len(data.train), total
            )
            result.extract_seconds += time.perf_counter() - t0
            if x_val is None:
                result.status, result.reason = STOPPED, "stopped while extracting features"
                break
            train_batches = lambda epoch, xt=x_train: array_dataset(  # noqa: E731
                xt, data.train.labels, config.batch_size, epoch_order(len(xt), config.seed, epoch)
            )
            val_batches = lambda xv=x_val: array_dataset(  # noqa: E731
                xv, data.validation.labels, config.batch_size, np.arange(len(xv))
            )
        else:
            trained = model
            train_batches = lambda epoch: make_dataset(  # noqa: E731
                data.train, config.batch_size, shuffle=True, seed=config.seed, epoch=epoch
            )
            val_batches = lambda: make_dataset(data.validation, config.batch_size)  # noqa: E731

        compile_for(trained, config, learning_rate)
        t0 = time.perf_counter()
        outcome = _run_epochs(
            trained, config, phase, freeze_at, learning_rate, path, epochs, epoch_offset,
            math.ceil(len(data.train) / config.batch_size), train_batches, val_batches,
            augmenter, result, report, stop,
        )
        result.train_seconds += time.perf_counter() - t0
        epoch_offset += epochs
        if outcome != COMPLETED:
            break

    result.seconds = time.perf_counter() - started
    return result


def _run_epochs(
    trained: keras.Model,
    config: TrainConfig,
    phase: int,
    freeze_at: int,
    learning_rate: float,
    path: str,
    epochs: int,
    epoch_offset: int,
    batches_per_epoch: int,
    train_batches: Callable[[int], Iterable],
    val_batches: Callable[[], Iterable],
    augmenter: keras.Sequential | None,
    result: TrainResult,
    report: ProgressFn,
    stop: StopFlag | None,
) -> str:
    augment = tf.function(lambda x: augmenter(tf.cast(x, tf.float32), training=True)) if augmenter else None
    for epoch in range(epoch_offset + 1, epoch_offset + epochs + 1):
        t0 = time.perf_counter()
        totals = _RunningMean()  # Keras resets metrics on every *_on_batch call
        done = 0
        for x, y in train_batches(epoch):
            if stop is not None and stop.is_set():
                result.status, result.reason = STOPPED, f"stopped by the user during epoch {epoch}"
                break
            if augment is not None and path == END_TO_END:
                x = augment(x)
            logs = trained.train_on_batch(x, _targets(config, y), return_dict=True)
            totals.add(logs, int(y.shape[0]))
            done += 1
            loss = float(logs["loss"])
            report(BatchEnd(phase, epoch, done, batches_per_epoch, loss))
            if not math.isfinite(loss):
                result.status = FAILED
                result.reason = (
                    f"loss became {loss} at epoch {epoch}, batch {done}: training diverged "
                    f"(try a lower learning rate than {learning_rate:g})"
                )
                break
        if done == 0:  # stopped before this epoch ran a single batch
            return result.status
        val = _evaluate(trained, config, val_batches())
        row = {
            "phase": phase,
            "epoch": epoch,
            "freeze_at": freeze_at,
            "learning_rate": learning_rate,
            "path": path,
            "loss": totals.mean("loss"),
            "accuracy": totals.mean("accuracy"),
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "seconds": time.perf_counter() - t0,
            "batches": done,
            "partial": done < batches_per_epoch,
        }
        result.history.append(row)
        report(EpochEnd(row))
        if result.status != COMPLETED:
            return result.status
    return COMPLETED


class _RunningMean:
    """Sample-weighted means of per-batch metrics over an epoch."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, logs: dict[str, Any], n: int) -> None:
        for key, value in logs.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * n
        self.count += n

    def mean(self, key: str) -> float:
        return self.sums[key] / self.count if self.count else float("nan")


def _evaluate(model: keras.Model, config: TrainConfig, batches: Iterable) -> dict[str, float]:
    totals = _RunningMean()
    for x, y in batches:
        totals.add(model.test_on_batch(x, _targets(config, y), return_dict=True), int(y.shape[0]))
    return {"loss": totals.mean("loss"), "accuracy": totals.mean("accuracy")}


def train_and_record(
    config: TrainConfig,
    info: DatasetInfo,
    store: RunStore | None = None,
    progress: ProgressFn | None = None,
    stop: StopFlag | None = None,
    tags: dict[str, Any] | None = None,
    data: PreparedData | None = None,
    on_run_created: Callable[[Run], None] | None = None,
) -> tuple[TrainResult, Run]:
    """Train and keep the run in the run store: record first, history every epoch, model at the end.

    The disk failing (full, unwritable) never stops the training or loses its
    result: the result comes back with `save_error` saying what was not saved,
    and its model stays in memory.
    """
    # Weights problems (offline, bad file) surface here: before any run folder or decoding.
    model = build_for(config, len(info.class_names))
    run = (store or RunStore()).create(config, info, tags)
    if on_run_created:
        on_run_created(run)
    started = time.perf_counter()
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
            record(lambda: run.update(paths=[*(run.record.paths or []), event.path]), "run record")
        else:
            record(run.heartbeat, "run record")
        if progress:
            progress(event)

    try:
        if data is None:
            data = prepare_data(info, config.image_size, on_event)
        result = train(config, data, model=model, progress=on_event, stop=stop)
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        record(lambda: run.finish(FAILED, reason=reason), "run record")
        raise
    model_error = record(lambda: run.save_model(result.model), "model")
    record(lambda: run.finish(
        result.status,
        result.reason or model_error or next(iter(write_errors), ""),
        final=result.final,
        paths=result.paths,
        seconds=time.perf_counter() - started,
        extract_seconds=result.extract_seconds,
        train_seconds=result.train_seconds,
        model_saved=not model_error,
    ), "run record")
    # The lost model matters most; otherwise the first write that failed (the last record's included) says it.
    result.save_error = model_error or next(iter(write_errors), "")
    return result, run
