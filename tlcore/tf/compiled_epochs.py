"""Epochs over in-memory arrays (cached features) as a few compiled calls, with Keras' callbacks as `fit` drives them.

A cached epoch trains only the layers above the freeze point: a few
milliseconds of arithmetic for 256 images, which `fit` wraps in several
times that of per-batch Python and dispatch (one `train_function` call, its
callbacks and logs per batch, then `evaluate` with its own iterator). Here
one `tf.function` per phase (`_PhaseFunction`) runs several batches per call
through the model's own `train_step`, so loss, sample weights, metrics and the
optimizer are exactly fit's; `fit_arrays` calls the callbacks in fit's order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

# A compiled call aims at this much time, so Stop (read between calls) is seen within a fraction of a second.
TARGET_CALL_SECONDS = 0.1
# And never more batches than this, whatever the timing said (a timing taken while the machine was idle).
MAX_BATCHES_PER_CALL = 64

Logs = dict[str, float]


@dataclass
class CallSizer:
    """How many batches the next compiled call runs, from how long earlier calls took per batch.

    As many as take about `TARGET_CALL_SECONDS`, so that Stop, read between calls, ends a run
    within a fraction of a second whatever a batch costs.

    The first call also pays for TensorFlow optimizing the graph, so its time
    says nothing about the next: until a later call has been timed, calls run
    one batch.
    """

    target_seconds: float = TARGET_CALL_SECONDS
    max_batches: int = MAX_BATCHES_PER_CALL
    seconds_per_batch: float | None = None
    calls: int = 0

    def next(self, batches_left: int) -> int:
        if self.seconds_per_batch is None:
            return min(1, batches_left)
        fits = int(self.target_seconds / max(self.seconds_per_batch, 1e-9))
        return max(1, min(batches_left, self.max_batches, fits))

    def observe(self, batches: int, seconds: float) -> None:
        """A call ran `batches` training batches (and nothing else) in `seconds`."""
        self.calls += 1
        if self.calls > 1 and batches:
            self.seconds_per_batch = seconds / batches


class _PhaseFunction:
    """The phase's one compiled function: some training batches, then, when asked, the whole validation set.

    Each batch is gathered by index from the in-memory arrays in the epoch's order and goes through
    the model's own `train_step` inside a `tf.while_loop`; the call that ends an epoch then runs the
    whole validation set through `test_step` too. A loss that is not finite ends its call after that
    batch, so the callbacks see it at the batch it happened.

    A call takes the training indices of its batches (consecutive slices of
    batch_size) and returns how many batches ran (fewer when a loss stopped
    being finite), the training metrics after the last, and the validation
    metrics (computed only when asked and every batch ran; NaN otherwise).
    """

    def __init__(
        self,
        model: keras.Model,
        train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
        validation: tuple[np.ndarray, np.ndarray] | None,
        batch_size: int,
    ) -> None:
        self.model, self.batch_size = model, batch_size
        self.train = tuple(None if a is None else tf.constant(a) for a in train)
        self.validation = None if validation is None else tuple(tf.constant(a) for a in validation)
        # Traced now, once; calling the concrete function skips tf.function's dispatch on every call.
        self.function = tf.function(self._run, autograph=False).get_concrete_function(
            tf.TensorSpec([None], tf.int64), tf.TensorSpec([], tf.bool), tf.TensorSpec([], tf.bool)
        )

    def __call__(self, indices: np.ndarray, fresh: bool, validate: bool) -> tuple[int, Logs, Logs | None]:
        """Run; `fresh`: reset the metrics first (an epoch's first call). Validation logs are None when not run."""
        ran, logs, val_logs = self.function(tf.constant(indices, tf.int64), tf.constant(fresh), tf.constant(validate))
        validated = validate and int(ran) == math.ceil(len(indices) / self.batch_size)
        return int(ran), _floats(logs), _floats(val_logs) if validated else None

    def _run(
        self, indices: tf.Tensor, fresh: tf.Tensor, validate: tf.Tensor
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        tf.cond(fresh, self._reset_metrics, tf.no_op)
        batches = (tf.size(indices, tf.int64) + self.batch_size - 1) // self.batch_size
        ran = self._loop(self.model.train_step, self.train, indices, stop_when_not_finite=True)
        with tf.control_dependencies([ran]):
            logs = self.model.get_metrics_result()
        if self.validation is None:
            return ran, logs, {}
        nan_logs = {name: tf.constant(math.nan, value.dtype) for name, value in logs.items()}
        val_logs = tf.cond(tf.logical_and(validate, tf.equal(ran, batches)), self._validate, lambda: nan_logs)
        return ran, logs, val_logs

    def _validate(self) -> dict[str, tf.Tensor]:
        assert self.validation is not None
        self._reset_metrics()
        everything = tf.range(tf.shape(self.validation[0], out_type=tf.int64)[0])
        ran = self._loop(self.model.test_step, (*self.validation, None), everything, stop_when_not_finite=False)
        with tf.control_dependencies([ran]):
            return self.model.get_metrics_result()

    def _loop(
        self,
        step: Callable[[Any], dict[str, Any]],
        arrays: tuple[Any, ...],
        indices: tf.Tensor,
        stop_when_not_finite: bool,
    ) -> tf.Tensor:
        """`step` over consecutive batches of `indices`; how many ran."""
        size = tf.size(indices, tf.int64)
        batches = (size + self.batch_size - 1) // self.batch_size

        def more(i: tf.Tensor, loss: tf.Tensor) -> tf.Tensor:
            if not stop_when_not_finite:
                return i < batches
            return tf.logical_and(i < batches, tf.math.is_finite(loss))

        def one_batch(i: tf.Tensor, _loss: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            # Automatic control dependencies make this iteration's outputs wait for its
            # variable updates, so the next batch sees them (as fit's next step would).
            start = i * self.batch_size
            idx = indices[start : tf.minimum(start + self.batch_size, size)]
            data = tuple(tf.gather(a, idx) for a in arrays if a is not None)  # (x, y) or (x, y, sample weight)
            return i + 1, tf.cast(step(data)["loss"], tf.float32)

        ran, _ = tf.while_loop(
            more, one_batch, (tf.constant(0, tf.int64), tf.constant(0.0, tf.float32)), parallel_iterations=1
        )
        return ran

    def _reset_metrics(self) -> tf.Operation:
        for metric in self.model.metrics:
            metric.reset_state()
        return tf.no_op()


def _floats(logs: dict[str, tf.Tensor]) -> Logs:
    return {name: float(value) for name, value in logs.items()}


def fit_arrays(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    orders: np.ndarray,
    batch_size: int,
    *,
    epochs: int,
    initial_epoch: int = 0,
    sample_weight: np.ndarray | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    sizer: CallSizer | None = None,
    validate_last_only: bool = False,
) -> keras.callbacks.History:
    """Train a compiled `model` on in-memory arrays like `model.fit`; epoch e's order is `orders[e - initial_epoch]`.

    The callbacks see what fit (keras/src/backend/tensorflow/trainer.py) gives
    them: `on_train_begin`; per epoch `on_epoch_begin`, then per call
    `on_train_batch_begin(its first batch)` and `on_train_batch_end(its last
    batch, the epoch's running logs)` (as fit does with `steps_per_execution`),
    `model.stop_training` checked after every call, the partial epoch still
    validated (`on_test_begin`, `on_test_batch_begin/end` once for the whole set,
    `on_test_end`), and `on_epoch_end(epoch, logs)` with the epoch's
    sample-weighted means plus the `val_` ones; `on_train_end` last. Metrics are
    reset at each epoch's start and before validation, as fit and evaluate do.

    Args:
        y: targets as the model's loss wants them (int labels, or float (n, 1) for a sigmoid output).
        orders: one row per epoch, the indices of x it visits in order (a permutation of range(len(x)), or
            its whole batches only); batches are consecutive slices of it.
        sample_weight: per-image weights of the training loss and metrics (e.g. class weights); None = 1.
        validation: (x, y) validated after every epoch, the partial one after a stop included.
        sizer: batches per call (default: about TARGET_CALL_SECONDS per call).
        validate_last_only: validate after the last epoch (and a stopped one) only, as fit's
            validation_freq=epochs does; the other epochs' logs have no val_ keys.

    Returns:
        The History callback, as fit returns it.
    """
    sizer = sizer or CallSizer()
    batches_per_epoch = math.ceil(orders.shape[1] / batch_size)
    if validation is not None and not len(validation[0]):
        validation = None
    _build(model, x[:batch_size], y[:batch_size], None if sample_weight is None else sample_weight[:batch_size])
    calls = _PhaseFunction(model, (x, y, sample_weight), validation, batch_size)
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_history=True, model=model, verbose=0, epochs=epochs, steps=batches_per_epoch
    )
    model.stop_training = False
    callback_list.on_train_begin()
    epoch_logs: Logs | None = None
    logs: Logs
    for epoch in range(initial_epoch, epochs):
        order = orders[epoch - initial_epoch]
        callback_list.on_epoch_begin(epoch)
        done, logs = 0, {}
        val_logs: Logs | None = None
        validates = validation is not None and (not validate_last_only or epoch == epochs - 1)
        while done < batches_per_epoch:
            count = sizer.next(batches_per_epoch - done)
            ends_epoch = done + count == batches_per_epoch and validates
            callback_list.on_train_batch_begin(done)
            started = time.perf_counter()
            ran, logs, val_logs = calls(order[done * batch_size : (done + count) * batch_size], done == 0, ends_epoch)
            if not ends_epoch:  # a call that also validated says little about a batch's time
                sizer.observe(ran, time.perf_counter() - started)
            done += ran
            callback_list.on_train_batch_end(done - 1, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if validation is not None and (validates or model.stop_training):
            if val_logs is None:  # stopped before the epoch's last call: validate what was learned
                _, _, val_logs = calls(order[:0], False, True)
            _report_validation(callback_list, math.ceil(len(validation[0]) / batch_size), val_logs or {})
            epoch_logs.update({f"val_{name}": value for name, value in (val_logs or {}).items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    if epochs > initial_epoch:
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callback_list.on_train_end(logs=epoch_logs)
    return model.history


def _report_validation(callback_list: keras.callbacks.CallbackList, batches: int, logs: Logs) -> None:
    """The test callbacks evaluate would call, the whole validation set being one execution."""
    callback_list.on_test_begin()
    callback_list.on_test_batch_begin(0)
    callback_list.on_test_batch_end(batches - 1, logs)
    callback_list.on_test_end(logs)


def _build(model: keras.Model, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None) -> None:
    """Create the optimizer's and the metrics' variables now: none can be created inside a while loop.

    fit creates them while tracing its train function; this is the symbolic
    build Keras itself runs before fit under a distribution strategy.
    """
    model._symbolic_build(data_batch=(x, y, sample_weight))
