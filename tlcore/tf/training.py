"""Train a transfer-learning model with Keras' `fit` (or, on cached features, compiled epochs), reporting progress.

Each phase is one `fit` call, or on the cached route one `fit_arrays` call
(`tlcore.tf.compiled_epochs`: the same callbacks and logs as fit, several
batches per compiled call); what the product adds are Keras callbacks
(`TrainingMonitor`: progress events, the stop flag, a NaN loss, the history
rows; `TensorBoardScalars`: per-epoch TensorBoard logs), plus the user's own.
What Keras 3.15's TensorFlow trainer does that this relies on (read in
keras/src/backend/tensorflow/trainer.py), and `fit_arrays` does alike: it
checks `model.stop_training` after every batch (fit_arrays: every call) and
breaks out of the epoch, still validates that partial epoch and calls
`on_epoch_end` with its metrics, and resets the metrics at each epoch start,
so the epoch logs are sample-weighted means over the epoch (the loss tracker
is weighted by batch size).

Order: every epoch of a phase visits the images in the order fixed by
(seed, epoch) (`pipeline.epoch_orders`): end to end, one tf.data dataset per
phase holds every epoch, read with `steps_per_epoch` so fit keeps one
iterator across epochs and epoch k gets exactly epoch k's batches; cached,
`fit_arrays` gathers each epoch's batches from the features by those orders.

Feature caching: with augmentation off, the frozen prefix of the model
computes the same activations every epoch. When they fit a memory budget we
compute them once (or read them from the feature store), apply the head's
pooling to them once (`split_fixed`), and train only the layers above.

Devices: TensorFlow's default placement (its first GPU when it sees one),
or, with several devices and a phase that trains end to end,
`tf.distribute.MirroredStrategy` (`strategy_for`): the model is built and
every phase compiled in its scope, and fit splits each batch between the
replicas. Precision: the model's layers carry the config's dtype policy
(`build_model`), features are kept as float32 whatever computed them, and
mixed_float16 scales the loss (`compile_for`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tlcore.backbone_facts import DEFAULT_BACKBONE
from tlcore.backbones import get_backbone, normalize_weights, weights_file, weights_identity
from tlcore.config import (
    MIN_IMPROVEMENT,
    PLATEAU_FACTOR,
    PLATEAU_MIN_LR_FRACTION,
    PLATEAU_PATIENCE,
    SGD_MOMENTUM,
    AugmentConfig,
    TrainConfig,
)
from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.devices import MIXED_FLOAT16, DeviceReport, check_precision, training_device
from tlcore.feature_store import FeatureKey, FeatureStore, StoredFeatures, format_time
from tlcore.progress import BatchEnd, EpochEnd, FeaturesReused, PhaseStart, Planned, ProgressFn, StepProgress, StopFlag
from tlcore.records import COMPLETED, FAILED, STOPPED, History, StartRecord
from tlcore.route import CACHED, DEFAULT_FEATURE_BUDGET_BYTES, END_TO_END, choose_route, planned_route
from tlcore.runs import Run, RunStore
from tlcore.schedule import Schedule, schedule
from tlcore.tf.backbones import SEEDED_BUILD
from tlcore.tf.compiled_epochs import fit_arrays
from tlcore.tf.devices import choose_strategy, device_report, replicas
from tlcore.tf.fused_optimizers import FusedAdam, FusedSGD
from tlcore.tf.model import backbone_layers, build_model, layer_weight_norms, param_counts, set_freeze_point
from tlcore.tf.pipeline import DEFAULT_IMAGE_BUDGET_BYTES, ImageSet, epoch_orders, load_split, make_dataset

TENSORBOARD_DIR = "tensorboard"  # inside a run's folder
# Why a phase that could use cached features runs end to end under MirroredStrategy: the compiled epochs of
# the cached route (tlcore.tf.compiled_epochs) run on one device, outside the strategy's replicas.
SEVERAL_REPLICAS = "{} replicas train together (MirroredStrategy), which the cached route does not do"


@dataclass
class PreparedData:
    """Decoded train and validation images of a dataset at one image size."""

    info: DatasetInfo
    train: ImageSet
    validation: ImageSet

    @property
    def class_names(self) -> list[str]:
        return self.info.class_names

    @functools.cached_property
    def fingerprint(self) -> str:
        """The dataset's files (paths, sizes, modification times) as a short hash, read once."""
        return self.info.fingerprint()


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
    features: list[dict[str, Any]] = field(default_factory=list)  # per cached phase: reused from the store?
    train_seconds: float = 0.0
    seconds: float = 0.0
    save_error: str = ""  # set when the run store could not save the model
    schedule: Schedule | None = None  # how long it trained on this data (batch size, epochs, early stopping)
    kept_epoch: int | None = None  # early stopping ended the last phase and restored this epoch's weights

    @property
    def final(self) -> dict[str, float]:
        """The kept epoch's metrics, plus the best validation accuracy (see History.final_metrics)."""
        return History.of(self.history, self.kept_epoch).final_metrics()


def build_for(config: TrainConfig, num_classes: int) -> keras.Model:
    """The model a config describes, with the head initialised from config.seed (the same seed, the same model)."""
    with SEEDED_BUILD:
        keras.utils.set_random_seed(config.seed)
        return build_model(
            num_classes,
            config.image_size,
            config.weights,
            config.head,
            config.freeze_at,
            config.backbone,
            config.precision,
        )


def start_record(config: TrainConfig, model: keras.Model) -> StartRecord:
    """Where a run built by `build_for(config, ...)` starts: what rebuilds `model`'s weights as they are now.

    The weights file is identified by its content (hashed once per file and
    modification), and every layer's ||W0|| is kept to check a rebuild.
    """
    weights = normalize_weights(config.weights)
    path = weights_file(weights, get_backbone(config.backbone))
    return StartRecord(
        weights=weights,
        weights_file=str(path) if path is not None else "",
        weights_identity=weights_identity(weights, get_backbone(config.backbone)),
        seed=config.seed,
        keras=keras.__version__,
        layer_norms=layer_weight_norms(model),
    )


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


def route_for(
    config: TrainConfig,
    model: keras.Model,
    freeze_at: int,
    data: PreparedData,
    feature_budget_bytes: int = DEFAULT_FEATURE_BUDGET_BYTES,
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[str, str]:
    """The route a phase at `freeze_at` takes on this data (`tlcore.route.choose_route`), and why.

    The features' size is that of the model's layer at the freeze point, for every image of both splits.
    Several replicas train end to end (SEVERAL_REPLICAS).
    """
    boundary = backbone_layers(model, get_backbone(config.backbone))[freeze_at - 1] if freeze_at else None
    floats = int(np.prod(boundary.output.shape[1:])) if boundary is not None else 0
    route, why = choose_route(config, freeze_at, floats, len(data.train) + len(data.validation), feature_budget_bytes)
    if route == CACHED and replicas(strategy) > 1:
        return END_TO_END, SEVERAL_REPLICAS.format(replicas(strategy))
    return route, why


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


# Layers without weights that compute the same in training as in inference: on cached features
# their output is the same every epoch.
_FIXED_LAYERS = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Flatten,
)


def split_fixed(suffix: keras.Model) -> tuple[keras.Model | None, keras.Model]:
    """Split a chain `suffix` into (its leading layers that never change, the rest); (None, suffix) if none.

    Above the whole VGG16 base the head starts with its pooling: on cached
    features it is computed once, with the features, and every epoch trains
    the rest on pooled features (a 16th of block 5's at 128 px). The rest
    shares the suffix's layer objects, so training it trains the model.
    """
    layers = [layer for layer in suffix.layers if not isinstance(layer, keras.layers.InputLayer)]
    count = next((i for i, layer in enumerate(layers) if not isinstance(layer, _FIXED_LAYERS)), len(layers))
    if count == 0 or count == len(layers):
        return None, suffix
    fixed = keras.Model(suffix.inputs[0], _chain(layers[:count], suffix.inputs[0]), name=f"{suffix.name}_fixed")
    rest_input = keras.Input(shape=tuple(fixed.output.shape[1:]), name="fixed_features")
    rest = keras.Model(rest_input, _chain(layers[count:], rest_input), name=suffix.name)
    return fixed, rest


def _chain(layers: Sequence[keras.layers.Layer], x: Any) -> Any:
    for layer in layers:
        x = layer(x)
    return x


def apply_fixed(fixed: keras.Model | None, features: np.ndarray, chunk: int = 256) -> np.ndarray:
    """`fixed`'s output on every row of `features` (in chunks, to bound the memory of a large set)."""
    if fixed is None:
        return features
    if not len(features):
        return np.zeros((0, *fixed.output.shape[1:]), dtype=np.float32)
    return np.concatenate([_float32(fixed(features[i : i + chunk])) for i in range(0, len(features), chunk)])


def _float32(tensor: Any) -> np.ndarray:
    """Features as a float32 array, whatever precision computed them.

    The feature store and the route's memory budget count 4 bytes a value; the layers above cast them to
    their own compute dtype.
    """
    return np.asarray(tensor, dtype=np.float32)  # as tlcore.tf.pipeline.predict_outputs keeps them


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
        outputs.append(_float32(prefix.predict_on_batch(x)))
        done += int(x.shape[0])
        if progress:
            progress(StepProgress("extract", done, total))
    if not outputs:
        return np.zeros((0, *prefix.output.shape[1:]), dtype=np.float32)
    return np.concatenate(outputs)


def _make_optimizer(name: str, learning_rate: float, fused: bool = False) -> keras.optimizers.Optimizer:
    """The config's optimizer; `fused`: its twin with one kernel per variable update (tlcore.tf.fused_optimizers)."""
    if name == "sgd":
        return (FusedSGD if fused else keras.optimizers.SGD)(learning_rate, momentum=SGD_MOMENTUM)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    return (FusedAdam if fused else keras.optimizers.Adam)(learning_rate)


def compile_for(model: keras.Model, config: TrainConfig, learning_rate: float, fused: bool = False) -> None:
    """Compile with the loss and accuracy that match the head's output (`fused`: see `_make_optimizer`).

    mixed_float16 scales the loss (keras' LossScaleOptimizer): float16 gradients would otherwise underflow
    to zero. Keras wraps the optimizer itself only when the process-global policy is mixed_float16, which
    the lab never sets (its models carry per-layer policies), so every route's compile does it here.
    """
    if config.head.output == "sigmoid":
        loss, accuracy = keras.losses.BinaryCrossentropy(), keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss, accuracy = (
            keras.losses.SparseCategoricalCrossentropy(),
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        )
    optimizer = _make_optimizer(config.optimizer, learning_rate, fused)
    if config.precision == MIXED_FLOAT16:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy])


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Weights inversely proportional to class counts, n / (classes * count): a balanced split gets 1.0 each.

    A class with no training images gets 1.0 (it never occurs, so its weight never counts).
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    total = int(counts.sum())
    return {c: (total / (num_classes * int(n)) if n else 1.0) for c, n in enumerate(counts)}


def _targets(labels: np.ndarray, config: TrainConfig) -> np.ndarray:
    """Labels as the head's loss wants them: class indices, or float (n, 1) for a sigmoid output."""
    if config.head.output == "sigmoid":
        return labels.astype(np.float32).reshape(-1, 1)
    return labels


def _sample_weights(labels: np.ndarray, class_weight: dict[int, float]) -> np.ndarray:
    """Each image's class weight, as fit's `class_weight` turns them into sample weights."""
    return np.asarray([class_weight[int(c)] for c in labels], dtype=np.float32)


def _scope(strategy: tf.distribute.Strategy | None) -> contextlib.AbstractContextManager[Any]:
    """The strategy's scope (a fresh one each time: a scope is entered once), or nothing without one."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _learning_rate(model: keras.Model) -> float:
    """The optimizer's current rate; float32's shortest decimal, so 1e-3 reads 0.001, not 0.0010000000474974513."""
    return float(str(np.float32(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))


@dataclass(frozen=True)
class _Phase:
    """What the callbacks need to know about the phase `fit` is running."""

    phase: int
    freeze_at: int
    route: str
    batches_per_epoch: int
    last_epoch: int  # 1-based over all phases
    last_phase: bool


class TrainingMonitor(keras.callbacks.Callback):
    """Progress events, the stop flag, a NaN loss and the history rows, for one phase's `fit`.

    Stop: the flag is read after every batch (after its BatchEnd is reported;
    on the cached route after every compiled call, which runs up to about a
    tenth of a second of batches and reports one BatchEnd); once set, no
    further batch runs, the partial epoch is validated, and the row records it
    with `partial: True`. A flag set during validation ends
    the run after that epoch. A loss that is not finite ends the run the same
    way (like keras.callbacks.TerminateOnNaN) with status "failed" and a reason.
    """

    def __init__(self, phase: _Phase, result: TrainResult, report: ProgressFn, stop: StopFlag | None) -> None:
        super().__init__()
        self.phase, self.result, self.report, self.stop = phase, result, report, stop

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._epoch, self.batches, self.started, self.learning_rate = 0, 0, time.perf_counter(), 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch, self.batches, self.started = epoch, 0, time.perf_counter()
        self.learning_rate = _learning_rate(self.model)  # the rate this epoch trains with

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.batches = batch + 1  # batch: the last one a call ran (a compiled cached call runs several)
        loss = float((logs or {}).get("loss", math.nan))
        accuracy = float((logs or {}).get("accuracy", math.nan))
        self.report(BatchEnd(self.phase.phase, self.epoch, self.batches, self.phase.batches_per_epoch, loss, accuracy))
        if not math.isfinite(loss):
            self.result.status = FAILED
            self.result.reason = (
                f"loss became {loss} at epoch {self.epoch}, batch {self.batches}: training diverged "
                f"(try a lower learning rate than {self.learning_rate:g})"
            )
            self.model.stop_training = True
        elif self.stop is not None and self.stop.is_set():
            self.result.status, self.result.reason = STOPPED, f"stopped by the user during epoch {self.epoch}"
            self.model.stop_training = True

    @property
    def epoch(self) -> int:
        """The epoch fit is in, 1-based over all phases (fit runs with initial_epoch = epochs before)."""
        return self._epoch + 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        row = {
            "phase": self.phase.phase,
            "epoch": epoch + 1,
            "freeze_at": self.phase.freeze_at,
            "learning_rate": self.learning_rate,
            "path": self.phase.route,
            "loss": float(logs.get("loss", math.nan)),
            "accuracy": float(logs.get("accuracy", math.nan)),
            "val_loss": float(logs.get("val_loss", math.nan)),
            "val_accuracy": float(logs.get("val_accuracy", math.nan)),
            "seconds": time.perf_counter() - self.started,
            "batches": self.batches,
            "partial": self.batches < self.phase.batches_per_epoch,
        }
        self.result.history.append(row)
        self.report(EpochEnd(row))
        more_to_come = epoch + 1 < self.phase.last_epoch or not self.phase.last_phase
        if self.result.status == COMPLETED and more_to_come and self.stop is not None and self.stop.is_set():
            self.result.status, self.result.reason = STOPPED, f"stopped by the user after epoch {epoch + 1}"
            self.model.stop_training = True


class TensorBoardScalars(keras.callbacks.Callback):
    """Per-epoch loss, accuracy and learning rate as TensorBoard scalars, without the tensorboard package.

    keras.callbacks.TensorBoard needs `tf.summary.scalar`, which TensorFlow
    only provides when tensorboard is installed; `tf.summary.write` with the
    scalars plugin's metadata is what that function writes, and needs nothing
    more. The layout is Keras' own (`train/` and `validation/`, tags
    `epoch_loss`, `epoch_accuracy`, `epoch_learning_rate`), so TensorBoard
    draws training and validation on one chart. Steps are 1-based epochs over
    all phases. A write that fails is kept in `error` and never stops training.
    """

    def __init__(self, log_dir: str | Path) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self.error = ""
        self._writers: dict[str, Any] = {}
        self._metadata = tf.compat.v1.SummaryMetadata(
            plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars")
        )

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._writers, self.learning_rate = {}, math.nan

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.learning_rate = _learning_rate(self.model)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_") and k != "learning_rate"}
        train["learning_rate"] = self.learning_rate
        self._write("train", train, epoch + 1)
        self._write("validation", {k[4:]: v for k, v in logs.items() if k.startswith("val_")}, epoch + 1)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        writers, self._writers = self._writers.values(), {}
        for writer in writers:
            try:
                writer.close()  # flushes what is left
            except (tf.errors.OpError, OSError) as err:
                self.error = self.error or f"The TensorBoard logs could not be written to {self.log_dir}: {err}"

    def _write(self, split: str, values: dict[str, Any], step: int) -> None:
        if self.error or not values:
            return
        try:
            if split not in self._writers:
                self._writers[split] = tf.summary.create_file_writer(str(self.log_dir / split))
            with self._writers[split].as_default():
                for name, value in values.items():
                    tf.summary.write(
                        f"epoch_{name}", tf.constant(float(value), tf.float32), step=step, metadata=self._metadata
                    )
        except (tf.errors.OpError, OSError) as err:
            self.error = f"The TensorBoard logs could not be written to {self.log_dir}: {err}"


def _option_callbacks(
    config: TrainConfig, learning_rate: float, patience: int | None
) -> tuple[list[keras.callbacks.Callback], Any]:
    """Early stopping (at the plan's patience) and reduce-on-plateau: (callbacks, the early stopper or None)."""
    callbacks: list[keras.callbacks.Callback] = []
    early = None
    if patience:
        early = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, min_delta=MIN_IMPROVEMENT, restore_best_weights=True
        )
        callbacks.append(early)
    if config.reduce_lr_on_plateau:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                factor=PLATEAU_FACTOR,
                patience=PLATEAU_PATIENCE,
                min_delta=MIN_IMPROVEMENT,
                min_lr=learning_rate * PLATEAU_MIN_LR_FRACTION,
            )
        )
    return callbacks, early


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
) -> TrainResult:
    """Train `config` on prepared data; returns the model and its history.

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
    """
    started = time.perf_counter()
    report = progress or (lambda _event: None)
    spec = get_backbone(config.backbone)
    if model is None:
        with _scope(strategy):
            model = build_for(config, len(data.class_names))
    result = TrainResult(model=model, config=config, class_names=list(data.class_names), status=COMPLETED)
    plan = result.schedule = plan_for(config, model, data, feature_budget_bytes, strategy)
    report(Planned(plan, tuple(data.class_names), _per_class(data.validation.labels, len(data.class_names))))
    rates = [config.learning_rate] + ([config.fine_tune.learning_rate] if config.fine_tune else [])
    phases = [(p.freeze_at, p.epochs, rate) for p, rate in zip(plan.phases, rates)]
    augmenter = build_augmenter(config.augment, config.seed) if config.augment.enabled else None
    class_weight = balanced_class_weights(data.train.labels, len(data.class_names)) if config.balance_classes else None
    batch_size, batches_per_epoch = plan.batch_size, plan.steps_per_epoch
    notes: list[str] = []

    epoch_offset = 0
    for phase, (freeze_at, epochs, learning_rate) in enumerate(phases, start=1):
        set_freeze_point(model, freeze_at, spec)
        trainable, frozen = param_counts(model)
        route, why = route_for(config, model, freeze_at, data, feature_budget_bytes, strategy)
        result.paths.append(route)
        report(PhaseStart(phase, freeze_at, epochs, learning_rate, route, why, trainable, frozen))

        if route == CACHED:
            prefix, suffix = cut(model, freeze_at)
            extracted = _phase_features(prefix, config, data, phase, freeze_at, features, result, report, stop)
            if extracted is None:
                result.status, result.reason = STOPPED, "stopped while extracting features"
                break
            fixed, trained = split_fixed(suffix)
            x_train, x_val = (apply_fixed(fixed, x) for x in extracted)
        else:
            if stop is not None and stop.is_set():
                result.status, result.reason = STOPPED, f"stopped by the user before epoch {epoch_offset + 1}"
                break
            trained = model

        with _scope(strategy):
            compile_for(trained, config, learning_rate, fused=route == CACHED)  # the suffix is never saved
        options, early = _option_callbacks(config, learning_rate, plan.patience)
        monitor = TrainingMonitor(
            _Phase(phase, freeze_at, route, batches_per_epoch, epoch_offset + epochs, phase == len(phases)),
            result,
            report,
            stop,
        )
        phase_callbacks = [monitor, *options, *callbacks]
        t0 = time.perf_counter()
        # initial_epoch makes the epoch numbers (callbacks, TensorBoard steps) count over all phases.
        if route == CACHED:
            fit_arrays(
                trained,
                x_train,
                _targets(data.train.labels, config),
                epoch_orders(len(data.train), config.seed, epoch_offset + 1, epochs),
                batch_size,
                epochs=epoch_offset + epochs,
                initial_epoch=epoch_offset,
                sample_weight=None if class_weight is None else _sample_weights(data.train.labels, class_weight),
                validation=(x_val, _targets(data.validation.labels, config)) if len(x_val) else None,
                callbacks=phase_callbacks,
            )
        else:
            train_set = make_dataset(
                data.train, batch_size, shuffle=True, seed=config.seed, epoch=epoch_offset + 1, epochs=epochs
            )
            if augmenter is not None:
                train_set = train_set.map(lambda x, y: (augmenter(x, training=True), y))
            val_set = make_dataset(data.validation, batch_size)
            if config.head.output == "sigmoid":  # BinaryCrossentropy wants float targets shaped like the output
                train_set, val_set = (
                    d.map(lambda x, y: (x, tf.cast(tf.reshape(y, (-1, 1)), tf.float32))) for d in (train_set, val_set)
                )
            trained.fit(
                train_set,
                epochs=epoch_offset + epochs,
                initial_epoch=epoch_offset,
                steps_per_epoch=batches_per_epoch,
                validation_data=val_set if len(data.validation) else None,
                class_weight=class_weight,
                shuffle=False,
                callbacks=phase_callbacks,
                verbose=0,
            )
        result.train_seconds += time.perf_counter() - t0
        epoch_offset = len(result.history)  # a phase early stopping ended leaves no gap before the next
        # Keras 3 restores the best epoch's weights at the end of fit, stopped early or not; a later phase
        # trains on from them.
        restored = early is not None and early.best_weights is not None
        result.kept_epoch = early.best_epoch + 1 if restored else None
        if result.status != COMPLETED:
            break
        if early is not None and early.stopped_epoch:
            notes.append(
                f"early stopping: no val_loss improvement for {plan.patience} epochs "
                f"(phase {phase} ended after epoch {early.stopped_epoch + 1}; "
                f"the weights of epoch {early.best_epoch + 1} were kept)"
            )

    if result.status == COMPLETED:
        result.reason = "; ".join(notes)
    result.seconds = time.perf_counter() - started
    return result


def _phase_features(
    prefix: keras.Model,
    config: TrainConfig,
    data: PreparedData,
    phase: int,
    freeze_at: int,
    features: FeatureStore | None,
    result: TrainResult,
    report: ProgressFn,
    stop: StopFlag | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """A cached phase's (training, validation) features: from the store, or extracted (and then kept there).

    None when Stop came during extraction. `result` gets the phase's line in `features` and the seconds spent.
    """
    key = feature_key(config, data, freeze_at) if features is not None else None
    problems = len(features.problems) if features is not None else 0
    stored = _stored_features(features, key, prefix, data)
    if stored is not None:
        result.features.append({"phase": phase, "freeze_at": freeze_at, "reused": True, "created": stored.created_text})
        report(FeaturesReused(phase, freeze_at, stored.created_text))
        return stored.train, stored.validation
    t0 = time.perf_counter()
    total = len(data.train) + len(data.validation)
    x_train = extract_features(prefix, data.train, 32, report, stop, 0, total)
    x_val = (
        None if x_train is None else extract_features(prefix, data.validation, 32, report, stop, len(x_train), total)
    )
    result.extract_seconds += time.perf_counter() - t0
    if x_train is None or x_val is None:
        return None
    created = time.time()  # the record and the store's entry say the same moment
    result.features.append({"phase": phase, "freeze_at": freeze_at, "reused": False, "created": format_time(created)})
    if features is not None and len(features.problems) > problems:  # a damaged entry: said in the record
        result.features[-1]["problem"] = features.problems[-1]
    if features is not None and key is not None:
        try:  # a store that cannot be written costs the next run time, never this run
            features.put(key, x_train, x_val, created)
        except OSError as err:
            result.features[-1]["store_error"] = f"{features.root}: {err.strerror or err}"
    return x_train, x_val


def feature_key(config: TrainConfig, data: PreparedData, freeze_at: int) -> FeatureKey:
    """What the frozen features of `config`'s model at `freeze_at` depend on (see tlcore.feature_store)."""
    return FeatureKey.of(config, data.fingerprint, freeze_at, data.train.image_size)


def _stored_features(
    store: FeatureStore | None, key: FeatureKey | None, prefix: keras.Model, data: PreparedData
) -> StoredFeatures | None:
    """The store's features for `key` when they fit this model and data; None means compute them."""
    if store is None or key is None:
        return None
    stored = store.get(key)
    shape = tuple(prefix.output.shape[1:])
    if stored is None or stored.train.shape != (len(data.train), *shape):
        return None
    return stored if stored.validation.shape == (len(data.validation), *shape) else None


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
    tags: dict[str, Any] | None = None,
    data: PreparedData | None = None,
    on_run_created: Callable[[Run], None] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    features: FeatureStore | None = None,
) -> tuple[TrainResult, Run]:
    """Train and keep the run in the run store: record first, history every epoch, model at the end.

    The run's folder also gets TensorBoard logs (TENSORBOARD_DIR, one scalar per
    metric per epoch); `callbacks` are your own Keras callbacks, as for `train`.

    The disk failing (full, unwritable) never stops the training or loses its
    result: the result comes back with `save_error` saying what was not saved,
    and its model stays in memory.

    `features`: where frozen features are read from and kept (default: the
    feature store of the run store's folder, or TLLAB_CACHE_DIR).
    """
    # The run's wall time counts building the model too: tlcore.speed measures what a run costs from it.
    started = time.perf_counter()
    # A precision this device cannot run, and weights problems (offline, bad file), surface here: before any run
    # folder or decoding.
    devices = device_report()
    check_precision(config.precision, devices)
    strategy = strategy_for(config, devices, info.num_images(TRAIN) + info.num_images(VALIDATION))
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
            record(lambda: run.update(paths=[*(run.record.paths or []), event.route]), "run record")
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
        )
        if tensorboard.error:
            write_errors.append(tensorboard.error)
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        record(lambda: run.finish(FAILED, reason=reason), "run record")
        raise
    model_error = record(lambda: run.save_model(result.model), "model")
    record(
        lambda: run.finish(
            result.status,
            result.reason or model_error or next(iter(write_errors), ""),
            final=result.final,
            kept_epoch=result.kept_epoch,
            paths=result.paths,
            seconds=time.perf_counter() - started,
            extract_seconds=result.extract_seconds,
            features=result.features,
            train_seconds=result.train_seconds,
            model_saved=not model_error,
        ),
        "run record",
    )
    # The lost model matters most; otherwise the first write that failed (the last record's included) says it.
    result.save_error = model_error or next(iter(write_errors), "")
    return result, run
