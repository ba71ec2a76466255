"""Training on Keras' fit: user callbacks, TensorBoard logs, class weights, early stopping, reduce on plateau,
and the options' config fields and CLI flags (weights=None, 32 px)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import TINY_CONFIG, make_dataset_folder, make_image
from tlcore.config import FineTuneConfig, TrainConfig
from tlcore.data import scan
from tlcore.run_folder import load_record
from tlcore.runs import RunStore
from tlcore.tf.build import balanced_class_weights
from tlcore.tf.model import build_model
from tlcore.tf.training import TENSORBOARD_DIR, prepare_data, train, train_and_record

TINY = TINY_CONFIG.replace(seed=7)
# So small a step that val_loss moves by far less than training.MIN_IMPROVEMENT: it never "improves".
STILL = 1e-8


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_dataset_folder(tmp_path_factory.mktemp("fit") / "d", n_train=12, n_val=6)


@pytest.fixture(scope="module")
def data(folder):
    return prepare_data(scan(folder), 32)


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    """cats: 12 training images, dogs: 4."""
    root = make_dataset_folder(tmp_path_factory.mktemp("imbalanced") / "d", n_train=4, n_val=2)
    for i in range(8):
        make_image((210, 60, 50), seed=100 + i).save(root / "train" / "cats" / f"extra_{i}.png")
    return prepare_data(scan(root), 32)


class EpochsSeen(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.fits = 0
        self.epochs: list[tuple[int, list[str]]] = []

    def on_train_begin(self, logs=None):
        self.fits += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((epoch + 1, sorted(logs)))


def test_user_callbacks_see_every_epoch_of_every_phase(data):
    seen = EpochsSeen()
    config = TINY.replace(epochs=2, fine_tune=FineTuneConfig(freeze_at=14, epochs=1, learning_rate=1e-4))
    result = train(config, data, callbacks=[seen])
    assert result.status == "completed" and seen.fits == 2  # one fit per phase
    assert [epoch for epoch, _ in seen.epochs] == [1, 2, 3]  # numbered over both phases, like the history
    assert all({"loss", "accuracy", "val_loss", "val_accuracy"} <= set(keys) for _, keys in seen.epochs)


def _scalars(folder: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} of every event file in folder, read with TensorFlow's own reader."""
    out: dict[str, dict[int, float]] = {}
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}"
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                out.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return out


def test_every_run_writes_tensorboard_scalars_per_epoch(folder, tmp_path):
    seen = EpochsSeen()
    config = TINY.replace(epochs=2, fine_tune=FineTuneConfig(freeze_at=14, epochs=1, learning_rate=1e-4))
    result, run = train_and_record(config, scan(folder), RunStore(tmp_path / "runs"), callbacks=[seen])
    assert result.status == "completed" and not result.save_error
    assert [epoch for epoch, _ in seen.epochs] == [1, 2, 3]
    logs = run.run_dir / TENSORBOARD_DIR
    train_scalars, val_scalars = _scalars(logs / "train"), _scalars(logs / "validation")
    assert set(train_scalars) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}
    assert set(val_scalars) == {"epoch_loss", "epoch_accuracy"}
    for row in result.history:
        step = row.epoch
        assert train_scalars["epoch_loss"][step] == pytest.approx(row.loss)
        assert train_scalars["epoch_accuracy"][step] == pytest.approx(row.accuracy)
        assert train_scalars["epoch_learning_rate"][step] == pytest.approx(row.learning_rate)
        assert val_scalars["epoch_loss"][step] == pytest.approx(row.val_loss)
        assert val_scalars["epoch_accuracy"][step] == pytest.approx(row.val_accuracy)
    assert sorted(train_scalars["epoch_loss"]) == [1, 2, 3]


def test_balanced_class_weights_are_inverse_to_the_counts():
    weights = balanced_class_weights(np.array([0] * 12 + [1] * 4), 3)
    assert weights[0] == pytest.approx(16 / (3 * 12)) and weights[1] == pytest.approx(16 / (3 * 4))
    assert weights[2] == 1.0  # no training image: its weight never counts
    assert balanced_class_weights(np.array([0, 1, 0, 1]), 2) == {0: 1.0, 1: 1.0}


@pytest.mark.parametrize("cache_features", [True, False])
def test_balance_classes_weights_the_training_loss(imbalanced, cache_features):
    # A step too small to change the model, so the epoch's loss is the start model's losses, weighted.
    config = TINY.replace(learning_rate=1e-12, freeze_at=18, cache_features=cache_features)
    keras.utils.set_random_seed(config.seed)
    model = build_model(2, 32, "none", config.head, config.freeze_at)
    probabilities = np.asarray(model(imbalanced.train.images.astype("float32")))
    labels = imbalanced.train.labels
    losses = -np.log(probabilities[np.arange(len(labels)), labels])
    assert list(np.bincount(labels)) == [12, 4]
    plain = train(config, imbalanced).history[0]
    balanced = train(config.replace(balance_classes=True), imbalanced).history[0]
    weights = np.where(labels == 0, 16 / 24, 16 / 8)
    assert plain.loss == pytest.approx(losses.mean(), rel=1e-4)
    assert balanced.loss == pytest.approx((weights * losses).sum() / len(labels), rel=1e-4)
    assert abs(balanced.loss - plain.loss) > 1e-3  # the weights, not noise, make the difference
    assert balanced.val_loss == pytest.approx(plain.val_loss, rel=1e-4)  # validation is never weighted


def test_early_stopping_ends_each_phase_with_its_reason(data):
    config = TINY.replace(
        learning_rate=STILL,
        epochs=6,
        early_stopping_patience=2,
        fine_tune=FineTuneConfig(freeze_at=17, epochs=4, learning_rate=STILL),
    )
    result = train(config, data)
    assert result.status == "completed"
    # Epoch 1 sets the best val_loss; after 2 epochs without improvement the phase ends; phase 2 still runs,
    # numbered on from the epochs phase 1 ran (no gap in the curves).
    assert [(r.phase, r.epoch) for r in result.history] == [(1, 1), (1, 2), (1, 3), (2, 4), (2, 5), (2, 6)]
    assert not any(r.partial for r in result.history)
    assert result.reason.count("early stopping: no val_loss improvement for 2 epochs") == 2
    assert "phase 1 ended after epoch 3" in result.reason and "phase 2 ended after epoch 6" in result.reason
    assert result.kept_epoch == 4  # phase 2's best epoch: its weights are the model's


@pytest.mark.parametrize("freeze_at", [0, 17], ids=["end_to_end", "cached"])
def test_validating_the_last_epoch_only_leaves_the_final_accuracy_unchanged(data, freeze_at):
    """A transfer curve's fixed-length runs validate once, at the end: the same weights, the same final accuracy."""
    config = TINY.replace(freeze_at=freeze_at, epochs=3)
    every, last = train(config, data), train(config, data, validate_last_only=True)
    assert [r.route for r in last.history] == [r.route for r in every.history]
    assert [np.isnan(r.val_accuracy) for r in last.history] == [True, True, False]
    assert not any(np.isnan(r.val_accuracy) for r in every.history)
    assert last.history[-1].val_accuracy == pytest.approx(every.history[-1].val_accuracy, abs=1e-6)
    assert last.history[-1].loss == pytest.approx(every.history[-1].loss, rel=1e-5)


def test_reduce_on_plateau_lowers_the_recorded_rate(data):
    result = train(TINY.replace(learning_rate=STILL, epochs=5, reduce_lr_on_plateau=True), data)
    rates = [r.learning_rate for r in result.history]
    # No improvement in epochs 2 and 3 (patience 2): epoch 4 trains at half the rate, epoch 5 too.
    assert rates == pytest.approx([STILL, STILL, STILL, STILL / 2, STILL / 2], rel=1e-5)
    assert [r.learning_rate for r in train(TINY.replace(epochs=2), data).history] == pytest.approx([1e-3] * 2)


def test_options_round_trip_and_echo_bad_values():
    config = TrainConfig(weights="none", balance_classes=True, early_stopping_patience=4, reduce_lr_on_plateau=True)
    assert TrainConfig.from_json(config.to_json()) == config
    old = {
        k: v
        for k, v in TrainConfig().to_dict().items()
        if k not in ("balance_classes", "early_stopping_patience", "reduce_lr_on_plateau")
    }
    loaded = TrainConfig.from_dict(old)  # a run.json written before these options existed
    assert (loaded.balance_classes, loaded.early_stopping_patience, loaded.reduce_lr_on_plateau) == (False, None, False)
    with pytest.raises(ValueError, match="early_stopping_patience=0"):
        TrainConfig(early_stopping_patience=0)
    three, yes = json.loads('["3", "yes"]')  # the wrong types a hand-edited file holds: refused at run time
    with pytest.raises(ValueError, match="early_stopping_patience='3'"):
        TrainConfig(early_stopping_patience=three)
    with pytest.raises(ValueError, match="balance_classes='yes'"):
        TrainConfig(balance_classes=yes)


def test_cli_flags_land_in_the_runs_config(folder, tmp_path, capsys):
    from tlcore.cli import main

    runs = tmp_path / "runs"
    code = main(
        [
            "train",
            "--data",
            str(folder),
            "--weights",
            "none",
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--dense",
            "8",
            "--balance-classes",
            "--early-stopping",
            "3",
            "--reduce-lr-on-plateau",
            "--runs-dir",
            str(runs),
            "--json",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    config = load_record(Path(json.loads(out.out)["run_dir"])).config
    assert (config.balance_classes, config.early_stopping_patience, config.reduce_lr_on_plateau) == (True, 3, True)
    assert (
        main(["train", "--data", str(folder), "--weights", "none", "--early-stopping", "-1", "--runs-dir", str(runs)])
        == 2
    )
    assert "early_stopping_patience=-1" in capsys.readouterr().err


def test_stop_between_epochs_keeps_the_whole_epoch_and_skips_the_rest(data):
    import threading

    from tlcore.progress import EpochEnd

    flag = threading.Event()
    config = TINY.replace(epochs=3, fine_tune=FineTuneConfig(freeze_at=14, epochs=1))

    def stop_after_an_epoch(event: object) -> None:
        if isinstance(event, EpochEnd):
            flag.set()

    result = train(config, data, progress=stop_after_an_epoch, stop=flag)
    assert result.status == "stopped" and result.reason == "stopped by the user after epoch 1"
    assert [(r.epoch, r.partial) for r in result.history] == [(1, False)] and len(result.routes) == 1


def test_tensorboard_logs_that_cannot_be_written_never_stop_training(data, tmp_path):
    from tlcore.tf.training import TensorBoardScalars

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the logs' folder should be")
    tensorboard = TensorBoardScalars(blocker / TENSORBOARD_DIR)
    result = train(TINY.replace(epochs=2), data, callbacks=[tensorboard])
    assert result.status == "completed" and len(result.history) == 2
    assert tensorboard.error.startswith(f"The TensorBoard logs could not be written to {blocker / TENSORBOARD_DIR}")
