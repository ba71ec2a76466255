"""The Model page's learning-rate finder: a range test on the current settings, its curve, and "Use this rate".

The sweep runs in the background (`dashboard.tasks`) on request, keyed by the
dataset and the settings the sweep reads (`tlcore.lr_finder.relevant_config`:
not the rate it is finding), so setting the suggested rate keeps the curve on
the page, and any session asking for the same sweep shares it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import tasks
from dashboard.charts import lr_finder_chart
from dashboard.dataset_source import dataset_is_shared
from dashboard.model.actions import FINE_TUNE_RATES, LEARNING_RATES, nearest_rate
from dashboard.state import K, current_config, weights_ready
from tlcore.config import TrainConfig
from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.lr_finder import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_MAX_STEPS,
    DIVERGENCE_FACTOR,
    END_RATE,
    START_RATE,
    SUGGESTION_METHOD,
    WARMUP_STEPS,
    FinderStep,
    LRFinderResult,
    format_rate,
    relevant_config,
    sweep_freeze_at,
)
from tlcore.progress import BatchEnd, StepProgress
from tlcore.route import ROUTE_NAMES, planned_route

PHASE = "lr_find_phase"  # the phase picker's key (two-phase settings only)
USED = "lr_find_used"  # what "Use this rate" set, said once after the click
RUN_BUTTON, USE_BUTTON = "lr_find_run", "lr_find_use"
STAGES = {"decode": "images decoded", "extract": "images through the frozen layers"}
WHY = (
    "Too small a learning rate learns nothing in a few epochs; too big a one wrecks what the layers know, and "
    "pretrained conv layers stand much less than a new head. This range test (Smith 2017, as fastai's lr_find) "
    "trains a few dozen batches while raising the rate from tiny to huge: pick a rate where the loss still "
    "falls steeply, well before it shoots up."
)


def _task_key(info: DatasetInfo, config: TrainConfig, phase: int) -> tasks.TaskKey[LRFinderResult]:
    weights = Path(config.weights)
    stamp = weights.stat().st_mtime if weights.is_file() else 0.0  # a weights file rewritten is a new sweep
    return tasks.TaskKey(
        f"lrfind|{info.root}|{info.fingerprint()}|{phase}|{stamp}|{relevant_config(config, phase).to_json()}"
    )


def _start(info: DatasetInfo, config: TrainConfig, phase: int) -> None:
    def compute(progress: tasks.ProgressFn) -> LRFinderResult:
        from tlcore.tf.lr_finder import find_learning_rate
        from tlcore.tf.training import prepare_data

        def on_event(event: object) -> None:
            if isinstance(event, StepProgress):
                progress(event.done, event.total, STAGES.get(event.stage, event.stage))
            elif isinstance(event, BatchEnd):
                progress(event.batch, event.batches, f"batches of phase 1, epoch {event.epoch}")
            elif isinstance(event, FinderStep):
                progress(*((event.step, event.steps, "sweep steps") if event.steps else (event.step, WARMUP_STEPS)))

        data = prepare_data(info, config.image_size, on_event)
        return find_learning_rate(config, data, phase=phase, progress=on_event)

    key = _task_key(info, config, phase)
    tasks.start(key, "Sweeping the learning rate", compute, shared=dataset_is_shared())


def _use_rate(rate: float, phase: int) -> None:
    """Button callback: the slider of the swept phase set to its offered rate nearest the suggestion."""
    key, options = (K.ft_lr, FINE_TUNE_RATES) if phase == 2 else (K.learning_rate, LEARNING_RATES)
    chosen = nearest_rate(rate, options)
    st.session_state[key] = chosen
    nearest = "" if chosen == rate else f" (the slider's nearest rate to {format_rate(rate)})"
    what = "Phase 2 learning rate" if phase == 2 else "Learning rate"
    st.session_state[USED] = f"{what} set to {format_rate(chosen)}{nearest}."


def lr_finder_section(info: DatasetInfo) -> None:
    """Find a learning rate: the button, the sweep's progress, then its curve and the suggested rate."""
    st.subheader("Find a learning rate")
    st.write(WHY)
    try:
        config = current_config()
    except ValueError:
        st.info("Fix the settings above first: the sweep trains the model they describe.")
        return
    ready, message = weights_ready()
    if not ready:
        st.info(f"{message} The sweep needs the weights training would start from.")
        return
    phase = 1
    if config.fine_tune is not None:
        phase = st.radio(
            "Sweep for",
            [1, 2],
            format_func=lambda p: (
                f"phase {p}: freeze point {sweep_freeze_at(config, p)}"
                + (" (trains phase 1 first, as training would)" if p == 2 else "")
            ),
            horizontal=True,
            key=PHASE,
        )
    freeze_at = sweep_freeze_at(config, phase)
    route, _ = planned_route(config, freeze_at, info.num_images(TRAIN) + info.num_images(VALIDATION))
    st.caption(
        f"From {format_rate(START_RATE)} to {format_rate(END_RATE)} at freeze point {freeze_at} "
        f"({ROUTE_NAMES[route]}), at most {DEFAULT_MAX_STEPS} steps and {DEFAULT_MAX_SECONDS:.0f} s; "
        "the model training starts from is left as it is."
    )
    key = _task_key(info, config, phase)
    # A callback, so the click survives any rerun of the script that follows it.
    st.button("Sweep the learning rate", key=RUN_BUTTON, type="primary", on_click=_start, args=(info, config, phase))
    task = tasks.find(key, shared=dataset_is_shared())
    if task is None:
        return
    result = tasks.result_when_ready(task)
    if result is not None:
        _show(result, task.seconds)


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _show(result: LRFinderResult, seconds: float) -> None:
    if result.steps < 2:
        st.warning(f"No curve to show: {result.stop_reason}.")
        return
    curve = pd.DataFrame({"rate": result.rates, "smoothed loss": result.smoothed, "loss": result.losses})
    # Every point but the last is within the stop rule's threshold (or the sweep's start): the axis ends there,
    # so the one step that blew up does not flatten the rest.
    threshold = max(DIVERGENCE_FACTOR * min(result.smoothed), result.loss_floor)
    ceiling = max([*result.smoothed[:-1], threshold])
    chart = lr_finder_chart(curve, result.marked_rates, result.suggested_rate, ceiling)
    st.altair_chart(chart, width="stretch")
    st.caption(
        f"Route: **{ROUTE_NAMES.get(result.route, result.route)}** at freeze point {result.freeze_at} "
        f"({result.route_reason}). **{result.steps} steps** of {result.planned_steps} planned in "
        f"**{_seconds(result.seconds)}**, after {_seconds(result.prepare_seconds)} of preparation "
        f"({_seconds(seconds)} in all); ended: {result.stop_reason}."
    )
    suggested, minimum = result.suggested_rate, result.minimum_rate
    left, right = st.columns(2)
    left.metric(
        "Suggested rate",
        format_rate(suggested) if suggested else "none",
        help=f"fastai's '{SUGGESTION_METHOD}': about half-way down the longest fall of the smoothed loss.",
    )
    right.metric(
        "Minimum's rate ÷ 10",
        format_rate(minimum / 10) if minimum and result.falls else "—",
        help="The rate where the smoothed loss was lowest, divided by 10: the lowest point is already too fast.",
    )
    st.markdown("\n".join(f"- {result.marked_text(rate)}" for rate in result.marked_rates))
    if not result.falls:
        st.info(
            "The loss never fell much below where it started: these layers already fit the batches, so the lowest "
            "point is wherever noise put it. Read where the curve starts to rise, and stay well below that."
        )
    if used := st.session_state.pop(USED, None):
        st.success(used)
    st.button(
        "Use this rate",
        key=USE_BUTTON,
        on_click=_use_rate,
        args=(suggested or 0.0, result.phase),
        disabled=suggested is None,
        help="Sets the learning rate of the phase swept to the offered rate nearest the suggestion.",
    )
