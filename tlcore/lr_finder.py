"""The learning-rate range test (Smith 2017; fastai's `lr_find`) without TensorFlow: rates, smoothing, stop, suggestion.

A short run of training steps in which the rate rises exponentially from START_RATE to END_RATE, one step at a
time; each batch's loss is smoothed and drawn against the rate: flat at tiny rates, then falling, then shooting
up once the steps are too big. A good rate is well before the shoot-up, where the loss still falls steeply (on
pretrained conv layers the shoot-up comes early: the 1e-3 vs 1e-4 lesson of a k=14 sweep). Each choice is argued
where it is made: `smoothing_beta`, `RangeTest` (the stop rule), `valley_index` (the suggestion).
`tlcore.tf.lr_finder.find_learning_rate` runs a sweep on a TrainConfig.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tlcore.advisor import FINE_TUNE_MAX_LEARNING_RATE
from tlcore.config import FineTuneConfig, TrainConfig
from tlcore.jsontypes import JSONObject

START_RATE, END_RATE = 1e-7, 1.0
DEFAULT_MAX_STEPS, DEFAULT_MAX_SECONDS = 100, 60.0
MIN_STEPS = 10  # fewer points than this draw no curve worth reading, whatever the time cap
# The first step builds (traces) the training function and the second times a step; both run at the
# start rate and are not drawn. The sweep's steps are then planned to fit the time left.
WARMUP_STEPS = 2
DIVERGENCE_FACTOR = 4.0
SMOOTHING_DECADES = 0.5  # the moving average's memory, in decades of rate
LEFT_OUT_SHARE = 0.1  # of the planned steps, the first, left out of the suggestions as fastai does: too few batches
FELL_SHARE = 0.9  # a curve "falls" when its minimum is below this share of where it started
# The rates marked on every curve: the default rate (good for a new head) and the most that pretrained conv
# layers stand (tlcore.advisor).
MARKED_RATES: tuple[float, ...] = (FINE_TUNE_MAX_LEARNING_RATE, TrainConfig().learning_rate)
SUGGESTION_METHOD = "valley"

# Why a sweep ended (LRFinderResult.stop).
ENDED, DIVERGED, NOT_FINITE = "ended", "diverged", "not_finite"
TIME_CAP, STOPPED, FAILED = "time_cap", "stopped", "failed"


def format_rate(rate: float) -> str:
    """A rate as people write it: 1e-3, 2.5e-4 (one decimal at most); 1 and 2.5 without an exponent."""
    mantissa, exponent = f"{rate:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return mantissa if int(exponent) == 0 else f"{mantissa}e{int(exponent)}"


def rate_schedule(steps: int, start: float = START_RATE, end: float = END_RATE) -> list[float]:
    """`steps` rates from `start` to `end`, the same factor apart (exponential, so every decade gets as many)."""
    if steps < 2:
        raise ValueError(f"A rate sweep needs at least 2 steps. Received: steps={steps}")
    if not 0 < start < end:
        raise ValueError(f"A rate sweep needs 0 < start < end. Received: start={start}, end={end}")
    return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]


def guess_loss(num_classes: int) -> float:
    """The cross-entropy of a guess that gives every class the same probability: ln(classes) (0.69 for 2)."""
    return math.log(max(num_classes, 2))


def smoothing_beta(steps: int, start: float = START_RATE, end: float = END_RATE) -> float:
    """The moving average's beta for a sweep: its memory (1 / (1 - beta) steps, roughly) spans SMOOTHING_DECADES.

    fastai's beta = 0.98 is made for 100 steps and remembers ~50 of them, more than three decades of rate there:
    its minimum comes late. Set per sweep, the memory spans the same rates whether a sweep has 20 steps or 100.
    """
    decades_per_step = math.log10(end / start) / (steps - 1)
    return math.exp(-decades_per_step / SMOOTHING_DECADES)


class Smoother:
    """An exponential moving average divided by 1 - beta ** n, as Adam's moments, so early values are not low."""

    def __init__(self, beta: float) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1). Received: beta={beta}")
        self.beta, self.average, self.count = beta, 0.0, 0

    def add(self, loss: float) -> float:
        self.count += 1
        self.average = self.beta * self.average + (1.0 - self.beta) * loss
        return self.average / (1.0 - self.beta**self.count)


def smooth(losses: Sequence[float], beta: float) -> list[float]:
    smoother = Smoother(beta)
    return [smoother.add(loss) for loss in losses]


def planned_steps(max_steps: int, seconds_left: float, step_seconds: float) -> int:
    """How many sweep steps to plan: as many as fit in the time left, at most max_steps, at least MIN_STEPS."""
    if step_seconds <= 0:
        return max(max_steps, 2)
    fit = int(seconds_left / step_seconds)
    return max(2, min(max_steps, max(fit, MIN_STEPS)))


def valley_index(losses: Sequence[float]) -> int | None:
    """fastai's `valley`: where the longest valley of `losses` is about half-way down (None for under 2 points).

    fastai's default since 2.5. It reads the whole descent, so batch noise moves it little; "steepest descent"
    (the biggest drop per step) jumps with a single noisy batch when a sweep has only a few dozen steps.

    The longest strictly falling subsequence ends at `end` with `length` points; as in fastai, the valley is
    taken to span [end - length, end], and the point a third plus a sixth of the way along it is chosen.
    """
    n = len(losses)
    if n < 2:
        return None
    longest = [1] * n  # longest falling subsequence ending at each point
    end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[end]:
            end = i
    start = max(0, end - longest[end])
    third = (end - start) / 3
    return start + int(third) + int(third / 2)


def relevant_config(config: TrainConfig, phase: int) -> TrainConfig:
    """`config` with what a sweep for this phase does not read set to defaults: the same sweep, the same key.

    Phase 1's sweep reads neither its own rate and epochs nor the second phase. Phase 2's sweep first trains
    phase 1 as set (its rate, epochs and fit options count) and reads neither phase 2's rate nor its epochs.
    Raises ValueError for a phase the config does not have.
    """
    defaults = TrainConfig()
    if phase == 1:
        return config.replace(
            learning_rate=defaults.learning_rate,
            epochs=defaults.epochs,
            fine_tune=None,
            early_stopping_patience=None,
            reduce_lr_on_plateau=False,
        )
    if phase == 2:
        if config.fine_tune is None:
            raise ValueError("These settings have no second phase: turn it on, or find a rate for phase 1.")
        phase_2 = FineTuneConfig(config.fine_tune.freeze_at)
        return config.replace(fine_tune=phase_2)
    raise ValueError(f"phase must be 1 or 2. Received: phase={phase}")


def sweep_freeze_at(config: TrainConfig, phase: int) -> int:
    """The freeze point a sweep for this phase trains at."""
    relevant = relevant_config(config, phase)
    return relevant.fine_tune.freeze_at if phase == 2 and relevant.fine_tune else relevant.freeze_at


@dataclass(frozen=True)
class FinderStart:
    """The sweep is about to start (after decoding, and after phase 1 for a phase-2 sweep)."""

    phase: int
    freeze_at: int
    route: str  # cached | end_to_end (tlcore.route)
    route_reason: str
    trainable_params: int
    frozen_params: int


@dataclass(frozen=True)
class FinderStep:
    """One sweep step done; `steps` is the planned number (0 during the warm-up steps)."""

    step: int  # 1-based
    steps: int
    rate: float
    loss: float
    smoothed: float | None  # None during warm-up


class RangeTest:
    """One sweep's rates, losses and stop rule: ask `next_rate()`, train a step at it, `record(loss)`.

    `record` returns "" to go on, or why the sweep ends (ENDED, DIVERGED, NOT_FINITE). The rule is fastai's
    with a floor: the smoothed loss passed DIVERGENCE_FACTOR times its minimum so far *and* `floor` (a guess's
    loss, `guess_loss`; 0: fastai's rule), or a loss is not a number. Without the floor, a head already trained
    to a loss of 0.02 (phase 2 on the sample data) "diverged" at 0.08 on batch noise at 5e-7.
    """

    def __init__(
        self,
        steps: int,
        start: float = START_RATE,
        end: float = END_RATE,
        divergence_factor: float = DIVERGENCE_FACTOR,
        floor: float = 0.0,
    ) -> None:
        self.schedule = rate_schedule(steps, start, end)
        self.beta = smoothing_beta(steps, start, end)
        self.divergence_factor, self.floor = divergence_factor, floor
        self.smoother = Smoother(self.beta)
        self.rates: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.best = math.inf

    def next_rate(self) -> float:
        return self.schedule[len(self.losses)]

    def record(self, loss: float) -> str:
        rate = self.next_rate()
        if not math.isfinite(loss):
            return NOT_FINITE  # a NaN loss is no point of the curve
        self.rates.append(rate)
        self.losses.append(float(loss))
        smoothed = self.smoother.add(float(loss))
        self.smoothed.append(smoothed)
        self.best = min(self.best, smoothed)
        if smoothed > self.divergence_factor * self.best and smoothed > self.floor:
            return DIVERGED
        return ENDED if len(self.losses) == len(self.schedule) else ""


def stop_text(stop: str, rate: float | None = None, factor: float = DIVERGENCE_FACTOR) -> str:
    """Why a sweep ended, in words."""
    at = f" at {format_rate(rate)}" if rate is not None else ""
    return {
        ENDED: f"reached the end rate{at}",
        DIVERGED: f"the smoothed loss passed {factor:g}× its minimum and a guess's loss{at}",
        NOT_FINITE: f"the loss stopped being a number{at}",
        TIME_CAP: f"the time cap was reached{at}",
        STOPPED: f"stopped by the user{at}",
    }.get(stop, stop)


@dataclass(frozen=True)
class LRFinderResult:
    """A sweep's curve and how it ran; the suggestions are computed from the curve."""

    rates: tuple[float, ...]
    losses: tuple[float, ...]  # each step's batch loss, before that step's update
    smoothed: tuple[float, ...]
    phase: int
    freeze_at: int
    route: str  # "" when the sweep never started (stopped before)
    route_reason: str
    stop: str  # ENDED | DIVERGED | NOT_FINITE | TIME_CAP | STOPPED | FAILED
    stop_reason: str
    planned_steps: int
    beta: float
    loss_floor: float = 0.0  # a guess's loss: below it no loss counted as blown up
    start_rate: float = START_RATE
    end_rate: float = END_RATE
    max_seconds: float = DEFAULT_MAX_SECONDS
    seconds: float = 0.0  # the sweep's steps, warm-up included
    prepare_seconds: float = 0.0  # decoding, features, and phase 1 for a phase-2 sweep
    image_size: int = 0
    batch_size: int = 0
    marked_rates: tuple[float, ...] = field(default=MARKED_RATES)

    @property
    def steps(self) -> int:
        return len(self.rates)

    @property
    def total_seconds(self) -> float:
        return self.prepare_seconds + self.seconds

    @property
    def _first_counted(self) -> int:
        return int(self.planned_steps * LEFT_OUT_SHARE)

    @property
    def suggested_index(self) -> int | None:
        """The valley's point (see the module's docstring), None for a curve too short to read."""
        first = self._first_counted
        if self.steps - first < 3:
            return None
        index = valley_index(self.smoothed[first:])
        return None if index is None else first + index

    @property
    def suggested_rate(self) -> float | None:
        index = self.suggested_index
        return None if index is None else self.rates[index]

    @property
    def minimum_index(self) -> int | None:
        first = self._first_counted
        if self.steps - first < 1:
            return None
        counted = self.smoothed[first:]
        return first + counted.index(min(counted))

    @property
    def minimum_rate(self) -> float | None:
        """The rate at the smoothed loss's minimum: already too fast; its tenth is the older rule of thumb."""
        index = self.minimum_index
        return None if index is None else self.rates[index]

    @property
    def minimum_loss(self) -> float | None:
        index = self.minimum_index
        return None if index is None else self.smoothed[index]

    @property
    def falls(self) -> bool:
        """Whether the smoothed loss ever fell clearly below where it started (by a tenth).

        A curve that only rises (a head that already fits the batches, in a phase-2 sweep) has its minimum
        wherever noise put it: its rate / 10 means nothing; read where the curve starts to rise instead.
        """
        minimum = self.minimum_loss
        return bool(self.smoothed) and minimum is not None and minimum < FELL_SHARE * self.smoothed[0]

    def loss_at(self, rate: float) -> float | None:
        """The smoothed loss at `rate`, interpolated on the log axis; None outside the rates swept."""
        if self.steps == 0 or not self.rates[0] <= rate <= self.rates[-1]:
            return None
        for i in range(1, self.steps):
            if rate <= self.rates[i]:
                low, high = math.log(self.rates[i - 1]), math.log(self.rates[i])
                t = 0.0 if high == low else (math.log(rate) - low) / (high - low)
                return self.smoothed[i - 1] + t * (self.smoothed[i] - self.smoothed[i - 1])
        return self.smoothed[0]

    def marked_text(self, rate: float) -> str:
        """Where a marked rate falls on the curve, in words."""
        loss = self.loss_at(rate)
        if loss is not None:
            best = min(self.smoothed)
            ratio = f" ({loss / best:.1f}× the minimum)" if best > 0 else ""
            return f"{format_rate(rate)}: smoothed loss {loss:.3g}{ratio}"
        if self.steps and rate > self.rates[-1]:
            if self.stop in (DIVERGED, NOT_FINITE):
                return f"{format_rate(rate)}: not reached; the loss had blown up before ({self.stop_reason})"
            return f"{format_rate(rate)}: not reached ({self.stop_reason})"
        return f"{format_rate(rate)}: not swept"

    def to_json(self) -> JSONObject:
        """What `python -m tlcore lr-find --json` prints: the settings, the suggestions and the curve."""
        suggested, minimum = self.suggested_rate, self.minimum_rate
        return {
            "phase": self.phase,
            "freeze_at": self.freeze_at,
            "route": self.route,
            "route_reason": self.route_reason,
            "image_size": self.image_size,
            "batch_size": self.batch_size,
            "start_rate": self.start_rate,
            "end_rate": self.end_rate,
            "planned_steps": self.planned_steps,
            "steps": self.steps,
            "warmup_steps": WARMUP_STEPS,
            "smoothing_beta": round(self.beta, 4),
            "divergence_factor": DIVERGENCE_FACTOR,
            "loss_floor": round(self.loss_floor, 4),
            "stop": self.stop,
            "stop_reason": self.stop_reason,
            "max_seconds": self.max_seconds,
            "seconds": round(self.seconds, 2),
            "prepare_seconds": round(self.prepare_seconds, 2),
            "suggestion_method": SUGGESTION_METHOD,
            "suggested_rate": suggested,
            "minimum_loss_rate": minimum,
            "minimum_loss_rate_over_10": None if minimum is None else minimum / 10,
            "loss_falls": self.falls,
            "marked": [{"rate": r, "smoothed_loss": self.loss_at(r)} for r in self.marked_rates],
            "curve": [
                {"rate": rate, "loss": loss, "smoothed_loss": smoothed}
                for rate, loss, smoothed in zip(self.rates, self.losses, self.smoothed)
            ],
        }


def result_of(
    test: RangeTest | None,
    phase: int,
    freeze_at: int,
    route: str,
    route_reason: str,
    stop: str,
    stop_reason: str,
    **details: Any,
) -> LRFinderResult:
    """The result of a sweep's bookkeeping (`test` None: the sweep never started)."""
    return LRFinderResult(
        rates=tuple(test.rates) if test else (),
        losses=tuple(test.losses) if test else (),
        smoothed=tuple(test.smoothed) if test else (),
        phase=phase,
        freeze_at=freeze_at,
        route=route,
        route_reason=route_reason,
        stop=stop,
        stop_reason=stop_reason,
        planned_steps=len(test.schedule) if test else 0,
        beta=test.beta if test else 0.0,
        loss_floor=test.floor if test else 0.0,
        **details,
    )
