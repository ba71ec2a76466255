"""The Train page's view of a job: what it runs, where it stands, its curves.

Watching must cost the run nothing. On a 2-core machine every millisecond
the page's script thread spends is taken from training (and TensorFlow's
thread pool stalls when one of its threads loses its core), so a live redraw
reuses everything that did not change: the curves are built into Vega-Lite
specs once per new epoch and kept in the session, and a tick only re-sends
them. Nothing here reads the disk.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.charts import live_curves_chart
from tlcore.config import SETTING_NAMES, TrainConfig
from tlcore.jobs import QUEUED, Job, Snapshot

REFRESH_S = 1.0  # how often a running job is redrawn
STAGE_LABELS = {
    "decode": "Decoding images",
    "extract": "Computing frozen features (once)",
    "extract-2": "Computing frozen features for phase 2 (once)",
}
STATUS_TEXT = {
    "running": ":green[running]",
    "completed": ":blue[completed]",
    "stopped": ":orange[stopped]",
    "failed": ":red[failed]",
}
CURVES = (("loss", "Loss"), ("accuracy", "Accuracy"))
_SPECS = "live_curve_specs"  # session key: {(job id, metric): (epochs drawn, spec)}


def describe_setup(config: TrainConfig, n_train: int, n_val: int, route: str) -> str:
    """One line of what a run trains: images, size, freeze point, weights, epochs and path."""
    phase_two = (
        f", then {config.fine_tune.epochs} at freeze point {config.fine_tune.freeze_at}" if config.fine_tune else ""
    )
    return (
        f"**{n_train} training / {n_val} validation images** at {config.image_size} px · "
        f"freeze point **{config.freeze_at}** · weights **{config.weights_label}** · "
        f"{config.epochs} epoch(s){phase_two} · path: **{route.replace('_', ' ')}**"
    )


def setting_changes(job: Job, current: TrainConfig, dataset_root: str) -> list[str]:
    """How the session's current settings differ from the job's own, in words; [] when they agree."""
    differences = job.config.differences(current) if job.config is not None else []
    changes = [f"{SETTING_NAMES.get(key, key)}: {mine} (this run: {theirs})" for key, theirs, mine in differences]
    if job.dataset_root and dataset_root != job.dataset_root:
        changes.insert(0, f"dataset: {dataset_root} (this run: {job.dataset_root})")
    return changes


def _curve_spec(job_id: str, history: list[dict[str, Any]], metric: str, title: str) -> dict[str, Any]:
    """The chart of `metric`, built only when an epoch was added since the last draw."""
    cache = st.session_state.setdefault(_SPECS, {})
    drawn = cache.get((job_id, metric))
    if drawn is None or drawn[0] != len(history):
        for key in [k for k in cache if k[0] != job_id]:  # an earlier job's charts are not drawn again
            del cache[key]
        drawn = cache[(job_id, metric)] = (len(history), live_curves_chart(history, metric, title).to_dict())
    return dict(drawn[1])  # Streamlit moves the data out of the top-level spec: give it a copy


def _progress(snap: Snapshot) -> None:
    """One labelled bar per stage, each only moving forward; training's bar counts epochs and batches."""
    for stage, (done, total) in snap.stages.items():
        if total:
            st.progress(min(done / total, 1.0), text=f"{STAGE_LABELS.get(stage, stage)}: {done}/{total}")
    if not snap.epochs_total or not (snap.batches or snap.history):
        return
    where = f"epoch {snap.epoch}/{snap.epochs_total}, batch {snap.batch}/{snap.batches}"
    if snap.status == "running":
        text = f"Training: {where}"
    elif snap.status == "completed":
        text = f"Training: all {snap.epochs_total} epochs done"
    else:
        text = f"Training {snap.status} at {where}"
    st.progress(snap.fraction(), text=text)


def draw(job: Job, snap: Snapshot) -> None:
    """Everything the Train page shows of a job at one moment."""
    queued = snap.stage == QUEUED
    st.subheader(f"Run status: {':gray[waiting]' if queued else STATUS_TEXT.get(snap.status, snap.status)}")
    if queued:
        st.info(snap.message)
    if snap.route:
        st.caption(f"Path: **{snap.route.replace('_', ' ')}** — {snap.route_reason}.")
    for phase, created in snap.features_reused.items():
        which = " for phase 2" if phase > 1 else ""
        st.caption(
            f"Frozen features **reused**{which} from the feature store (computed {created}): same images, size, "
            "weights and freeze point, so no image went through the frozen layers again."
        )
    if snap.run_dir:
        st.caption(f"Run folder: `{snap.run_dir}`")
    if snap.device or snap.worker:
        where = f" by the Ray worker **{snap.worker}**" if snap.worker else ""
        st.caption(f"Trained{where} on **{snap.device or 'its device'}**.")
    _progress(snap)
    left_s = snap.seconds_left()
    cols = st.columns(3)
    cols[0].metric("Elapsed", f"{snap.elapsed:.0f} s")
    cols[1].metric("Time left", f"{left_s:.0f} s" if left_s is not None else "—")
    cols[2].metric("Epochs done", f"{len(snap.history)}/{snap.epochs_total}")
    if snap.history:
        for column, (metric, title) in zip(st.columns(2), CURVES):
            column.vega_lite_chart(_curve_spec(job.id, snap.history, metric, title), width="stretch")
        if any(r["phase"] > 1 for r in snap.history):
            boundary = next(r["epoch"] for r in snap.history if r["phase"] > 1)
            st.caption(
                f"Dashed line: fine-tuning (phase 2, lower learning rate, deeper unfreezing) "
                f"starts at epoch {boundary}."
            )
    if snap.error:
        st.error(f"The run failed: {snap.error}")
    elif snap.reason and snap.status != "running":
        st.warning(snap.reason)
