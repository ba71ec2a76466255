"""How one phase of training fits: `fit_arrays` on cached features, or Keras' `fit` on a seeded dataset.

Both routes visit the images of every epoch in the order fixed by (seed, epoch) (`pipeline.epoch_orders`),
with the run's augmenter (end to end) and class weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from tlcore.config import TrainConfig
from tlcore.schedule import Schedule
from tlcore.tf.augment import build_augmenter
from tlcore.tf.build import balanced_class_weights, loss_targets, sample_weights
from tlcore.tf.compiled_epochs import CallSizer, fit_arrays
from tlcore.tf.pipeline import PreparedData, epoch_orders, make_dataset, whole_batches


@dataclass
class PhaseFit:
    """What every phase's fit reads: the data, the plan, the augmenter (one per run: its random state goes on).

    `drop_remainder`: every epoch trains on whole batches only (`pipeline.whole_batches`).
    `batches_per_call`: on the cached route, at most this many batches per compiled call (None: as many as
    take about `compiled_epochs.TARGET_CALL_SECONDS`); end to end, fit runs one batch a call.
    `validate_last_only`: each phase validates after its last epoch only (runs of fixed length that report
    their final accuracy alone: a transfer curve's).
    """

    config: TrainConfig
    data: PreparedData
    plan: Schedule
    augmenter: keras.Sequential | None
    class_weight: dict[int, float] | None
    drop_remainder: bool = False
    batches_per_call: int | None = None
    validate_last_only: bool = False

    @classmethod
    def of(
        cls,
        config: TrainConfig,
        data: PreparedData,
        plan: Schedule,
        drop_remainder: bool,
        batches_per_call: int | None,
        validate_last_only: bool = False,
    ) -> PhaseFit:
        augmenter = build_augmenter(config.augment, config.seed) if config.augment.enabled else None
        labels, classes = data.train.labels, len(data.class_names)
        weights = balanced_class_weights(labels, classes) if config.balance_classes else None
        return cls(config, data, plan, augmenter, weights, drop_remainder, batches_per_call, validate_last_only)

    @property
    def batches_per_epoch(self) -> int:
        if self.drop_remainder:
            return max(1, len(self.data.train) // self.plan.batch_size)
        return self.plan.steps_per_epoch

    def orders(self, epoch_offset: int, epochs: int) -> np.ndarray:
        """Each epoch's order of the training images, one row per epoch (whole batches with drop_remainder)."""
        orders = epoch_orders(len(self.data.train), self.config.seed, epoch_offset + 1, epochs)
        return whole_batches(orders, self.plan.batch_size) if self.drop_remainder else orders

    def cached(
        self,
        trained: keras.Model,
        arrays: tuple[np.ndarray, np.ndarray],
        epoch_offset: int,
        epochs: int,
        callbacks: list[keras.callbacks.Callback],
    ) -> None:
        """One cached phase: `fit_arrays` on the (training, validation) features, in each epoch's seeded order."""
        config, labels, weights = self.config, self.data.train.labels, self.class_weight
        x_train, x_val = arrays
        fit_arrays(
            trained,
            x_train,
            loss_targets(labels, config),
            self.orders(epoch_offset, epochs),
            self.plan.batch_size,
            epochs=epoch_offset + epochs,
            initial_epoch=epoch_offset,
            sample_weight=None if weights is None else sample_weights(labels, weights),
            validation=(x_val, loss_targets(self.data.validation.labels, config)) if len(x_val) else None,
            callbacks=callbacks,
            sizer=CallSizer(max_batches=self.batches_per_call) if self.batches_per_call else None,
            validate_last_only=self.validate_last_only,
        )

    def end_to_end(
        self, trained: keras.Model, epoch_offset: int, epochs: int, callbacks: list[keras.callbacks.Callback]
    ) -> None:
        """One end-to-end phase: `fit` on one dataset holding every epoch, read with steps_per_epoch.

        fit then keeps one iterator across epochs and epoch k gets exactly epoch k's batches.
        """
        config, data, batch_size, augmenter = self.config, self.data, self.plan.batch_size, self.augmenter
        train_set = make_dataset(
            data.train,
            batch_size,
            shuffle=True,
            seed=config.seed,
            epoch=epoch_offset + 1,
            epochs=epochs,
            drop_remainder=self.drop_remainder,
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
            steps_per_epoch=self.batches_per_epoch,
            validation_data=val_set if len(data.validation) else None,
            # Keras validates after epoch e (counted from 1) when e % validation_freq == 0: the last one only.
            validation_freq=epoch_offset + epochs if self.validate_last_only else 1,
            class_weight=self.class_weight,
            shuffle=False,
            callbacks=callbacks,
            verbose=0,
        )
