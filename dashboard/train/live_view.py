"""The Train page's view of a job: one status line, its curves, a compact line per stage, then the details.

The curves come first: on a projector at 1024 x 768 they sit right under Start / Stop and the status
line. Watching must cost the run nothing: on a 2-core machine every millisecond the page's script thread
spends is taken from training, so a redraw reuses what did not change (the curves are built into
Vega-Lite specs once per new epoch and kept in the session; the epoch in progress is one row appended to
a copy of their data). Nothing here reads the disk.
"""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from dashboard.charts import VegaSpec, live_curves_chart, with_running_point
from dashboard.identity import where
from dashboard.train.setting_words import value_words
from tlcore.backbones import NO_WEIGHTS
from tlcore.baselines import Baseline, accuracy_baselines, few_images_warning
from tlcore.config import TrainConfig
from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.history import History
from tlcore.jobs import COMPLETED, QUEUED, Job, Snapshot
from tlcore.route import ROUTE_NAMES
from tlcore.schedule import EARLY_STOPPING_NOTE, Schedule, schedule

REFRESH_S = 1.0  # how often a running job is redrawn
STAGE_LABELS = {
    "decode": "Decoding images",
    "extract": "Computing frozen features (once)",
    "extract-2": "Computing frozen features for phase 2 (once)",
}
STATUS_TEXT = {
    "running": ":green[**running**]",
    "completed": ":blue[**completed**]",
    "stopped": ":orange[**stopped**]",
    "failed": ":red[**failed**]",
}
CURVES = (("loss", "Loss"), ("accuracy", "Accuracy"))
_SPECS = "live_curve_specs"  # session key: {(job id, metric): (epochs drawn, spec)}


def describe_setup(config: TrainConfig, n_train: int, n_val: int, route: str, plan: Schedule) -> str:
    """One line of what a run trains: images, size, freeze point, weights, epochs and batches as planned, route."""
    first = plan.phases[0].epochs
    phase_two = (
        f", then {plan.phases[1].epochs} at freeze point {config.fine_tune.freeze_at}" if config.fine_tune else ""
    )
    weights = config.weights_label if config.weights == NO_WEIGHTS else value_words("weights", config.weights)
    return (
        f"**{n_train} training / {n_val} validation images** at {config.image_size} px · "
        f"freeze point **{config.freeze_at}** · weights **{weights}** · {first} epoch(s){phase_two} in batches "
        f"of {plan.batch_size} · route: **{ROUTE_NAMES.get(route, route)}**"
    )


def plan_for_info(config: TrainConfig, info: DatasetInfo, route: str) -> Schedule:
    """How long `config` would train on this dataset, its first phase taking `route`."""
    return schedule(config, info.num_images(TRAIN), info.class_counts(VALIDATION), route)


STATUS_PREFIX = "Run: "


def status_line(snap: Snapshot) -> str:
    """Where the job stands, in one line: its state, epoch and batch, time so far and time left."""
    if snap.stage == QUEUED:
        return f"{STATUS_PREFIX}:gray[**waiting**] · {snap.message}"
    parts = [STATUS_TEXT.get(snap.status, snap.status)]
    if snap.status == "running" and snap.stage == "starting":
        parts.append("loading TensorFlow and building the model")
    elif snap.status == "running" and snap.stage in STAGE_LABELS:
        done, total = snap.stages.get(snap.stage, (0, 0))
        parts.append(f"{STAGE_LABELS[snap.stage].lower()}: {done}/{total}")
    elif snap.epochs_total and (snap.history or snap.batches):
        within = f", batch {snap.batch}/{snap.batches}" if snap.status == "running" and snap.batches else ""
        parts.append(f"epoch {max(snap.epoch, len(snap.history))} of {snap.epochs_total}{within}")
    parts.append(f"{snap.elapsed:.0f} s")
    if (left := snap.seconds_left()) is not None:
        parts.append(f"about {left:.0f} s left")
    if snap.final and (accuracy := snap.final.get("val_accuracy")) is not None:
        parts.append(f"validation accuracy **{accuracy:.1%}**")
    return STATUS_PREFIX + " · ".join(parts)


def baselines_of(snap: Snapshot) -> list[Baseline]:
    return accuracy_baselines(snap.class_names, snap.validation_per_class)


def _curve_spec(job_id: str, history: History, metric: str, title: str, snap: Snapshot) -> VegaSpec:
    """The chart of `metric`, built only when an epoch was added since the last draw."""
    cache = st.session_state.setdefault(_SPECS, {})
    drawn = cache.get((job_id, metric))
    if drawn is None or drawn[0] != len(history):
        for key in [k for k in cache if k[0] != job_id]:  # an earlier job's charts are not drawn again
            del cache[key]
        chart = live_curves_chart(history, metric, title, baselines_of(snap))
        drawn = cache[(job_id, metric)] = (len(history), chart.to_dict())
    return dict(drawn[1])  # Streamlit moves the data out of the top-level spec: give it a copy


def _running_value(snap: Snapshot, metric: str) -> float | None:
    """The epoch in progress: its training metric so far, while its first batches have run and it is not done."""
    value = snap.batch_loss if metric == "loss" else snap.batch_accuracy
    in_progress = snap.status == "running" and 0 < snap.batch < snap.batches and snap.epoch > len(snap.history)
    return value if in_progress and math.isfinite(value) and (value > 0 or metric != "loss") else None


def curves(job: Job, snap: Snapshot) -> None:
    """Loss and accuracy side by side (stacked on a phone), growing within an epoch too."""
    if not snap.history and _running_value(snap, "loss") is None:
        return
    for column, (metric, title) in zip(st.columns(2), CURVES):
        spec = _curve_spec(job.id, snap.history, metric, title, snap)
        if (value := _running_value(snap, metric)) is not None:
            spec = with_running_point(spec, snap.epoch - 1 + snap.batch / snap.batches, value)
        column.vega_lite_chart(spec, width="stretch")


def stage_lines(snap: Snapshot) -> None:
    """One compact bar per stage, each only moving forward; training's counts epochs and batches."""
    for stage, (done, total) in snap.stages.items():
        if total:
            st.progress(min(done / total, 1.0), text=f"{STAGE_LABELS.get(stage, stage)}: {done}/{total}")
    if not snap.epochs_total or not (snap.batches or snap.history):
        return
    where = f"epoch {snap.epoch}/{snap.epochs_total}, batch {snap.batch}/{snap.batches}"
    if snap.status == "running":
        text = f"Training: {where}"
    elif snap.status == "completed":
        text = f"Training: all {len(snap.history)} epochs done"
    else:
        text = f"Training {snap.status} at {where}"
    st.progress(snap.fraction() if snap.status != "completed" else 1.0, text=text)


def notes(snap: Snapshot) -> None:
    """What the numbers are worth and how the run went: few images, the chosen epoch, route, store, folder."""
    if snap.schedule is not None and (warning := few_images_warning(snap.class_names, snap.validation_per_class)):
        st.warning(warning)
    if snap.kept_epoch is not None and snap.kept_epoch != len(snap.history):
        st.info(
            f"Early stopping kept the weights of epoch {snap.kept_epoch} (the lowest validation loss): the "
            "validation images also chose the epoch, so its validation accuracy flatters the model a little."
        )
    if snap.schedule is not None and snap.schedule.patience_off_reason:
        st.caption(f"Training length: {snap.schedule.patience_off_reason}.")
    if snap.route:
        st.caption(f"Route: **{ROUTE_NAMES.get(snap.route, snap.route)}** — {snap.route_reason}.")
    for phase, created in snap.features_reused.items():
        which = " for phase 2" if phase > 1 else ""
        st.caption(
            f"Frozen features **reused**{which} from the feature store (computed {created}): same images, size, "
            "weights and freeze point, so no image went through the frozen layers again."
        )
    if snap.run_dir:
        st.caption(f"Run folder: {where(snap.run_dir, f'`{Path(snap.run_dir).name}`')}")
    if snap.device or snap.worker:
        by_worker = f" by the Ray worker **{snap.worker}**" if snap.worker else ""
        st.caption(f"Trained{by_worker} on **{snap.device or 'its device'}**.")
    if any(r.phase > 1 for r in snap.history):
        boundary = next(r.epoch for r in snap.history if r.phase > 1)
        st.caption(
            f"Dashed line: fine-tuning (phase 2, lower learning rate, deeper unfreezing) starts at epoch {boundary}."
        )
    if snap.error:
        st.error(f"The run failed: {snap.error}")
    elif snap.status == COMPLETED and snap.reason.startswith(EARLY_STOPPING_NOTE):
        st.caption(snap.reason[0].upper() + snap.reason[1:] + ".")  # how it went, not a problem
    elif snap.reason and snap.status != "running":
        st.warning(snap.reason)


def show(job: Job, snap: Snapshot) -> None:
    """Everything the Train page shows of a job at one moment: status line, curves, stages, notes."""
    st.container(key="train_status").markdown(status_line(snap))
    curves(job, snap)
    stage_lines(snap)
    notes(snap)
