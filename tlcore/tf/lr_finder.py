"""The learning-rate range test on a TrainConfig: what `tlcore.lr_finder` describes, run with Keras.

The sweep takes the route training would take at the same freeze point
(`route_for`): with the frozen layers' features computed once (`cut`,
`extract_features`) when only the layers above train on unchanging pixels,
else end to end. Each step is one `train_on_batch` on a full training batch
(batches in each epoch's seeded order, `pipeline.epoch_order`), with the
optimizer's rate set before it; Keras resets the loss tracker in
`train_on_batch`, so the loss it returns is that batch's own.

A phase-2 sweep first trains phase 1 as the config says (`train`), as real
training would before unfreezing, then sweeps with the layers above
fine_tune.freeze_at trainable.

Nothing the next training starts from changes: the model's variables (weights
and the dropout layers' random state) and layers' trainable flags are put
back afterwards, and the sweep compiles its own models, never the one passed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import keras
import numpy as np

from tlcore.backbones import get_backbone
from tlcore.config import TrainConfig
from tlcore.devices import check_precision
from tlcore.lr_finder import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_MAX_STEPS,
    END_RATE,
    FAILED,
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
from tlcore.progress import ProgressFn, StopFlag
from tlcore.records import COMPLETED
from tlcore.route import CACHED, DEFAULT_FEATURE_BUDGET_BYTES
from tlcore.tf.augment import build_augmenter
from tlcore.tf.build import balanced_class_weights, build_for, compile_for
from tlcore.tf.cached_route import cut, extract_features, route_for
from tlcore.tf.devices import device_report
from tlcore.tf.model import param_counts, set_freeze_point
from tlcore.tf.pipeline import PreparedData, batches, epoch_order
from tlcore.tf.training import train

BatchFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # indices -> (inputs, targets)


def _snapshot(model: keras.Model) -> tuple[list[np.ndarray], list[bool]]:
    return [np.array(v.numpy(), copy=True) for v in model.variables], [layer.trainable for layer in model.layers]


def _restore(model: keras.Model, saved: tuple[list[np.ndarray], list[bool]]) -> None:
    values, trainable = saved
    for variable, value in zip(model.variables, values):
        variable.assign(value)
    for layer, flag in zip(model.layers, trainable):
        layer.trainable = flag


def index_batches(n: int, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """Index batches for as many steps as asked: each epoch in its seeded order, full batches only.

    A short last batch would have a noisier loss and make Keras trace the step again (seconds at the
    start of a sweep's timing); with fewer images than a batch, every batch is all of them.
    """
    epoch = 1
    while True:
        order = epoch_order(n, seed, epoch)
        full = [b for b in batches(n, batch_size, order) if len(b) == batch_size] or [order]
        yield from full
        epoch += 1


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
        stop: read before every step; a stopped sweep returns the curve so far.

    Raises:
        ValueError: a phase the config does not have.
        PrecisionUnsupported: a precision this machine's device does not run.
    """
    started = time.perf_counter()
    relevant_config(config, phase)  # ValueError for a phase the config does not have
    check_precision(config.precision, device_report())
    report = progress or (lambda _event: None)
    model = model if model is not None else build_for(config, len(data.class_names))
    saved = _snapshot(model)
    try:
        return _sweep(
            config,
            data,
            phase,
            model,
            caps=(max_steps, max_seconds),
            rates=(start_rate, end_rate),
            report=report,
            stop=stop,
            started=started,
            feature_budget_bytes=feature_budget_bytes,
        )
    finally:
        _restore(model, saved)


def _sweep(
    config: TrainConfig,
    data: PreparedData,
    phase: int,
    model: keras.Model,
    caps: tuple[int, float],
    rates: tuple[float, float],
    report: ProgressFn,
    stop: StopFlag | None,
    started: float,
    feature_budget_bytes: int,
) -> LRFinderResult:
    (max_steps, max_seconds), (start_rate, end_rate) = caps, rates
    freeze_at = sweep_freeze_at(config, phase)
    details = {
        "start_rate": start_rate,
        "end_rate": end_rate,
        "max_seconds": max_seconds,
        "image_size": config.image_size,
        "batch_size": config.batch_size,
    }

    def unfinished(stop_code: str, reason: str, route: str = "", why: str = "") -> LRFinderResult:
        prepare = time.perf_counter() - started
        return result_of(None, phase, freeze_at, route, why, stop_code, reason, prepare_seconds=prepare, **details)

    if phase == 2:  # as training would: the head learns first, on the frozen backbone
        first = train(config.replace(fine_tune=None), data, model=model, progress=report, stop=stop)
        if first.status != COMPLETED:
            code = STOPPED if first.status == STOPPED else FAILED
            return unfinished(code, f"phase 1 did not finish: {first.reason}")

    set_freeze_point(model, freeze_at, get_backbone(config.backbone))
    route, why = route_for(config, model, freeze_at, data, feature_budget_bytes)
    trainable, frozen = param_counts(model)
    report(FinderStart(phase, freeze_at, route, why, trainable, frozen))
    labels = data.train.labels
    if route == CACHED:
        prefix, trained = cut(model, freeze_at)
        features = extract_features(prefix, data.train, 32, report, stop)
        if features is None:
            return unfinished(STOPPED, "stopped while extracting features", route, why)

        def inputs(idx: np.ndarray) -> np.ndarray:
            return features[idx]

    else:
        # A model of its own over the same layers: compiling it leaves the caller's model as it was.
        trained = keras.Model(model.inputs, model.outputs, name="lr_finder")
        augmenter = build_augmenter(config.augment, config.seed) if config.augment.enabled else None

        def inputs(idx: np.ndarray) -> np.ndarray:
            pixels = data.train.batch_arrays(idx).astype(np.float32)
            return np.asarray(augmenter(pixels, training=True)) if augmenter is not None else pixels

    def targets(idx: np.ndarray) -> np.ndarray:
        if config.head.output == "sigmoid":  # BinaryCrossentropy wants float targets shaped like the output
            return labels[idx].reshape(-1, 1).astype(np.float32)
        return labels[idx]

    class_weight = balanced_class_weights(labels, len(data.class_names)) if config.balance_classes else None
    compile_for(trained, config, start_rate)
    source = index_batches(len(labels), config.batch_size, config.seed)
    prepare_seconds = time.perf_counter() - started

    def step(rate: float) -> float:
        trained.optimizer.learning_rate = rate
        idx = next(source)
        logs = trained.train_on_batch(inputs(idx), targets(idx), class_weight=class_weight, return_dict=True)
        return float(logs["loss"])

    sweep_started = time.perf_counter()
    stop_code, rate = "", start_rate
    for warmup in range(1, WARMUP_STEPS + 1):
        if stop is not None and stop.is_set():
            return unfinished(STOPPED, stop_text(STOPPED, start_rate), route, why)
        step_started = time.perf_counter()
        loss = step(start_rate)
        report(FinderStep(warmup, 0, start_rate, loss, None))
    step_seconds = time.perf_counter() - step_started
    steps = planned_steps(max_steps, max_seconds - (time.perf_counter() - sweep_started), step_seconds)
    test = RangeTest(steps, start_rate, end_rate, floor=guess_loss(len(data.class_names)))
    done = 0
    while not stop_code:
        if stop is not None and stop.is_set():
            stop_code = STOPPED
            break
        if time.perf_counter() - sweep_started > max_seconds:
            stop_code = TIME_CAP
            break
        rate = test.next_rate()
        loss = step(rate)
        stop_code = test.record(loss)
        done += 1
        report(FinderStep(done, steps, rate, loss, test.smoothed[-1] if test.smoothed else None))
    return result_of(
        test,
        phase,
        freeze_at,
        route,
        why,
        stop_code,
        stop_text(stop_code, rate),
        seconds=time.perf_counter() - sweep_started,
        prepare_seconds=prepare_seconds,
        **details,
    )
