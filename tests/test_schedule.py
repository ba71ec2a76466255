"""Training length that follows the data (tlcore.schedule): batch size, epochs, early stopping, in training too."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import TINY_CONFIG
from tlcore.config import FineTuneConfig, TrainConfig
from tlcore.route import CACHED, END_TO_END
from tlcore.schedule import MIN_VALIDATION_PER_CLASS, fitted_batch_size, schedule


def test_forty_photos_train_a_hundred_steps_in_small_batches():
    # A student's 40 photos, split 32 / 8 by the lab: 5 epochs of one batch of 32 were 5 steps.
    plan = schedule(TrainConfig(), 32, [4, 4], CACHED)
    assert (plan.batch_size, plan.steps_per_epoch) == (8, 4)
    assert [(p.asked_epochs, p.epochs) for p in plan.phases] == [(5, 25)] and plan.total_epochs == 25
    assert plan.patience is None  # 4 validation images a class cannot judge an epoch
    assert "a class has 4 validation image(s), fewer than 5" in plan.patience_off_reason
    assert plan.changes(TrainConfig(), 32) == [
        "batches of 8 instead of 32, so the 32 training images make 4 steps an epoch",
        "25 epochs instead of 5 for the head, so it takes at least 100 steps",
    ]


@pytest.mark.parametrize(("n_train", "batch"), [(1, 8), (4, 8), (31, 8), (32, 8), (90, 23), (128, 32), (10_000, 32)])
def test_the_batch_leaves_four_steps_an_epoch_but_never_drops_below_eight(n_train, batch):
    assert fitted_batch_size(TrainConfig(), n_train) == batch
    assert fitted_batch_size(TrainConfig(batch_size=4), n_train) == 4  # a smaller batch set by hand stays
    assert fitted_batch_size(TrainConfig(min_steps=0), n_train) == 32  # the settings exactly


def test_only_a_head_on_cached_features_gets_more_epochs():
    # Steps that run VGG16 (augmentation, caching off, conv layers training) keep the epochs set.
    assert schedule(TrainConfig(), 90, [25, 25], END_TO_END).phases[0].epochs == 5
    assert schedule(TrainConfig(freeze_at=14), 90, [25, 25], CACHED).phases[0].epochs == 5
    two_phases = schedule(TrainConfig(fine_tune=FineTuneConfig(14, 3)), 90, [25, 25], CACHED)
    assert [(p.phase, p.freeze_at, p.epochs) for p in two_phases.phases] == [(1, 18, 25), (2, 14, 3)]
    assert two_phases.patience == 5 and two_phases.patience_off_reason == ""
    # A long asked length is kept; a large set needs no more epochs.
    assert schedule(TrainConfig(epochs=40), 32, [5, 5], CACHED).phases[0].epochs == 40
    assert schedule(TrainConfig(), 4000, [500, 500], CACHED).phases[0].epochs == 5
    assert schedule(TrainConfig(min_steps=0), 32, [4, 4], CACHED).phases[0].epochs == 5


def test_early_stopping_needs_enough_validation_images_in_every_class():
    config = TrainConfig(early_stopping_patience=3)
    enough = [MIN_VALIDATION_PER_CLASS] * 2
    assert schedule(config, 90, enough, CACHED).patience == 3
    assert schedule(config, 90, [MIN_VALIDATION_PER_CLASS, 1], CACHED).patience is None
    assert schedule(config, 90, [], CACHED).patience is None  # no validation split at all
    assert schedule(TrainConfig(early_stopping_patience=None), 90, enough, CACHED).patience_off_reason == ""


def test_a_run_json_written_before_keeps_its_head_and_length():
    old: dict[str, Any] = TrainConfig().to_dict()  # edited as plain JSON
    for key in ("min_steps", "early_stopping_patience"):
        del old[key]
    del old["head"]["normalize"]
    before = TrainConfig.from_dict(json.loads(json.dumps(old)))
    assert (before.min_steps, before.early_stopping_patience, before.head.normalize) == (0, None, False)
    assert schedule(before, 32, [4, 4], CACHED).phases[0].epochs == 5
    now = TrainConfig()
    assert (now.min_steps, now.early_stopping_patience, now.head.normalize, now.head.pooling) == (100, 5, True, "max")
    assert TrainConfig.from_dict(json.loads(now.to_json())) == now  # today's run.json round-trips
    with pytest.raises(ValueError, match="min_steps=-1"):
        TrainConfig(min_steps=-1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from tests.helpers import make_dataset_folder
    from tlcore.data import scan
    from tlcore.tf.training import prepare_data

    # 16 training and 10 validation images: 5 a class, enough for early stopping.
    root = make_dataset_folder(tmp_path_factory.mktemp("schedule") / "d", n_train=8, n_val=5)
    return prepare_data(scan(root), 32)


def test_training_runs_the_plan_and_says_so_first(data):
    from tlcore.progress import BatchEnd, Planned
    from tlcore.tf.training import train

    events: list[object] = []
    config = TINY_CONFIG.replace(batch_size=32, epochs=2, min_steps=10)
    result = train(config, data, progress=events.append)
    planned = events[0]
    assert isinstance(planned, Planned) and planned.schedule == result.schedule
    # 16 images: batches of 8 (two steps an epoch), 5 epochs for 10 steps.
    assert (result.schedule.batch_size, result.schedule.steps_per_epoch) == (8, 2)
    assert len(result.history) == 5 and all(row.batches == 2 for row in result.history)
    assert {e.batches for e in events if isinstance(e, BatchEnd)} == {2}


def test_early_stopping_keeps_the_best_epoch_and_the_run_reports_that_epochs_metrics(data, tmp_path):
    from tlcore.run_folder import load_record
    from tlcore.runs import RunStore
    from tlcore.tf.training import train_and_record

    # A rate so high that val_loss soon rises: the best epoch is an early one.
    config = TINY_CONFIG.replace(epochs=12, learning_rate=0.3, early_stopping_patience=2)
    result, run = train_and_record(config, data.info, RunStore(tmp_path / "runs"), data=data)
    losses = [row.val_loss for row in result.history]
    best = min(range(len(losses)), key=losses.__getitem__) + 1
    assert result.kept_epoch == best and len(result.history) < 12
    assert result.final["val_loss"] == pytest.approx(losses[best - 1])
    record = load_record(run.run_dir)
    assert record.kept_epoch == best and record.history.final.epoch == best
    assert record.final is not None
    assert record.final["val_loss"] == pytest.approx(losses[best - 1])
    assert f"the weights of epoch {best} were kept" in record.reason
