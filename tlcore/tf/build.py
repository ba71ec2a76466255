"""The model a TrainConfig describes: built from its seed, recorded as it starts, compiled for a phase.

Precision: the model's layers carry the config's dtype policy (`build_model`), and mixed_float16 scales
the loss (`compile_for`). Also here: what the compiled loss reads (targets, class weights).
"""

from __future__ import annotations

import keras
import numpy as np

from tlcore.backbones import get_backbone, normalize_weights, weights_file, weights_identity
from tlcore.config import SGD_MOMENTUM, TrainConfig
from tlcore.devices import MIXED_FLOAT16
from tlcore.records import StartRecord
from tlcore.tf.backbones import SEEDED_BUILD
from tlcore.tf.fused_optimizers import FusedAdam, FusedSGD
from tlcore.tf.model import build_model, layer_weight_norms


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
    smoothing = config.label_smoothing
    if config.head.output == "sigmoid":
        loss, accuracy = (
            keras.losses.BinaryCrossentropy(label_smoothing=smoothing),
            keras.metrics.BinaryAccuracy(name="accuracy"),
        )
    else:
        loss, accuracy = (
            SmoothedSparseCrossentropy(smoothing) if smoothing else keras.losses.SparseCategoricalCrossentropy(),
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        )
    optimizer = _make_optimizer(config.optimizer, learning_rate, fused)
    if config.precision == MIXED_FLOAT16:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy])


@keras.saving.register_keras_serializable(package="tlcore")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of class-number labels against smoothed targets (Keras' sparse loss has no smoothing)."""

    def __init__(
        self, label_smoothing: float, name: str = "smoothed_sparse_crossentropy", **kwargs: str | None
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true: keras.KerasTensor, y_pred: keras.KerasTensor) -> keras.KerasTensor:
        classes = keras.ops.shape(y_pred)[-1]
        targets = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), classes)
        return keras.losses.categorical_crossentropy(targets, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict[str, float | str]:
        return {"name": self.name, "label_smoothing": self.label_smoothing}


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Weights inversely proportional to class counts, n / (classes * count): a balanced split gets 1.0 each.

    A class with no training images gets 1.0 (it never occurs, so its weight never counts).
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    total = int(counts.sum())
    return {c: (total / (num_classes * int(n)) if n else 1.0) for c, n in enumerate(counts)}


def loss_targets(labels: np.ndarray, config: TrainConfig) -> np.ndarray:
    """Labels as the head's loss wants them: class indices, or float (n, 1) for a sigmoid output."""
    if config.head.output == "sigmoid":
        return labels.astype(np.float32).reshape(-1, 1)
    return labels


def sample_weights(labels: np.ndarray, class_weight: dict[int, float]) -> np.ndarray:
    """Each image's class weight, as fit's `class_weight` turns them into sample weights."""
    return np.asarray([class_weight[int(c)] for c in labels], dtype=np.float32)
