"""tlcore.advisor: the four transfer-learning cases, the size threshold, class imbalance."""

from __future__ import annotations

import pytest

from tlcore.advisor import LARGE_DATASET_MIN_IMAGES, Advice, advise, imbalance_warnings, is_large


@pytest.mark.parametrize(
    "num_train, similar, freeze_at, augment, case",
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
