"""The learning-rate range test on a TrainConfig: `LRRangeTest`, a Keras callback, run on training's own `train`.

fastai's shape: the callback raises the rate before every batch, records that batch's loss and stops the fit
once the loss diverges (`tlcore.lr_finder` holds the schedule, smoothing, stop rule and suggestion). The sweep
takes the route training takes at the same freeze point, on whole training batches in each epoch's seeded order,
one batch per compiled call. A phase-2 sweep first trains phase 1 as the config says. The caller's model is
never compiled, and its variables and trainable flags are put back afterwards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import keras
import numpy as np

from tlcore.config import TrainConfig
from tlcore.devices import check_precision
from tlcore.lr_finder import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_MAX_STEPS,
    END_RATE,
    FAILED,
    NOT_FINITE,
    START_RATE,
    STOPPED,
    TIME_CAP,
    WARMUP_STEPS,
    FinderStart,
    FinderStep,
    LRFinderResult,
    RangeTest,
    guess_loss,
    planned_steps,
    relevant_config,
    result_of,
    stop_text,
    sweep_freeze_at,
)
from tlcore.progress import PhaseStart, ProgressFn, StepProgress, StopFlag
from tlcore.records import COMPLETED
from tlcore.route import CACHED, DEFAULT_FEATURE_BUDGET_BYTES
from tlcore.tf.build import build_for
from tlcore.tf.devices import device_report
from tlcore.tf.pipeline import ImageSet, PreparedData
from tlcore.tf.training import train


class LRRangeTest(keras.callbacks.Callback):
    """The range test as a callback: WARMUP_STEPS batches at the start rate, then one `RangeTest` step a batch.

    Before each batch it sets the optimizer's rate and resets the metrics, so the batch's logs hold that batch's
    own loss; after it, the loss is recorded and a FinderStep reported. The fit stops when the test ends
    (`stop_code`: the end rate, divergence, a loss that is not a number), on Stop, or at the time cap. The
    second warm-up batch is timed to plan the steps that fit in `max_seconds` (`planned_steps`).
    """

    def __init__(
        self,
        max_steps: int = DEFAULT_MAX_STEPS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        rates: tuple[float, float] = (START_RATE, END_RATE),
        floor: float = 0.0,
        report: ProgressFn | None = None,
        stop: StopFlag | None = None,
    ) -> None:
        super().__init__()
        self.max_steps, self.max_seconds, self.rates, self.floor = max_steps, max_seconds, rates, floor
        self.report = report or (lambda _event: None)
        self.stop = stop
        self.began: float | None = None  # when the fit began (None: it never did)
        self.range_test: RangeTest | None = None  # made once the warm-up has timed a step
        self.stop_code, self.rate, self.batches, self.seconds, self.batch_started = "", rates[0], 0, 0.0, 0.0

    def on_train_begin(self, logs: Mapping[str, float] | None = None) -> None:
        self.began, self.range_test, self.stop_code, self.batches = time.perf_counter(), None, "", 0

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        self.rate = self.range_test.next_rate() if self.range_test is not None else self.rates[0]
        self.model.optimizer.learning_rate = self.rate
        self.model.reset_metrics()  # the batch's logs then hold its own loss, as train_on_batch's do
        self.batch_started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Mapping[str, float] | None = None) -> None:
        loss = float((logs or {}).get("loss", math.nan))
        self.batches += 1
        if self.range_test is None:
            self.report(FinderStep(self.batches, 0, self.rate, loss, None))
            if self.batches == WARMUP_STEPS:
                now = time.perf_counter()
                seconds_left = self.max_seconds - (now - self._began())
                steps = planned_steps(self.max_steps, seconds_left, now - self.batch_started)
                self.range_test = RangeTest(steps, *self.rates, floor=self.floor)
        else:
            self.stop_code = self.range_test.record(loss)
            smoothed = self.range_test.smoothed[-1] if self.range_test.smoothed else None
            self.report(
                FinderStep(self.batches - WARMUP_STEPS, len(self.range_test.schedule), self.rate, loss, smoothed)
            )
        if not self.stop_code and self.stop is not None and self.stop.is_set():
            self.stop_code = STOPPED
        elif (
            not self.stop_code
            and self.range_test is not None
            and time.perf_counter() - self._began() > self.max_seconds
        ):
            self.stop_code = TIME_CAP
        self.model.stop_training = self.model.stop_training or bool(self.stop_code)

    def on_train_end(self, logs: Mapping[str, float] | None = None) -> None:
        self.seconds = time.perf_counter() - self._began()

    def _began(self) -> float:
        return self.began if self.began is not None else time.perf_counter()


def find_learning_rate(
    config: TrainConfig,
    data: PreparedData,
    phase: int = 1,
    model: keras.Model | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    start_rate: float = START_RATE,
    end_rate: float = END_RATE,
    progress: ProgressFn | None = None,
    stop: StopFlag | None = None,
    feature_budget_bytes: int = DEFAULT_FEATURE_BUDGET_BYTES,
) -> LRFinderResult:
    """Sweep the learning rate for one phase of `config` on the training split of `data`.

    Args:
        model: the model to sweep (its variables and trainable flags are restored afterwards); by default
            `build_for(config, ...)`, the model training would start from.
        max_steps, max_seconds: caps on the sweep's steps and on its seconds (the warm-up steps included;
            decoding, features and a phase-2 sweep's phase 1 come before and are timed apart).
        progress: receives StepProgress (features), phase 1's training events (phase 2), FinderStart and
            one FinderStep per step.
        stop: read after every step; a stopped sweep returns the curve so far.

    Raises:
        ValueError: a phase the config does not have.
        PrecisionUnsupported: a precision this machine's device does not run.
    """
    started = time.perf_counter()
    relevant_config(config, phase)  # ValueError for a phase the config does not have
    check_precision(config.precision, device_report())
    report = progress or (lambda _event: None)
    model = model if model is not None else build_for(config, len(data.class_names))
    saved = [np.array(v.numpy(), copy=True) for v in model.variables], [layer.trainable for layer in model.layers]
    # A model of its own over the same layers: compiling it leaves the caller's model as it was.
    swept = keras.Model(model.inputs, model.outputs, name="lr_finder")
    freeze_at = sweep_freeze_at(config, phase)
    details = {"start_rate": start_rate, "end_rate": end_rate, "max_seconds": max_seconds}
    details.update(image_size=config.image_size, batch_size=config.batch_size)
    try:
        if phase == 2:  # as training would: the head learns first, on the frozen backbone
            first = train(config.replace(fine_tune=None), data, model=swept, progress=report, stop=stop)
            if first.status != COMPLETED:
                code, reason = STOPPED if first.status == STOPPED else FAILED, f"phase 1 did not finish: {first.reason}"
                prepare = time.perf_counter() - started
                return result_of(None, phase, freeze_at, "", "", code, reason, prepare_seconds=prepare, **details)
        floor = guess_loss(len(data.class_names))
        finder = LRRangeTest(max_steps, max_seconds, (start_rate, end_rate), floor, report=report, stop=stop)
        route, why, code, reason = _sweep(config, data, phase, freeze_at, swept, finder, feature_budget_bytes)
        prepare = (finder.began or time.perf_counter()) - started
        return result_of(
            finder.range_test,
            phase,
            freeze_at,
            route,
            why,
            code,
            reason,
            seconds=finder.seconds,
            prepare_seconds=prepare,
            **details,
        )
    finally:
        for variable, value in zip(model.variables, saved[0]):
            variable.assign(value)
        for layer, flag in zip(model.layers, saved[1]):
            layer.trainable = flag


def _sweep(
    config: TrainConfig,
    data: PreparedData,
    phase: int,
    freeze_at: int,
    swept: keras.Model,
    finder: LRRangeTest,
    feature_budget_bytes: int,
) -> tuple[str, str, str, str]:
    """Run the range test as one phase of `train` at `freeze_at`: (route, why, stop code, stop reason)."""
    route = ["", ""]

    def on_event(event: object) -> None:
        """The sweep's own events: its start and the features' extraction, not training's epochs and batches."""
        if isinstance(event, PhaseStart):
            route[:] = [event.route, event.route_reason]
            trainable, frozen = event.trainable_params, event.frozen_params
            finder.report(FinderStart(phase, freeze_at, event.route, event.route_reason, trainable, frozen))
        elif isinstance(event, StepProgress):
            finder.report(event)

    batches_per_epoch = max(1, len(data.train) // config.batch_size)
    sweep_config = config.replace(
        freeze_at=freeze_at,
        fine_tune=None,
        learning_rate=finder.rates[0],
        epochs=math.ceil((WARMUP_STEPS + max(finder.max_steps, 2)) / batches_per_epoch),  # more than the test takes
        min_steps=0,  # the batch size as set
        early_stopping_patience=None,
        reduce_lr_on_plateau=False,
    )
    # The training split only: nothing is validated, and no validation features are computed.
    train_only = PreparedData(data.info, data.train, _empty_like(data.train))
    outcome = train(
        sweep_config,
        train_only,
        model=swept,
        progress=on_event,
        stop=finder.stop,
        feature_budget_bytes=feature_budget_bytes,
        callbacks=[finder],
        drop_remainder=True,
        batches_per_call=1,
    )
    code, reason = finder.stop_code, stop_text(finder.stop_code, finder.rate)
    if finder.began is None:  # stopped before the first step: while extracting features, or before the fit
        code = STOPPED if outcome.status == STOPPED else FAILED
        reason = outcome.reason if route[0] == CACHED else stop_text(code, finder.rates[0])
    elif not code and outcome.status != COMPLETED:  # training's own monitor ended it: a loss that is not a number
        code = STOPPED if outcome.status == STOPPED else NOT_FINITE
        reason = stop_text(code, finder.rate)
    return route[0], route[1], code, reason


def _empty_like(images: ImageSet) -> ImageSet:
    """A split with no images, at the same size and in the same place (memory or disk) as `images`."""
    size = images.image_size
    pixels = np.zeros((0, size, size, 3), dtype=np.uint8) if images.in_memory else None
    return ImageSet([], np.zeros(0, dtype=np.int32), size, pixels)
