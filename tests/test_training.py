"""Training: frozen weights, cached vs end-to-end, stop, NaN, augmentation (weights=None, 32 px)."""

from __future__ import annotations

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import TINY_CONFIG
from tlcore.config import AugmentConfig, FineTuneConfig, HeadConfig, TrainConfig
from tlcore.data import scan
from tlcore.progress import BatchEnd, EpochEnd, PhaseStart, StepProgress
from tlcore.route import CACHED, END_TO_END
from tlcore.tf.augment import build_augmenter
from tlcore.tf.model import backbone_layers, build_model
from tlcore.tf.training import prepare_data, train

TINY = TINY_CONFIG.replace(seed=7)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from tests.helpers import make_dataset_folder

    root = make_dataset_folder(tmp_path_factory.mktemp("train") / "d", n_train=12, n_val=6)
    return prepare_data(scan(root), 32)


def _weights(layers) -> list[np.ndarray]:
    return [w.numpy().copy() for layer in layers for w in layer.weights]


def _fresh_model(config: TrainConfig, data) -> keras.Model:
    keras.utils.set_random_seed(config.seed)
    return build_model(len(data.class_names), config.image_size, "none", config.head, config.freeze_at)


@pytest.mark.parametrize("cache_features", [True, False])
def test_frozen_weights_unchanged_and_the_rest_trains(data, cache_features):
    config = TINY.replace(freeze_at=14, epochs=2, cache_features=cache_features)
    model = _fresh_model(config, data)
    layers = backbone_layers(model)
    frozen_before, trainable_before = _weights(layers[:14]), _weights(layers[14:])
    head_before = _weights(model.layers[20:])
    result = train(config, data, model=model)
    assert result.routes == [CACHED if cache_features else END_TO_END]
    for before, after in zip(frozen_before, _weights(layers[:14])):
        np.testing.assert_array_equal(before, after)
    assert any(not np.allclose(b, a) for b, a in zip(trainable_before, _weights(layers[14:])))
    assert any(not np.allclose(b, a) for b, a in zip(head_before, _weights(model.layers[20:])))


@pytest.mark.parametrize("freeze_at", [18, 14])
def test_cached_and_end_to_end_give_the_same_weights(data, freeze_at):
    config = TINY.replace(freeze_at=freeze_at, epochs=1)
    trained = {}
    for cache in (True, False):
        model = _fresh_model(config, data)
        result = train(config.replace(cache_features=cache), data, model=model)
        trained[cache] = (result.routes[0], _weights(model.layers), result.history[0])
    assert trained[True][0] == CACHED and trained[False][0] == END_TO_END
    for cached, end_to_end in zip(trained[True][1], trained[False][1]):
        np.testing.assert_allclose(cached, end_to_end, rtol=1e-4, atol=2e-5)  # float32 sums in another order
    assert trained[True][2].loss == pytest.approx(trained[False][2].loss, rel=1e-4)
    assert trained[True][2].val_accuracy == pytest.approx(trained[False][2].val_accuracy)


def _count_images_through(layer: keras.layers.Layer) -> list[int]:
    seen: list[int] = []
    original = layer.call

    def counting_call(*args, **kwargs):
        seen.append(int(args[0].shape[0]))
        return original(*args, **kwargs)

    layer.call = counting_call
    return seen


@pytest.mark.filterwarnings("ignore:Even though the `tf.config.experimental_run_functions_eagerly`")
@pytest.mark.parametrize(("cache_features", "passes"), [(True, 1), (False, 2)])
def test_frozen_prefix_runs_once_per_image_when_cached(data, cache_features, passes):
    # Eager execution, so every forward pass through the first conv layer is counted. Two epochs: once in
    # all when cached, once per epoch otherwise.
    tf.config.run_functions_eagerly(True)
    try:
        config = TINY.replace(freeze_at=18, epochs=2, cache_features=cache_features)
        model = _fresh_model(config, data)
        seen = _count_images_through(model.get_layer("block1_conv1"))
        train(config, data, model=model)
    finally:
        tf.config.run_functions_eagerly(False)
    assert sum(seen) == passes * (len(data.train) + len(data.validation))


def test_progress_events_describe_the_run(data):
    events: list[object] = []
    config = TINY.replace(epochs=2)
    result = train(config, data, progress=events.append)
    phase = [e for e in events if isinstance(e, PhaseStart)]
    assert len(phase) == 1 and phase[0].route == CACHED and "computed once" in phase[0].route_reason
    extract = [e for e in events if isinstance(e, StepProgress)]
    assert extract[-1].done == extract[-1].total == len(data.train) + len(data.validation)
    batches = [e for e in events if isinstance(e, BatchEnd)]
    assert len(data.train) == 24  # 3 batches of 8
    # One BatchEnd per compiled call: the first runs one batch (it also prepares the graph), later ones
    # as many as take a tenth of a second; every epoch's last event says all 3 batches ran.
    assert (batches[0].epoch, batches[0].batch) == (1, 1)
    for epoch in (1, 2):
        done = [b.batch for b in batches if b.epoch == epoch]
        assert done == sorted(set(done)) and done[-1] == 3
    assert all(b.batches == 3 for b in batches)
    epochs = [e.row for e in events if isinstance(e, EpochEnd)]
    assert epochs == list(result.history)
    for row in epochs:
        assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds", "phase", "path"} <= set(row.as_dict())
        accuracy = row.val_accuracy
        assert isinstance(accuracy, (int, float))
        assert 0.0 <= accuracy <= 1.0 and not row.partial
    # Accuracies are exact fractions of the validation set (averaged over all batches).
    assert (result.history[-1].val_accuracy * len(data.validation)) == pytest.approx(
        round(result.history[-1].val_accuracy * len(data.validation)), abs=1e-4
    )


class StopAfter:
    """A stop flag set by the progress callback after n batches."""

    def __init__(self, n: int):
        self.n = n
        self.batches = 0
        self.flag = threading.Event()

    def __call__(self, event):
        if isinstance(event, BatchEnd):
            self.batches += 1
            if self.batches == self.n:
                self.flag.set()


@pytest.mark.parametrize("cache_features", [True, False])
def test_stop_runs_no_further_batch_and_keeps_partial_epoch(data, cache_features):
    stopper = StopAfter(1)
    config = TINY.replace(
        freeze_at=18, epochs=3, cache_features=cache_features, fine_tune=FineTuneConfig(freeze_at=14, epochs=2)
    )
    result = train(config, data, progress=stopper, stop=stopper.flag)
    assert result.status == "stopped" and "epoch 1" in result.reason
    assert stopper.batches == 1  # the flag was seen before batch 2 ran
    assert len(result.history) == 1
    row = result.history[0]
    assert row.partial and row.batches == 1 and row.phase == 1
    assert result.routes == [CACHED if cache_features else END_TO_END]  # phase 2 skipped
    assert result.model is not None


def test_stop_during_feature_extraction(data):
    flag = threading.Event()

    def stop_on_extract(event):
        if isinstance(event, StepProgress) and event.stage == "extract":
            flag.set()

    result = train(TINY.replace(epochs=2), data, progress=stop_on_extract, stop=flag)
    assert result.status == "stopped" and "extracting" in result.reason
    assert len(result.history) == 0


def test_nan_loss_stops_with_a_reason(data):
    config = TINY.replace(epochs=3, freeze_at=18)
    model = _fresh_model(config, data)
    # A head weight that is NaN makes the very first loss NaN, whatever the data.
    kernel = model.get_layer("predictions").kernel
    kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))
    events: list[object] = []
    result = train(config, data, model=model, progress=events.append)
    assert result.status == "failed"
    assert "loss became nan at epoch 1, batch 1" in result.reason
    assert "lower learning rate" in result.reason
    assert len([e for e in events if isinstance(e, BatchEnd)]) == 1  # nothing ran after it
    assert [r.epoch for r in result.history] == [1] and result.history[0].partial


def test_two_phases_are_recorded(data):
    config = TINY.replace(epochs=2, fine_tune=FineTuneConfig(freeze_at=10, epochs=1, learning_rate=1e-4))
    result = train(config, data)
    assert [(r.phase, r.epoch, r.freeze_at) for r in result.history] == [(1, 1, 18), (1, 2, 18), (2, 3, 10)]
    assert result.history[2].learning_rate == pytest.approx(1e-4)
    assert len(result.routes) == 2


def test_augmentation_trains_end_to_end(data):
    config = TINY.replace(augment=AugmentConfig(enabled=True), epochs=1)
    events: list[object] = []
    result = train(config, data, progress=events.append)
    assert result.routes == [END_TO_END]
    assert "augmentation" in next(e for e in events if isinstance(e, PhaseStart)).route_reason
    assert result.status == "completed"


def test_augmenter_changes_images_only_in_training():
    augmenter = build_augmenter(AugmentConfig(enabled=True, rotation=0.2, zoom=0.2), seed=1)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    out = np.asarray(augmenter(x, training=True))
    assert out.shape == x.shape and not np.allclose(out, x)
    np.testing.assert_array_equal(np.asarray(augmenter(x, training=False)), x)


def test_feature_budget_decides_the_path(data):
    events: list[object] = []
    result = train(TINY, data, progress=events.append, feature_budget_bytes=10)
    assert result.routes == [END_TO_END]
    assert "budget" in next(e for e in events if isinstance(e, PhaseStart)).route_reason


def test_config_round_trips_and_echoes_bad_values():
    config = TrainConfig(
        weights="none",
        head=HeadConfig(pooling="flatten", dense=(1024, 1024, 512)),
        augment=AugmentConfig(enabled=True),
        fine_tune=FineTuneConfig(6, 2, 1e-5),
    )
    assert TrainConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="freeze_at=20"):
        TrainConfig(freeze_at=20)
    with pytest.raises(ValueError, match="optimizer='adamw'"):
        TrainConfig(optimizer="adamw")
    with pytest.raises(ValueError, match="must unfreeze more layers"):
        TrainConfig(freeze_at=10, fine_tune=FineTuneConfig(freeze_at=14))
    with pytest.raises(ValueError, match="Unknown config keys"):
        TrainConfig.from_dict({"epochz": 3})
