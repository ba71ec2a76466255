"""Compiled epochs on cached features: the same numbers and callbacks as Keras' fit, Stop within one call,
fused optimizers, the head's pooling computed once (tiny models and images, weights=None)."""

from __future__ import annotations

import math
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import TINY_CONFIG, make_dataset_folder, make_image
from tlcore.backbone_facts import VGG16
from tlcore.backbones import get_backbone
from tlcore.config import HeadConfig
from tlcore.data import scan
from tlcore.progress import BatchEnd
from tlcore.route import CACHED, END_TO_END
from tlcore.tf.compiled_epochs import CallSizer, fit_arrays
from tlcore.tf.fused_optimizers import FusedAdam, FusedSGD
from tlcore.tf.model import build_model
from tlcore.tf.pipeline import epoch_orders
from tlcore.tf.training import apply_fixed, compile_for, cut, prepare_data, split_fixed, train

TINY = TINY_CONFIG.replace(seed=7)
BATCH = 4
EPOCHS = 3


class FixedSizer(CallSizer):
    """Calls of exactly `size` batches, whatever the timing."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def next(self, batches_left: int) -> int:
        return min(self.size, batches_left)

    def observe(self, batches: int, seconds: float) -> None:
        pass


class Recorder(keras.callbacks.Callback):
    """Every hook fit calls, with its batch or epoch and its logs; the optimizer's step count at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int | None, dict]] = []

    def _add(self, hook: str, index: int | None, logs: dict | None) -> None:
        self.calls.append((hook, index, dict(logs or {})))

    def on_train_begin(self, logs=None):
        self._add("train_begin", None, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._add("epoch_begin", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._add("train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._add("train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._add("test_begin", None, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._add("test_batch_end", batch, logs)

    def on_test_end(self, logs=None):
        self._add("test_end", None, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._add("epoch_end", epoch, logs)

    def on_train_end(self, logs=None):
        self._add("train_end", None, logs)
        self.iterations = int(self.model.optimizer.iterations.numpy())

    def hooks(self, *names: str) -> list[tuple[str, int | None]]:
        return [(hook, index) for hook, index, _ in self.calls if hook in names]

    def epoch_logs(self) -> list[dict]:
        return [logs for hook, _, logs in self.calls if hook == "epoch_end"]


def _arrays(output: str, n: int = 22, n_val: int = 10) -> tuple[np.ndarray, ...]:
    """Features and targets as the cached route passes them (22 = batches of 4, 4, 4, 4, 4 and 2)."""
    rng = np.random.default_rng(0)
    classes = 2 if output == "sigmoid" else 3
    labels, val_labels = rng.integers(0, classes, n).astype(np.int32), rng.integers(0, classes, n_val).astype(np.int32)
    x, x_val = rng.normal(size=(n, 2, 2, 4)).astype("float32"), rng.normal(size=(n_val, 2, 2, 4)).astype("float32")
    if output == "sigmoid":
        return x, labels.astype("float32")[:, None], x_val, val_labels.astype("float32")[:, None], labels
    return x, labels, x_val, val_labels, labels


def _head(output: str, dropout: float, optimizer: str = "adam", fused: bool = False) -> keras.Model:
    """A small head on (2, 2, 4) features, compiled as the product compiles a phase."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((2, 2, 4))
    x = keras.layers.Dense(8, activation="relu")(keras.layers.GlobalAveragePooling2D()(inputs))
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(1 if output == "sigmoid" else 3, activation=output)(x)
    model = keras.Model(inputs, outputs)
    config = TINY.replace(head=HeadConfig(dense=(8,), dropout=dropout, output=output), optimizer=optimizer)
    compile_for(model, config, 0.05, fused=fused)
    return model


def _fit(model, x, y, orders, validation, sample_weight, callbacks) -> None:
    """Keras' own fit over the same batches: each epoch in its order, as the cached route's datasets were built."""
    index = tf.data.Dataset.from_tensor_slices(orders).flat_map(
        lambda row: tf.data.Dataset.from_tensor_slices(row).batch(BATCH)
    )
    arrays = (x, y) if sample_weight is None else (x, y, sample_weight)
    train_set = index.map(lambda idx: tuple(tf.gather(a, idx) for a in arrays))
    model.fit(
        train_set,
        epochs=len(orders),
        steps_per_epoch=math.ceil(len(x) / BATCH),
        validation_data=tf.data.Dataset.from_tensor_slices(validation).batch(BATCH),
        shuffle=False,
        callbacks=callbacks,
        verbose=0,
    )


@pytest.mark.parametrize(
    ("output", "dropout", "weighted", "size"),
    [("softmax", 0.0, False, 2), ("softmax", 0.5, True, 4), ("sigmoid", 0.0, True, 1), ("sigmoid", 0.5, False, 6)],
)
def test_compiled_epochs_give_fits_numbers_and_weights(output, dropout, weighted, size):
    x, y, x_val, y_val, labels = _arrays(output)
    sample_weight = np.where(labels == 0, 0.5, 2.0).astype("float32") if weighted else None
    orders = epoch_orders(len(x), seed=1, first_epoch=1, epochs=EPOCHS)
    by_fit, by_calls = Recorder(), Recorder()
    fitted, compiled = _head(output, dropout), _head(output, dropout)
    _fit(fitted, x, y, orders, (x_val, y_val), sample_weight, [by_fit])
    fit_arrays(
        compiled,
        x,
        y,
        orders,
        BATCH,
        epochs=EPOCHS,
        sample_weight=sample_weight,
        validation=(x_val, y_val),
        callbacks=[by_calls],
        sizer=FixedSizer(size),
    )
    for expected, got in zip(by_fit.epoch_logs(), by_calls.epoch_logs(), strict=True):
        assert set(got) == set(expected) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        for key in expected:
            assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
    for expected, got in zip(fitted.get_weights(), compiled.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # The same hooks at the epoch level; batch hooks once per call, ending at the epoch's last batch.
    epoch_level = ("train_begin", "epoch_begin", "test_begin", "test_end", "epoch_end", "train_end")
    assert by_calls.hooks(*epoch_level) == by_fit.hooks(*epoch_level)
    ends = [batch for hook, batch in by_calls.hooks("epoch_begin", "train_batch_end") if hook == "train_batch_end"]
    calls_per_epoch = math.ceil(6 / size)
    assert ends == [min(b * size, 6) - 1 for b in range(1, calls_per_epoch + 1)] * EPOCHS
    assert by_calls.hooks("test_batch_end") == [("test_batch_end", 2)] * EPOCHS  # 10 images: batches 0..2
    assert by_calls.iterations == by_fit.iterations == 6 * EPOCHS


def test_early_stopping_and_plateau_act_as_under_fit():
    x, y, x_val, y_val, _ = _arrays("softmax")
    orders = epoch_orders(len(x), seed=1, first_epoch=1, epochs=8)
    results = {}
    for way in ("fit", "calls"):
        model = _head("softmax", 0.0)
        model.optimizer.learning_rate = 1.0  # so large that val_loss soon stops improving
        early = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
        plateau = keras.callbacks.ReduceLROnPlateau(patience=1, factor=0.5)
        recorder = Recorder()
        if way == "fit":
            _fit(model, x, y, orders, (x_val, y_val), None, [early, plateau, recorder])
        else:
            fit_arrays(
                model, x, y, orders, BATCH, epochs=8, validation=(x_val, y_val), callbacks=[early, plateau, recorder]
            )
        results[way] = (recorder.epoch_logs(), early.stopped_epoch, early.best_epoch, model.get_weights())
    (fit_logs, fit_stopped, fit_best, fit_weights), (logs, stopped, best, weights) = results["fit"], results["calls"]
    assert 0 < stopped == fit_stopped < 7 and best == fit_best  # it stopped early, at the same epoch
    assert [row["learning_rate"] for row in logs] == pytest.approx([row["learning_rate"] for row in fit_logs])
    assert min(row["learning_rate"] for row in logs) < 1.0  # the plateau callback lowered it
    assert [row["val_loss"] for row in logs] == pytest.approx([row["val_loss"] for row in fit_logs], rel=1e-5)
    for expected, got in zip(fit_weights, weights, strict=True):  # the best epoch's weights, restored
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


class StopAt(keras.callbacks.Callback):
    """Asks training to stop once batch `index` (0-based) has run."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def on_train_batch_end(self, batch, logs=None):
        if batch >= self.index:
            self.model.stop_training = True


def test_a_stop_ends_the_epoch_after_that_call_which_is_still_validated():
    x, y, x_val, y_val, _ = _arrays("softmax")
    recorder = Recorder()
    model = _head("softmax", 0.0)
    orders = epoch_orders(len(x), seed=1, first_epoch=1, epochs=EPOCHS)
    fit_arrays(
        model,
        x,
        y,
        orders,
        BATCH,
        epochs=EPOCHS,
        validation=(x_val, y_val),
        callbacks=[StopAt(0), recorder],
        sizer=FixedSizer(4),
    )
    # Stop seen after the first call (batches 0..3 ran in it): no further call, the partial epoch validated.
    assert recorder.hooks("train_batch_end") == [("train_batch_end", 3)]
    assert recorder.iterations == 4
    assert [hook for hook, _ in recorder.hooks("test_end", "epoch_end", "train_end")] == [
        "test_end",
        "epoch_end",
        "train_end",
    ]
    assert math.isfinite(recorder.epoch_logs()[0]["val_loss"])


def test_a_loss_that_is_not_finite_ends_its_call_at_that_batch():
    x, y, x_val, y_val, _ = _arrays("softmax")
    orders = epoch_orders(len(x), seed=1, first_epoch=1, epochs=EPOCHS)
    x = x.copy()
    x[orders[0][9]] = np.inf  # the second image of batch 2 (0-based) in epoch 1
    recorder = Recorder()
    fit_arrays(
        _head("softmax", 0.0),
        x,
        y,
        orders,
        BATCH,
        epochs=EPOCHS,
        validation=(x_val, y_val),
        callbacks=[keras.callbacks.TerminateOnNaN(), recorder],
        sizer=FixedSizer(6),
    )
    ((_, batch, logs),) = [call for call in recorder.calls if call[0] == "train_batch_end"]
    assert batch == 2 and math.isnan(logs["loss"])
    assert recorder.iterations == 3  # batches 3..5 of that call never ran


def test_the_call_sizer_runs_one_batch_until_timed_then_a_tenth_of_a_second():
    sizer = CallSizer()
    assert sizer.next(10) == 1
    sizer.observe(1, 5.0)  # the first call prepares the graph: its time does not count
    assert sizer.next(10) == 1
    sizer.observe(1, 0.01)
    assert sizer.next(100) == 10 and sizer.next(4) == 4
    sizer.observe(10, 0.001)
    assert sizer.next(1000) == sizer.max_batches  # fast batches: capped
    sizer.observe(1, 3.0)
    assert sizer.next(1000) == 1  # a batch slower than the target: one per call


@pytest.mark.parametrize(
    ("keras_class", "fused_class", "options"),
    [
        (keras.optimizers.Adam, FusedAdam, {}),
        (keras.optimizers.SGD, FusedSGD, {"momentum": 0.9}),
        (keras.optimizers.SGD, FusedSGD, {"momentum": 0.9, "nesterov": True}),
    ],
)
def test_fused_optimizers_update_like_keras_even_when_the_rate_changes(keras_class, fused_class, options):
    rng = np.random.default_rng(5)
    start = [rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=3).astype("float32")]
    plain, fused = ([keras.Variable(w) for w in start] for _ in range(2))
    plain_optimizer, fused_optimizer = keras_class(0.05, **options), fused_class(0.05, **options)
    for step in range(6):
        if step == 3:  # as ReduceLROnPlateau does
            plain_optimizer.learning_rate = fused_optimizer.learning_rate = 0.01
        grads = [rng.normal(size=w.shape).astype("float32") for w in start]
        plain_optimizer.apply(grads, plain)
        fused_optimizer.apply(grads, fused)
    for a, b in zip(plain, fused):  # the same arithmetic, rounded in another order
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    assert int(fused_optimizer.iterations.numpy()) == 6


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return prepare_data(scan(make_dataset_folder(tmp_path_factory.mktemp("compiled") / "d", n_train=12, n_val=6)), 32)


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    """cats: 12 training images, dogs: 4."""
    root = make_dataset_folder(tmp_path_factory.mktemp("imbalanced") / "d", n_train=4, n_val=3)
    for i in range(8):
        make_image((210, 60, 50), seed=100 + i).save(root / "train" / "cats" / f"extra_{i}.png")
    return prepare_data(scan(root), 32)


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_cached_epochs_match_end_to_end_fit_with_class_weights(imbalanced, output):
    # 16 training images in batches of 6, 6 and 4; class weights 16/24 and 16/8.
    config = TINY.replace(
        epochs=2, batch_size=6, balance_classes=True, head=HeadConfig(dense=(8,), dropout=0.0, output=output)
    )
    runs = {}
    for cache in (True, False):
        keras.utils.set_random_seed(config.seed)
        model = build_model(2, 32, "none", config.head, config.freeze_at)
        result = train(config.replace(cache_features=cache), imbalanced, model=model)
        runs[cache] = (result.routes, result.history, model.get_weights())
    assert runs[True][0] == [CACHED] and runs[False][0] == [END_TO_END]
    for cached, end_to_end in zip(runs[True][1], runs[False][1], strict=True):
        assert cached.batches == end_to_end.batches == 3
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert getattr(cached, key) == pytest.approx(getattr(end_to_end, key), rel=1e-4, abs=1e-6), key
    for cached, end_to_end in zip(runs[True][2], runs[False][2], strict=True):
        np.testing.assert_allclose(cached, end_to_end, rtol=1e-4, atol=1e-5)


class Iterations(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        self.iterations = int(self.model.optimizer.iterations.numpy())


def test_stop_in_a_multi_batch_call_ends_the_run_after_that_call(data):
    # 24 images in batches of 2: 12 per epoch. Epoch 1's first calls run one batch; once timed, a call
    # runs as many as take a tenth of a second (here the whole epoch, on most machines).
    flag = threading.Event()
    events: list[object] = []

    def progress(event: object) -> None:
        events.append(event)
        if isinstance(event, BatchEnd) and event.epoch == 2:
            flag.set()

    steps = Iterations()
    result = train(TINY.replace(epochs=3, batch_size=2), data, progress=progress, stop=flag, callbacks=[steps])
    calls = [e for e in events if isinstance(e, BatchEnd)]
    assert [(c.phase, c.epoch, c.batch, c.batches) for c in calls[:2]] == [(1, 1, 1, 12), (1, 1, 2, 12)]
    assert all(0 <= c.accuracy <= 1 for c in calls)  # the running batch accuracy the Train page draws
    assert calls[-1].epoch == 2 and [c.epoch for c in calls].count(2) == 1  # no call after the one Stop saw
    assert result.status == "stopped" and [r.epoch for r in result.history] == [1, 2]
    row = result.history[-1]
    assert row.batches == calls[-1].batch and row.partial == (calls[-1].batch < 12)
    assert math.isfinite(row.val_loss)  # the (partial) epoch was validated
    assert steps.iterations == 12 + calls[-1].batch  # every batch that ran, and none more


@pytest.mark.parametrize(
    ("freeze_at", "fixed"),
    [(18, ["GlobalAveragePooling2D"]), (17, ["MaxPooling2D", "GlobalAveragePooling2D"]), (14, [])],
)
def test_the_heads_pooling_is_computed_once_with_the_features(freeze_at, fixed):
    keras.utils.set_random_seed(1)
    model = build_model(2, 32, "none", HeadConfig(pooling="avg", dense=(8,), dropout=0.0), freeze_at)
    _, suffix = cut(model, freeze_at, get_backbone(VGG16))
    pooling, rest = split_fixed(suffix)
    assert ([] if pooling is None else [type(layer).__name__ for layer in pooling.layers[1:]]) == fixed
    # The normalisation has weights (a scale and an offset per feature): it trains with the layers above.
    assert type(rest.layers[1]).__name__ == ("Conv2D" if freeze_at == 14 else "LayerNormalization")
    features = np.random.default_rng(0).normal(size=(5, *suffix.input.shape[1:])).astype("float32")
    np.testing.assert_allclose(
        np.asarray(rest(apply_fixed(pooling, features, chunk=2))), np.asarray(suffix(features)), rtol=1e-5, atol=1e-6
    )
    assert [id(w) for w in rest.trainable_weights] == [id(w) for w in suffix.trainable_weights]
