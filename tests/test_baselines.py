"""What an accuracy is worth (tlcore.baselines): chance, the largest class, and when validation is too small."""

from __future__ import annotations

import pytest

from tlcore.baselines import accuracy_baselines, few_images_warning, run_baselines
from tlcore.records import DatasetFacts, RunRecord


def test_chance_alone_when_the_classes_are_balanced():
    (chance,) = accuracy_baselines(["cats", "dogs"], [10, 10])
    assert (chance.label, chance.accuracy) == ("chance 50%", 0.5)
    assert [b.accuracy for b in accuracy_baselines(["a", "b", "c"], [])] == [pytest.approx(1 / 3)]
    assert accuracy_baselines([], []) == []


def test_always_answering_the_largest_class_is_a_second_line():
    # The from-scratch run of the issue: 0.588 looked like learning; always "mammals" scores it too.
    chance, majority = accuracy_baselines(["birds", "mammals"], [7, 10])
    assert chance.accuracy == 0.5
    assert majority.label == "always “mammals” 59%" and majority.accuracy == pytest.approx(10 / 17)


def test_few_validation_images_say_how_much_one_image_moves_accuracy():
    warning = few_images_warning(["cats", "dogs"], [4, 4])
    assert "Few validation images (8; “cats” has 4)" in warning and "by 12.5%" in warning
    assert "“dogs” has 3" in few_images_warning(["cats", "dogs"], [30, 3])  # enough in all, too few in one
    assert few_images_warning(["cats", "dogs"], [10, 10]) == ""  # 20 images, 5 or more in each class
    assert "no validation images" in few_images_warning(["cats", "dogs"], [0, 0])


def test_a_saved_runs_baselines_come_from_its_recorded_split():
    record = RunRecord(
        run_id="r",
        class_names=["cats", "dogs"],
        dataset=DatasetFacts(root="/d", counts={"train": {"cats": 8, "dogs": 8}, "validation": {"cats": 1, "dogs": 3}}),
    )
    assert [b.label for b in run_baselines(record)] == ["chance 50%", "always “dogs” 75%"]
