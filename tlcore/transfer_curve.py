"""The transfer curve of Yosinski et al. 2014 (Fig. 2) on your own images: the plan, the results, their words.

At each freeze point n, four conditions, each repeated with its own seed: *kept* (ImageNet layers up to n
frozen, the layers above trained from their ImageNet weights), *re-initialised* (the layers above drawn afresh
and trained: the paper's AnB), *fine-tuned* (kept, then everything trained at a low rate: AnB+) and *random*
(a random backbone frozen up to n: the control). Two pairs are the same run and are trained once: kept and
re-initialised at 18 (nothing above to re-initialise), re-initialised and random at 0 (nothing kept).
The runs of one repeat at one freeze point are a `CurveUnit`, trained together (fine-tuned goes on from kept);
units are what spread over a cluster's workers. The training is `tlcore.tf.transfer_curve`; no TensorFlow here.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.backbones import NO_WEIGHTS
from tlcore.config import FineTuneConfig, TrainConfig
from tlcore.data import VALIDATION, DatasetInfo
from tlcore.jsontypes import JSONObject, JSONValue
from tlcore.sweep import point_learning_rate

KEPT, REINITIALISED, FINE_TUNED, RANDOM = "kept", "reinitialised", "fine_tuned", "random"
CONDITIONS = (KEPT, REINITIALISED, FINE_TUNED, RANDOM)
CONDITION_WORDS = {
    KEPT: "ImageNet layers kept",
    REINITIALISED: "re-initialised above",  # short: the chart's legend fits a phone in two columns
    FINE_TUNED: "kept, then fine-tuned",
    RANDOM: "random layers frozen",
}
DEFAULT_POINTS = (0, 3, 6, 10, 14, 18)  # block boundaries; 18: the head alone
DEFAULT_REPEATS = 3
DEFAULT_IMAGE_SIZE, DEFAULT_EPOCHS = 96, 5
# The fine-tuned condition goes on from the kept model as the lab's own second phase does: every layer at its rate,
# for its epochs.
FINE_TUNE_PHASE = FineTuneConfig(freeze_at=0)
TRAINING_ORDER = (KEPT, FINE_TUNED, REINITIALISED, RANDOM)  # fine-tuned right after the kept model it trains on
FASTEST = "fastest"  # a curve's precision: the device's fastest (`DeviceReport.fastest_precision`)
CURVE_TAG = "curve"  # a curve run's tag: its curve's id (with "point", "condition" and "repeat")
NEAR_CHANCE = 0.1  # within this of chance, a condition "stays near chance"
CURVE_STAGE = "curve"  # the job's one stage: runs done of runs planned


def same_run_as(freeze_at: int, condition: str) -> str | None:
    """The condition whose run this one is (trained once, reported under both names), or None."""
    if condition == REINITIALISED and freeze_at == VGG16_LAYERS:
        return KEPT
    if condition == RANDOM and freeze_at == 0:
        return REINITIALISED
    return None


def curve_base(base: TrainConfig, precision: str | None = None) -> TrainConfig:
    """What every run of a curve shares: fixed epochs (no early stopping, no minimum steps), one phase, cached
    frozen features; `precision` (the device's fastest, `DeviceReport.fastest_precision`) instead of base's."""
    shared = base.replace(fine_tune=None, early_stopping_patience=None, min_steps=0, cache_features=True)
    return shared.replace(precision=precision) if precision else shared


def run_config(base: TrainConfig, freeze_at: int, repeat: int, condition: str) -> TrainConfig:
    """The settings of one run: the repeat's seed, the sweep's rate at this freeze point, the condition's weights.

    Fine-tuned continues the kept model as FINE_TUNE_PHASE says; random draws its frozen layers from the seed
    (`base` as `curve_base` made it).
    """
    config = base.replace(
        freeze_at=freeze_at, seed=base.seed + repeat, learning_rate=point_learning_rate(base, freeze_at)
    )
    if condition == FINE_TUNED:
        phase = FINE_TUNE_PHASE
        return config.replace(
            freeze_at=phase.freeze_at, epochs=phase.epochs, learning_rate=phase.learning_rate, cache_features=False
        )
    if condition == RANDOM:
        return config.replace(weights=NO_WEIGHTS)
    return config


def shared_runs_note(points: Sequence[int]) -> str:
    """Which conditions are one run at these points (drawn under both names, listed once), in words; "" if none."""
    shared = [(n, c, same) for n in points for c in CONDITIONS if (same := same_run_as(n, c))]
    if not shared:
        return ""
    pairs = "; ".join(f"at {n}, “{CONDITION_WORDS[c]}” is the “{CONDITION_WORDS[same]}” run" for n, c, same in shared)
    return f"One run stands for two conditions, drawn under both names and listed once: {pairs}."


@dataclass(frozen=True)
class CurveUnit:
    """The runs of one repeat at one freeze point, in training order: one task on a cluster's worker."""

    repeat: int
    freeze_at: int
    runs: tuple[tuple[str, TrainConfig], ...]  # (condition, settings), duplicates left out

    def tags(self, curve_id: str, condition: str) -> dict[str, JSONValue]:
        """What a run of this unit is tagged with in its record."""
        return {CURVE_TAG: curve_id, "point": self.freeze_at, "condition": condition, "repeat": self.repeat + 1}


def planned_units(base: TrainConfig, points: Sequence[int], repeats: int) -> list[CurveUnit]:
    """Every unit of the curve, repeat by repeat and point by point (`base` as `curve_base` made it)."""
    return [
        CurveUnit(
            repeat,
            n,
            tuple(
                (condition, run_config(base, n, repeat, condition))
                for condition in TRAINING_ORDER
                if same_run_as(n, condition) is None
            ),
        )
        for repeat in range(repeats)
        for n in check_points(points)
    ]


def planned_runs(base: TrainConfig, points: Sequence[int], repeats: int) -> list[tuple[int, int, str, TrainConfig]]:
    """(repeat, freeze point, condition, settings) of every run trained, in order; the duplicates left out."""
    return [
        (unit.repeat, unit.freeze_at, condition, config)
        for unit in planned_units(curve_base(base), points, repeats)
        for condition, config in unit.runs
    ]


def chance_of(info: DatasetInfo) -> float:
    """Validation accuracy of always answering the largest validation class."""
    counts = info.class_counts(VALIDATION)
    return max(counts) / max(1, sum(counts))


def assemble(
    points: Sequence[int],
    repeats: int,
    results: Sequence[tuple[int, str, float]],
    chance: float,
    base: TrainConfig,
    seconds: float,
) -> TransferCurve:
    """The curve from every trained run's (freeze point, condition, validation accuracy), in plan order;
    each duplicate reported under both its names."""
    values: dict[tuple[int, str], list[float]] = {(n, c): [] for n in points for c in CONDITIONS}
    for n, condition, accuracy in results:
        for name in CONDITIONS:
            if name == condition or same_run_as(n, name) == condition:
                values[(n, name)].append(accuracy)
    return TransferCurve(
        points=tuple(check_points(points)),
        bands={key: Band(tuple(v)) for key, v in values.items()},
        chance=chance,
        repeats=repeats,
        image_size=base.image_size,
        epochs=base.epochs,
        seconds=seconds,
    )


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
            low, high = f"{min(randoms):.0%}", f"{max(randoms):.0%}"
            reach = f"{low} to {high}" if low != high else f"{high} at every freeze point"
            text += f" Random frozen layers reach {reach}: what training alone learns."
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

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> TransferCurve:
        """The curve `to_dict` wrote (a saved curve's file); raises ValueError when it is not one."""
        bands: dict[tuple[int, str], Band] = {}
        boundaries = data.get("boundaries")
        for boundary in boundaries if isinstance(boundaries, list) else []:
            for condition in CONDITIONS:
                band = boundary.get(condition) if isinstance(boundary, dict) else None
                runs = band.get("runs") if isinstance(band, dict) else None
                if not isinstance(runs, list) or not runs:
                    raise ValueError(f"no runs of {condition} in boundary {boundary!r}")
                bands[(int(boundary["freeze_at"]), condition)] = Band(tuple(float(v) for v in runs))
        if not bands:
            raise ValueError("no boundaries")
        return cls(
            points=tuple(sorted({n for n, _ in bands})),
            bands=bands,
            chance=float(_number(data, "chance")),
            repeats=int(_number(data, "repeats")),
            image_size=int(_number(data, "image_size")),
            epochs=int(_number(data, "epochs")),
            seconds=float(_number(data, "seconds")),
        )


def _number(data: Mapping[str, JSONValue], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} is not a number: {value!r}")
    return value
