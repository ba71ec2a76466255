"""The Keras callbacks training adds to every phase's fit: progress and stop, TensorBoard scalars, fit's options.

What Keras 3.15's TensorFlow trainer does that these rely on (keras/src/backend/tensorflow/trainer.py; the
cached route's `fit_arrays` does alike): it checks `model.stop_training` after every batch (fit_arrays: every
compiled call), still validates a partial epoch and calls `on_epoch_end` with its metrics, and resets the
metrics at each epoch start, so epoch logs are sample-weighted means over the epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tlcore.config import MIN_IMPROVEMENT, PLATEAU_FACTOR, PLATEAU_MIN_LR_FRACTION, PLATEAU_PATIENCE, TrainConfig
from tlcore.history import EpochRow
from tlcore.progress import BatchEnd, EpochEnd, ProgressFn, StopFlag
from tlcore.records import COMPLETED, FAILED, STOPPED

Logs = Mapping[str, float] | None  # what Keras passes a callback's hooks


def learning_rate_of(model: keras.Model) -> float:
    """The optimizer's current rate; float32's shortest decimal, so 1e-3 reads 0.001, not 0.0010000000474974513."""
    return float(str(np.float32(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))


@dataclass(frozen=True)
class PhaseInfo:
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
    The phase's outcome: `status`, `reason` and the history `rows`.
    """

    def __init__(self, phase: PhaseInfo, report: ProgressFn, stop: StopFlag | None) -> None:
        super().__init__()
        self.phase, self.report, self.stop = phase, report, stop
        self.status, self.reason = COMPLETED, ""
        self.rows: list[EpochRow] = []

    def on_train_begin(self, logs: Logs = None) -> None:
        self._epoch, self.batches, self.started, self.learning_rate = 0, 0, time.perf_counter(), 0.0

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._epoch, self.batches, self.started = epoch, 0, time.perf_counter()
        self.learning_rate = learning_rate_of(self.model)  # the rate this epoch trains with

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self.batches = batch + 1  # batch: the last one a call ran (a compiled cached call runs several)
        loss = float((logs or {}).get("loss", math.nan))
        accuracy = float((logs or {}).get("accuracy", math.nan))
        self.report(BatchEnd(self.phase.phase, self.epoch, self.batches, self.phase.batches_per_epoch, loss, accuracy))
        if not math.isfinite(loss):
            self.status = FAILED
            self.reason = (
                f"loss became {loss} at epoch {self.epoch}, batch {self.batches}: training diverged "
                f"(try a lower learning rate than {self.learning_rate:g})"
            )
            self.model.stop_training = True
        elif self.stop is not None and self.stop.is_set():
            self.status, self.reason = STOPPED, f"stopped by the user during epoch {self.epoch}"
            self.model.stop_training = True

    @property
    def epoch(self) -> int:
        """The epoch fit is in, 1-based over all phases (fit runs with initial_epoch = epochs before)."""
        return self._epoch + 1

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        row = EpochRow(
            phase=self.phase.phase,
            epoch=epoch + 1,
            freeze_at=self.phase.freeze_at,
            learning_rate=self.learning_rate,
            route=self.phase.route,
            loss=float(logs.get("loss", math.nan)),
            accuracy=float(logs.get("accuracy", math.nan)),
            val_loss=float(logs.get("val_loss", math.nan)),
            val_accuracy=float(logs.get("val_accuracy", math.nan)),
            seconds=time.perf_counter() - self.started,
            batches=self.batches,
            partial=self.batches < self.phase.batches_per_epoch,
        )
        self.rows.append(row)
        self.report(EpochEnd(row))
        more_to_come = epoch + 1 < self.phase.last_epoch or not self.phase.last_phase
        if self.status == COMPLETED and more_to_come and self.stop is not None and self.stop.is_set():
            self.status, self.reason = STOPPED, f"stopped by the user after epoch {epoch + 1}"
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
        self._writers: dict[str, tf.summary.SummaryWriter] = {}
        self._metadata = tf.compat.v1.SummaryMetadata(
            plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars")
        )

    def on_train_begin(self, logs: Logs = None) -> None:
        self._writers, self.learning_rate = {}, math.nan

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self.learning_rate = learning_rate_of(self.model)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_") and k != "learning_rate"}
        train["learning_rate"] = self.learning_rate
        self._write("train", train, epoch + 1)
        self._write("validation", {k[4:]: v for k, v in logs.items() if k.startswith("val_")}, epoch + 1)

    def on_train_end(self, logs: Logs = None) -> None:
        writers, self._writers = self._writers.values(), {}
        for writer in writers:
            try:
                writer.close()  # flushes what is left
            except (tf.errors.OpError, OSError) as err:
                self.error = self.error or f"The TensorBoard logs could not be written to {self.log_dir}: {err}"

    def _write(self, split: str, values: Mapping[str, float], step: int) -> None:
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


def option_callbacks(
    config: TrainConfig, learning_rate: float, patience: int | None
) -> tuple[list[keras.callbacks.Callback], keras.callbacks.EarlyStopping | None]:
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
