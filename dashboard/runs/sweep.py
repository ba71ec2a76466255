"""The Runs page's sweep panel: one run per freeze point plus from scratch, started, watched and compared."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from dashboard.charts import curves_chart, sweep_charts
from dashboard.dataset_source import current_dataset
from dashboard.identity import actor, class_limits, owner, run_store
from dashboard.state import K, current_config, weights_ready
from dashboard.tables import saved_sweep_frame, sweep_ids, sweep_points_frame
from dashboard.train.live_view import STAGE_LABELS
from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.backend import ClusterError
from tlcore.baselines import run_baselines
from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.estimate import describe_sweep
from tlcore.jobs import JOBS, Job, JobBusy, SweepProgress, start_sweep
from tlcore.runs import RunSummary
from tlcore.speed import machine_speed
from tlcore.sweep import DEFAULT_IMAGE_SIZE, DEFAULT_POINTS, SCRATCH, plan, point_label
from tlcore.waits import cap_job, start_refusal

PERCENT = st.column_config.NumberColumn(format="percent")


def _start_sweep() -> None:
    s = st.session_state
    if not isinstance(info := current_dataset(), DatasetInfo):
        return  # the button is disabled until a dataset is scanned
    base = current_config().replace(epochs=int(s["sweep_epochs"]))
    points, scratch = s["sweep_points"], bool(s["sweep_scratch"])
    store, limits = run_store(), class_limits()
    try:
        # One job under the class's limits and the run quota: every point is a run kept with its model.
        runs = [config for _, config in plan(base, points, scratch=scratch)]
        if problem := start_refusal(store, runs, info, limits, kept=len(runs)):
            s["sweep_notice"] = problem
            return
        job = start_sweep(owner(), base, info, points, scratch=scratch, store=store)
        s["sweep_job_id"] = job.id
    except (JobBusy, ClusterError, ValueError) as err:
        s["sweep_notice"] = str(err)
        return
    cap_job(job, limits)


def _estimate_caption(info: DatasetInfo) -> str:
    """The sweep's estimated time before it starts, or why there is none yet."""
    s = st.session_state
    try:
        return (
            "Estimated time: "
            + describe_sweep(
                current_config().replace(epochs=int(s["sweep_epochs"])),
                s["sweep_points"],
                bool(s["sweep_scratch"]),
                info.num_images(TRAIN),
                info.num_images(VALIDATION),
                machine_speed(run_store().root),
            )
            + "."
        )
    except ValueError as err:
        return f"No estimate yet: {err}"


def sweep_section(summaries: Sequence[RunSummary]) -> None:
    """The saved sweeps' results first (what a teacher shows), then the controls that start a new one."""
    st.subheader("Sweep: how much of VGG16 should stay frozen?")
    if ids := sweep_ids(summaries):
        saved_sweep(summaries, st.selectbox("Saved sweep", ids, key="sweep_pick"))
    st.markdown("**A new sweep**")
    st.caption(
        f"The same head at several freeze points, plus the same model from random weights, at the sidebar's "
        f"{st.session_state[K.image_size]} px (a sweep's default: {DEFAULT_IMAGE_SIZE} px). One run per point."
    )
    for key, default in (("sweep_points", list(DEFAULT_POINTS)), ("sweep_epochs", 5), ("sweep_scratch", True)):
        st.session_state[key] = st.session_state.get(key, default)  # kept while other pages run
    left, right = st.columns([3, 1])
    left.multiselect("Freeze points", list(range(VGG16_LAYERS + 1)), key="sweep_points", format_func=point_label)
    right.number_input("Epochs per point", 1, 100, key="sweep_epochs")
    st.checkbox(
        "Include from scratch",
        key="sweep_scratch",
        help="From scratch: random weights, every layer trains (freeze 0): the no-transfer baseline.",
    )
    info, (weights_ok, message) = current_dataset(), weights_ready()
    running = (job := JOBS.get(st.session_state.get("sweep_job_id"), actor())) is not None and job.running
    with st.container(horizontal=True):
        st.button(
            "Start sweep",
            key="start_sweep",
            type="primary",
            on_click=_start_sweep,
            disabled=running or not weights_ok or info is None or isinstance(info, Exception),
        )
        st.button("Stop sweep", key="stop_sweep", on_click=job.stop if job else None, disabled=not running)
    if notice := st.session_state.pop("sweep_notice", None):
        st.warning(notice)
    if not running and info is not None and not isinstance(info, Exception):
        st.caption(_estimate_caption(info))
    if not weights_ok:
        st.caption(f"{message} Choose weights in the sidebar to start a sweep.")
    if running and job is not None:
        sweep_progress(job)
    elif job is not None and job.snapshot().error:
        st.error(f"The sweep failed: {job.snapshot().error}")


def saved_sweep(summaries: Sequence[RunSummary], sweep_id: str) -> None:
    """A saved sweep: accuracy and time per epoch against the freeze point, its table, every point's curves."""
    table = saved_sweep_frame(summaries, sweep_id)
    points = [s for s in summaries if s.run_id in set(table["run"])]
    baselines = run_baselines(points[0].record) if points else []
    for column, chart in zip(st.columns(2), sweep_charts(table, baselines)):
        column.altair_chart(chart, width="stretch", theme="streamlit")
    st.caption(
        "Notice: freezing more layers makes each epoch much cheaper; with few images the pretrained "
        "features (few trainable layers) tend to beat training more of the network, and every "
        "pretrained point should beat the dashed from-scratch line and the dotted chance line."
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "best val acc": PERCENT,
            "final val acc": PERCENT,
            "s/epoch": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    # The legend in numeric order, as on the freeze slider: k=0, k=3, ... k=18, then from scratch.
    by_point = {s.tags["point"]: s for s in points}
    pretrained = table[table["point"] != SCRATCH].sort_values("freeze_at")["point"]
    ordered = [*pretrained, *table[table["point"] == SCRATCH]["point"]]
    curves = {point: by_point[point].history for point in ordered if point in by_point}
    for column, metric, title in zip(
        st.columns(2),
        ("val_accuracy", "val_loss"),
        ("Validation accuracy of every point", "Validation loss of every point"),
    ):
        column.altair_chart(curves_chart(curves, metric, title, baselines), width="stretch", theme="streamlit")


SWEEP_STAGES = {"decode": STAGE_LABELS["decode"], "extract": "Frozen features of every point, in one pass"}


@st.fragment(run_every=1.0)
def sweep_progress(job: Job) -> None:
    snap = job.snapshot()
    sweep = snap.sweep or SweepProgress(sweep_id="", total_points=1)  # none yet while the job waits for a slot
    current, total = sweep.current, max(sweep.total_points, 1)
    if current:
        st.progress((current.index - 1) / total, text=f"Point {current.index}/{total}: {current.label}")
    else:  # before the first point: decoding, then every cached point's features in one pass
        for stage, (done, count) in snap.stages.items():
            if count:
                st.progress(min(done / count, 1.0), text=f"{SWEEP_STAGES.get(stage, stage)}: {done}/{count} images")
    if snap.batches:
        st.progress(snap.fraction(), text=f"Epoch {snap.epoch}/{snap.epochs_total}: batch {snap.batch}/{snap.batches}")
    if sweep.points:
        st.dataframe(sweep_points_frame([point.to_dict() for point in sweep.points]), hide_index=True)
    if snap.done:
        st.rerun()  # the whole page: the finished sweep appears among the saved ones
