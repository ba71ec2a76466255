"""What an accuracy is worth: the levels a model reaches without learning, and how much one image moves it.

A validation accuracy of 0.59 looks like learning until one sees that always answering the largest
class scores 0.59 too; on 8 validation images one image is 12.5 %. The pages draw these levels on
every accuracy chart and say when the validation split is too small to tell runs apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tlcore.records import RunRecord

# Below either, the Train page says that accuracy moves in big steps.
FEW_VALIDATION_IMAGES = 20
FEW_IN_A_CLASS = 5


@dataclass(frozen=True)
class Baseline:
    """An accuracy reached without learning anything, and how to read it."""

    label: str
    accuracy: float


def accuracy_baselines(class_names: Sequence[str], validation_per_class: Sequence[int]) -> list[Baseline]:
    """Chance (a uniform guess), and always answering the largest validation class when that scores higher."""
    if not class_names:
        return []
    chance = Baseline(f"chance {1 / len(class_names):.0%}", 1 / len(class_names))
    total = sum(validation_per_class)
    if not total or len(validation_per_class) != len(class_names):
        return [chance]
    largest = max(range(len(class_names)), key=lambda i: validation_per_class[i])
    majority = validation_per_class[largest] / total
    if majority <= chance.accuracy + 1e-9:
        return [chance]
    return [chance, Baseline(f"always “{class_names[largest]}” {majority:.0%}", majority)]


def few_images_warning(class_names: Sequence[str], validation_per_class: Sequence[int]) -> str:
    """A sentence when the validation split is too small to read accuracy finely ("" when it is not)."""
    total = sum(validation_per_class)
    fewest = min(validation_per_class, default=0)
    if not total:
        return "There are no validation images: the accuracy curves show training images only."
    if total >= FEW_VALIDATION_IMAGES and fewest >= FEW_IN_A_CLASS:
        return ""
    smallest = class_names[list(validation_per_class).index(fewest)] if class_names else "a class"
    return (
        f"Few validation images ({total}; “{smallest}” has {fewest}): one image moves validation accuracy by "
        f"{1 / total:.1%}, so small differences between runs are luck. More photos per class make it sharper."
    )


def run_baselines(record: RunRecord) -> list[Baseline]:
    """The baselines of a saved run's validation split, as its record counted it when it started."""
    names = record.class_names or []
    counts = record.dataset.counts.get("validation", {}) if record.dataset else {}
    return accuracy_baselines(names, [counts.get(name, 0) for name in names])
