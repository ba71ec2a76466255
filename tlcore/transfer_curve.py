"""The transfer curve of Yosinski et al. 2014 (Fig. 2) on your own images: the plan, the results, their words.

At each freeze point n, four conditions, each repeated with its own seed: *kept* (ImageNet layers up to n
frozen, the layers above trained from their ImageNet weights), *re-initialised* (the layers above drawn afresh
and trained: the paper's AnB), *fine-tuned* (kept, then everything trained at a low rate: AnB+) and *random*
(a random backbone frozen up to n: the control). Two pairs are the same run and are trained once: kept and
re-initialised at 18 (nothing above to re-initialise), re-initialised and random at 0 (nothing kept).
The training is `tlcore.tf.transfer_curve`; no TensorFlow here.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.backbones import NO_WEIGHTS
from tlcore.config import TrainConfig
from tlcore.jsontypes import JSONObject
from tlcore.sweep import point_learning_rate

KEPT, REINITIALISED, FINE_TUNED, RANDOM = "kept", "reinitialised", "fine_tuned", "random"
CONDITIONS = (KEPT, REINITIALISED, FINE_TUNED, RANDOM)
CONDITION_WORDS = {
    KEPT: "ImageNet layers kept",
    REINITIALISED: "layers above re-initialised",
    FINE_TUNED: "kept, then fine-tuned",
    RANDOM: "random layers frozen",
}
DEFAULT_POINTS = (0, 3, 6, 10, 14, 18)  # block boundaries; 18: the head alone
DEFAULT_REPEATS = 3
DEFAULT_IMAGE_SIZE, DEFAULT_EPOCHS = 96, 5
FINE_TUNE_RATE = 1e-5  # the fine-tuned condition's rate for every layer (the lab's phase-2 rate)
NEAR_CHANCE = 0.1  # within this of chance, a condition "stays near chance"
CURVE_STAGE = "curve"  # the job's one stage: runs done of runs planned


def same_run_as(freeze_at: int, condition: str) -> str | None:
    """The condition whose run this one is (trained once, reported under both names), or None."""
    if condition == REINITIALISED and freeze_at == VGG16_LAYERS:
        return KEPT
    if condition == RANDOM and freeze_at == 0:
        return REINITIALISED
    return None


def curve_base(base: TrainConfig) -> TrainConfig:
    """What every run of a curve shares: fixed epochs (no early stopping, no minimum steps), one phase, cached
    frozen features."""
    return base.replace(fine_tune=None, early_stopping_patience=None, min_steps=0, cache_features=True)


def run_config(base: TrainConfig, freeze_at: int, repeat: int, condition: str) -> TrainConfig:
    """The settings of one run: the repeat's seed, the sweep's rate at this freeze point, the condition's weights.

    Fine-tuned continues the kept model with every layer at FINE_TUNE_RATE; random draws its frozen layers from
    the seed (`base` as `curve_base` made it).
    """
    config = base.replace(
        freeze_at=freeze_at, seed=base.seed + repeat, learning_rate=point_learning_rate(base, freeze_at)
    )
    if condition == FINE_TUNED:
        return config.replace(freeze_at=0, learning_rate=FINE_TUNE_RATE, cache_features=False)
    if condition == RANDOM:
        return config.replace(weights=NO_WEIGHTS)
    return config


def planned_runs(base: TrainConfig, points: Sequence[int], repeats: int) -> list[tuple[int, int, str, TrainConfig]]:
    """(repeat, freeze point, condition, settings) of every run trained, in order; the duplicates left out."""
    base = curve_base(base)
    return [
        (repeat, n, condition, run_config(base, n, repeat, condition))
        for repeat in range(repeats)
        for n in check_points(points)
        for condition in CONDITIONS
        if same_run_as(n, condition) is None
    ]


def check_points(points: Sequence[int]) -> list[int]:
    """The freeze points, in order, each 0..18 once.

    Raises:
        ValueError: a point outside 0..18, a repeated one, or none.
    """
    chosen = [int(n) for n in points]
    if not chosen or any(not 0 <= n <= VGG16_LAYERS for n in chosen) or len(set(chosen)) != len(chosen):
        raise ValueError(f"Transfer-curve points must be distinct freeze points 0..{VGG16_LAYERS}. Received: {chosen}")
    return sorted(chosen)


@dataclass(frozen=True)
class Band:
    """One condition at one freeze point over the repeats: validation accuracy's mean, min and max."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    def to_dict(self) -> JSONObject:
        return {"mean": self.mean, "min": min(self.values), "max": max(self.values), "runs": list(self.values)}


@dataclass(frozen=True)
class TransferCurve:
    """Every condition at every freeze point, and how long it took."""

    points: tuple[int, ...]
    bands: dict[tuple[int, str], Band]  # (freeze_at, condition) -> band
    chance: float  # always answering the largest validation class
    repeats: int
    image_size: int
    epochs: int
    seconds: float = 0.0

    def band(self, freeze_at: int, condition: str) -> Band:
        return self.bands[(freeze_at, condition)]

    @property
    def summary(self) -> str:
        """Sentences that describe the measured curve."""
        top = max(self.points)
        kept = {n: self.band(n, KEPT).mean for n in self.points}
        best = max(kept, key=lambda n: kept[n])
        text = (
            f"Kept ImageNet layers reach {kept[best]:.0%} at freeze point {best} "
            f"(the head alone, at {top}: {kept[top]:.0%}; chance {self.chance:.0%})."
        )
        randoms = [self.band(n, RANDOM).mean for n in self.points if n > 0]
        if randoms:
            text += f" Random frozen layers reach {min(randoms):.0%} to {max(randoms):.0%}: what training alone learns."
        gaps = {n: kept[n] - self.band(n, REINITIALISED).mean for n in self.points if n < top}
        if gaps:
            worst = max(gaps, key=lambda n: gaps[n])
            if gaps[worst] > 0.05:
                text += (
                    f" Re-initialising the layers above costs most at {worst} ({gaps[worst]:.0%} below kept): "
                    "with this few images they cannot relearn what ImageNet taught them."
                )
        stuck = [n for n in self.points if n < top and self.band(n, REINITIALISED).mean <= self.chance + NEAR_CHANCE]
        if stuck:
            text += f" Re-initialised conv layers stay near chance at {', '.join(map(str, stuck))}."
        tuned = {n: self.band(n, FINE_TUNED).mean - kept[n] for n in self.points}
        better = [n for n, gain in tuned.items() if gain > 0.02]
        if better:
            text += f" Fine-tuning everything afterwards helps at {', '.join(map(str, better))}."
        else:
            text += " Fine-tuning everything afterwards changes little."
        return text

    def to_dict(self) -> JSONObject:
        """The command line's JSON: `boundaries`, one object per freeze point with each condition's band."""
        return {
            "boundaries": [{"freeze_at": n, **{c: self.band(n, c).to_dict() for c in CONDITIONS}} for n in self.points],
            "chance": self.chance,
            "repeats": self.repeats,
            "image_size": self.image_size,
            "epochs": self.epochs,
            "seconds": round(self.seconds, 1),
            "summary": self.summary,
        }
