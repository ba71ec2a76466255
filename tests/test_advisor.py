"""tlcore.advisor: the four transfer-learning cases, the size threshold, class imbalance."""

from __future__ import annotations

import pytest

from tlcore.advisor import LARGE_DATASET_MIN_IMAGES, Advice, advise, imbalance_warnings, is_large


@pytest.mark.parametrize(
    ("num_train", "similar", "freeze_at", "augment", "case"),
    [
        (90, True, 18, False, "small dataset, similar to ImageNet"),
        (50_000, True, 14, False, "large dataset, similar to ImageNet"),
        (90, False, 10, True, "small dataset, different from ImageNet"),
        (50_000, False, 0, False, "large dataset, different from ImageNet"),
    ],
)
def test_the_four_cases(num_train, similar, freeze_at, augment, case):
    advice = advise(num_train, similar)
    assert isinstance(advice, Advice)
    assert (advice.freeze_at, advice.augment, advice.case) == (freeze_at, augment, case)
    assert f"{num_train:,} training images" in advice.explanation
    assert f"{LARGE_DATASET_MIN_IMAGES:,}" in advice.explanation  # the threshold is stated


def test_threshold_boundary_is_2000_training_images():
    assert LARGE_DATASET_MIN_IMAGES == 2_000
    assert not is_large(1_999) and is_large(2_000)
    assert advise(1_999, True).freeze_at == 18
    assert advise(2_000, True).freeze_at == 14
    assert advise(1_999, False).freeze_at == 10
    assert advise(2_000, False).freeze_at == 0
    assert "small dataset (fewer than 2,000)" in advise(1_999, True).explanation
    assert "large dataset (at least 2,000)" in advise(2_000, True).explanation


def test_freeze_points_are_block_boundaries():
    boundaries = {0, 3, 6, 10, 14, 18}
    for n in (0, 1_999, 2_000, 10**6):
        for similar in (True, False):
            assert advise(n, similar).freeze_at in boundaries


def test_negative_size_is_refused():
    with pytest.raises(ValueError, match="num_train_images=-1"):
        advise(-1, True)


def test_imbalance_names_the_classes_and_the_ratio():
    counts = {"train": {"cats": 30, "dogs": 10}, "validation": {"cats": 5, "dogs": 5}}
    assert imbalance_warnings(counts) == ["'cats' has 3.0x as many training images as 'dogs' (30 vs 10)."]


def test_imbalance_threshold_and_every_split():
    assert imbalance_warnings({"train": {"a": 14, "b": 10}}) == []  # 1.4x: fine
    assert imbalance_warnings({"train": {"a": 15, "b": 10}}) != []  # 1.5x: warned
    messages = imbalance_warnings({"train": {"a": 10, "b": 10, "c": 40}, "validation": {"a": 2, "b": 6, "c": 3}})
    assert messages == [
        "'c' has 4.0x as many training images as 'a' (40 vs 10).",
        "'b' has 3.0x as many validation images as 'a' (6 vs 2).",
    ]
    assert imbalance_warnings({"train": {"a": 20, "b": 10}}, threshold=2.5) == []


def test_imbalance_leaves_out_empty_classes_and_single_classes():
    # A class with no image in a split is already a scan warning; no infinite ratio here.
    assert imbalance_warnings({"train": {"a": 10, "b": 0}}) == []
    assert imbalance_warnings({"train": {"a": 10}}) == []
    assert imbalance_warnings({}) == []


def test_learning_rate_warning_only_when_pretrained_layers_train_fast():
    from tlcore.advisor import learning_rate_warning

    assert learning_rate_warning(18, 1e-3, pretrained=True) is None  # only the head trains
    assert learning_rate_warning(14, 1e-4, pretrained=True) is None  # a fine-tuning rate
    assert learning_rate_warning(0, 1e-3, pretrained=False) is None  # nothing pretrained to wreck
    warning = learning_rate_warning(14, 1e-3, pretrained=True)
    assert warning is not None and "0.001" in warning and "0.0001 or lower" in warning


# --- the head-first recipe (keras.io "Transfer learning & fine-tuning") ---------------------------

from tlcore.advisor import HEAD_FIRST_WHY, apply_advice, train_down_to  # noqa: E402
from tlcore.config import AugmentConfig, FineTuneConfig, TrainConfig  # noqa: E402


@pytest.mark.parametrize("freeze_at", [14, 10, 0])
def test_pretrained_conv_layers_train_after_the_head_at_a_low_rate(freeze_at):
    config = train_down_to(TrainConfig(weights="imagenet", learning_rate=1e-3), freeze_at)
    assert config.freeze_at == 18 and config.learning_rate == 1e-3  # phase 1: the head alone
    assert config.fine_tune == FineTuneConfig(freeze_at=freeze_at, epochs=3, learning_rate=1e-5)
    assert "wreck the pretrained filters" in HEAD_FIRST_WHY


def test_the_recipe_keeps_a_low_phase_2_rate_and_replaces_a_high_one():
    mine = TrainConfig(weights="/w.h5", freeze_at=10, fine_tune=FineTuneConfig(6, 7, 3e-5))
    assert train_down_to(mine, 14).fine_tune == FineTuneConfig(14, 7, 3e-5)
    fast = TrainConfig(freeze_at=10, fine_tune=FineTuneConfig(6, 7, 1e-3))
    assert train_down_to(fast, 14).fine_tune == FineTuneConfig(14, 7, 1e-5)


def test_head_only_and_random_weights_train_in_one_phase():
    tuned = TrainConfig(freeze_at=18, fine_tune=FineTuneConfig(14))
    assert train_down_to(tuned, 18) == tuned.replace(fine_tune=None)
    scratch = train_down_to(TrainConfig(weights="none", learning_rate=1e-3), 0)  # no filters to protect
    assert (scratch.freeze_at, scratch.fine_tune, scratch.learning_rate) == (0, None, 1e-4)
    with pytest.raises(ValueError, match="Received: freeze_at=19"):
        train_down_to(TrainConfig(), 19)


def test_applying_advice_sets_augmentation_and_the_recipe():
    advice = advise(90, similar_to_imagenet=False)
    config = apply_advice(TrainConfig(augment=AugmentConfig(enabled=False, zoom=0.3)), advice)
    assert config.augment == AugmentConfig(enabled=True, zoom=0.3)
    assert (config.freeze_at, config.fine_tune) == (18, FineTuneConfig(10, 3, 1e-5))


def test_with_random_weights_the_advice_is_to_transfer_or_train_everything():
    for similar in (True, False):
        advice = advise(90, similar, pretrained=False)
        assert advice.freeze_at == 0 and not advice.augment
        assert "carry no knowledge" in advice.explanation and "ImageNet or a weights file" in advice.explanation
