"""The Runs page's transfer curve (Yosinski et al. 2014): started as a job, watched, drawn with its sentences."""

from __future__ import annotations

import streamlit as st

from dashboard.charts import transfer_curve_chart
from dashboard.dataset_source import current_dataset
from dashboard.identity import actor, owner, run_store
from dashboard.state import current_config, weights_ready
from tlcore.backbone_facts import VGG16_LAYERS, VGG16_MIN_IMAGE_SIZE
from tlcore.backend import ClusterError
from tlcore.config import TrainConfig
from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.estimate import estimate_many, human_seconds
from tlcore.jobs import JOBS, Job, JobBusy, start_transfer_curve
from tlcore.speed import machine_speed
from tlcore.sweep import point_label
from tlcore.transfer_curve import (
    CURVE_STAGE,
    DEFAULT_EPOCHS,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_POINTS,
    DEFAULT_REPEATS,
    TransferCurve,
    planned_runs,
)

JOB_KEY, RESULT_KEY, NOTICE_KEY = "curve_job_id", "curve_result", "curve_notice"
# The curve's own settings (kept while other pages run): key -> default.
POINTS_KEY, EPOCHS_KEY, REPEATS_KEY, SIZE_KEY = "curve_points", "curve_epochs", "curve_repeats", "curve_image_size"
DEFAULTS = {
    POINTS_KEY: list(DEFAULT_POINTS),
    EPOCHS_KEY: DEFAULT_EPOCHS,
    REPEATS_KEY: DEFAULT_REPEATS,
    SIZE_KEY: DEFAULT_IMAGE_SIZE,
}
WHY = (
    "Yosinski et al. (2014) asked how far up a network features stay general. At each freeze point n: the "
    "ImageNet layers up to n are **kept** and frozen while the layers above train from their ImageNet weights; "
    "or the layers above are **re-initialised** and trained from scratch; or the kept network is then "
    "**fine-tuned** end to end at 1e-5; or **random** layers are frozen instead (the control). Each condition "
    "runs several times with its own seed: the band spans them."
)


def curve_settings() -> TrainConfig:
    """The sidebar's weights and settings at the curve's own size and epochs."""
    s = st.session_state
    return current_config().replace(image_size=int(s[SIZE_KEY]), epochs=int(s[EPOCHS_KEY]))


def _start() -> None:
    s = st.session_state
    if not isinstance(info := current_dataset(), DatasetInfo):
        return  # the button is disabled until a dataset is scanned
    try:
        job = start_transfer_curve(owner(), curve_settings(), info, s[POINTS_KEY], int(s[REPEATS_KEY]), run_store())
        s[JOB_KEY] = job.id
    except (JobBusy, ClusterError, ValueError) as err:
        s[NOTICE_KEY] = str(err)


def estimate_words(info: DatasetInfo) -> str:
    """How long the curve would take on this machine, before it starts (each run estimated as a run of its own)."""
    s = st.session_state
    runs = planned_runs(curve_settings(), s[POINTS_KEY], int(s[REPEATS_KEY]))
    seconds = estimate_many(
        (config for *_, config in runs),
        info.num_images(TRAIN),
        info.num_images(VALIDATION),
        machine_speed(run_store().root),
    )
    return (
        f"Estimated time: about {human_seconds(seconds)} for {len(runs)} runs at {s[SIZE_KEY]} px, "
        f"{s[EPOCHS_KEY]} epochs each (less: each frozen prefix is computed once for every condition and repeat)."
    )


def transfer_curve_section() -> None:
    """The last curve this session made (chart and sentences), then the controls that start one."""
    st.subheader("Transfer curve: what do VGG16's layers carry to your images?")
    st.write(WHY)
    s = st.session_state
    job = JOBS.get(s.get(JOB_KEY), actor())
    if job is not None and not job.running and isinstance(job.result, TransferCurve):
        s[RESULT_KEY] = job.result
    if isinstance(curve := s.get(RESULT_KEY), TransferCurve):
        st.altair_chart(transfer_curve_chart(curve), width="stretch", theme="streamlit")
        st.caption(f"{curve.summary} ({curve.repeats} repeat(s), {human_seconds(curve.seconds)}.)")
    for key, default in DEFAULTS.items():
        s[key] = s.get(key, default)  # kept while other pages run
    points, size, epochs, repeats = st.columns([3, 1, 1, 1])
    points.multiselect("Freeze points", list(range(VGG16_LAYERS + 1)), key=POINTS_KEY, format_func=point_label)
    size.number_input("Image size (px)", VGG16_MIN_IMAGE_SIZE, 224, key=SIZE_KEY)
    epochs.number_input("Epochs per run", 1, 50, key=EPOCHS_KEY)
    repeats.number_input("Repeats", 1, 5, key=REPEATS_KEY, help="Runs of each condition, each with its own seed.")
    info, (weights_ok, message) = current_dataset(), weights_ready()
    running = job is not None and job.running
    with st.container(horizontal=True):
        st.button(
            "Start transfer curve",
            key="start_curve",
            on_click=_start,
            disabled=running or not weights_ok or not isinstance(info, DatasetInfo) or not s[POINTS_KEY],
        )
        st.button("Stop curve", key="stop_curve", on_click=job.stop if job else None, disabled=not running)
    if notice := s.pop(NOTICE_KEY, None):
        st.warning(notice)
    if not weights_ok:
        st.caption(f"{message} Choose weights in the sidebar to start a curve.")
    elif isinstance(info, DatasetInfo) and not running and s[POINTS_KEY]:
        st.caption(estimate_words(info))
    if running and job is not None:
        curve_progress(job)
    elif job is not None and (snap := job.snapshot()).done and not isinstance(job.result, TransferCurve):
        st.warning(f"The curve did not finish: {snap.error or snap.reason}")


@st.fragment(run_every=1.0)
def curve_progress(job: Job) -> None:
    """Runs done of runs planned, while the curve trains."""
    snap = job.snapshot()
    done, total = snap.stages.get(CURVE_STAGE, (0, 0))
    if total:
        st.progress(min(done / total, 1.0), text=f"Transfer curve: {done} of {total} runs")
    else:
        st.caption(f"Transfer curve: {snap.message or 'decoding the images and starting'}...")
    if snap.done:
        st.rerun()  # the whole page: the finished curve appears above
