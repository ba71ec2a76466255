"""The Runs page's transfer curve (Yosinski et al. 2014): started as a job, watched, drawn with its sentences."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard.charts import transfer_curve_chart
from dashboard.dataset_source import current_dataset
from dashboard.devices import current_report
from dashboard.identity import actor, class_limits, owner, run_store
from dashboard.state import current_config, weights_ready
from tlcore.backbone_facts import VGG16_LAYERS, VGG16_MIN_IMAGE_SIZE
from tlcore.backend import ClusterError
from tlcore.config import TrainConfig
from tlcore.curve_records import CurveStore, SavedCurve
from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.devices import FLOAT32, PRECISION_NAMES
from tlcore.estimate import estimate_many, human_seconds
from tlcore.jobs import COMPLETED, CURVE_JOB, JOBS, RUNNING, Job, JobBusy, start_transfer_curve
from tlcore.runs import RunSummary
from tlcore.speed import machine_speed
from tlcore.sweep import point_label
from tlcore.transfer_curve import (
    CONDITION_WORDS,
    CONDITIONS,
    CURVE_STAGE,
    DEFAULT_EPOCHS,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_POINTS,
    DEFAULT_REPEATS,
    FINE_TUNE_PHASE,
    curve_base,
    planned_runs,
    shared_runs_note,
)
from tlcore.waits import cap_job, start_refusal

JOB_KEY, NOTICE_KEY, RUNS_SHOWN_KEY = "curve_job_id", "curve_notice", "curve_runs_shown"
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
    f"**fine-tuned** end to end for {FINE_TUNE_PHASE.epochs} more epochs at {FINE_TUNE_PHASE.learning_rate:g} "
    "(the lab's phase 2); or **random** layers are frozen instead (the control). Each condition runs several "
    "times with its own seed: the band spans them."
)


def curve_settings() -> TrainConfig:
    """The sidebar's weights and settings at the curve's own size and epochs, in this device's fastest precision."""
    s = st.session_state
    base = current_config().replace(image_size=int(s[SIZE_KEY]), epochs=int(s[EPOCHS_KEY]))
    return curve_base(base, current_report().fastest_precision())


def _start() -> None:
    s = st.session_state
    if not isinstance(info := current_dataset(), DatasetInfo):
        return  # the button is disabled until a dataset is scanned
    base, points, repeats = curve_settings(), s[POINTS_KEY], int(s[REPEATS_KEY])
    store, limits = run_store(), class_limits()
    try:
        # One job under the class's limits: each run's size and epochs, the whole curve's time (its runs keep
        # no model: outside the run quota).
        runs = [config for *_, config in planned_runs(base, points, repeats)]
        if problem := start_refusal(store, runs, info, limits, kept=0):
            s[NOTICE_KEY] = problem
            return
        job = start_transfer_curve(owner(), base, info, points, repeats, store)
        s[JOB_KEY] = job.id
    except (JobBusy, ClusterError, ValueError) as err:
        s[NOTICE_KEY] = str(err)
        return
    cap_job(job, limits)


def estimate_words(info: DatasetInfo) -> str:
    """How long the curve would take on this machine, before it starts (each run estimated as a run of its own)."""
    s = st.session_state
    base = curve_settings()
    runs = planned_runs(base, s[POINTS_KEY], int(s[REPEATS_KEY]))
    seconds = estimate_many(
        (config for *_, config in runs),
        info.num_images(TRAIN),
        info.num_images(VALIDATION),
        machine_speed(run_store().root),
    )
    return (
        f"Estimated time: about {human_seconds(seconds)} for {len(runs)} runs at {s[SIZE_KEY]} px, "
        f"{s[EPOCHS_KEY]} epochs each (fine-tuning {FINE_TUNE_PHASE.epochs} more), "
        f"in {PRECISION_NAMES[base.precision]} (this device's fastest), "
        "less as each frozen prefix is computed once for every condition and repeat. "
        "Its runs are kept with the curve, not in the runs table, and keep no model."
    )


def transfer_curve_section() -> None:
    """This student's last curve (chart, sentences, its runs), then the controls that start one."""
    st.subheader("Transfer curve: what do VGG16's layers carry to your images?")
    st.write(WHY)
    s = st.session_state
    # A reload forgets the session's job id: a curve this student has running is found by its owner.
    job = JOBS.get(s.get(JOB_KEY), actor()) or JOBS.running_for(owner(), CURVE_JOB)
    running = job is not None and job.running
    curves = CurveStore(run_store())
    # The newest of this person's own (a teacher may open every student's, but this section is their own).
    if saved := curves.newest_of(actor().owner or None):
        saved_curve(curves, saved, running)
    for key, default in DEFAULTS.items():
        s[key] = s.get(key, default)  # kept while other pages run
    points, size, epochs, repeats = st.columns([3, 1, 1, 1])
    points.multiselect("Freeze points", list(range(VGG16_LAYERS + 1)), key=POINTS_KEY, format_func=point_label)
    size.number_input("Image size (px)", VGG16_MIN_IMAGE_SIZE, 224, key=SIZE_KEY)
    epochs.number_input("Epochs per run", 1, 50, key=EPOCHS_KEY)
    repeats.number_input("Repeats", 1, 5, key=REPEATS_KEY, help="Runs of each condition, each with its own seed.")
    info, (weights_ok, message) = current_dataset(), weights_ready()
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


def saved_curve(curves: CurveStore, saved: SavedCurve, running: bool) -> None:
    """A saved curve: its chart and sentences, or why it ended early; its runs on request; delete."""
    if saved.curve is not None:
        curve = saved.curve
        st.altair_chart(transfer_curve_chart(curve), width="stretch", theme="streamlit")
        precision = curve_precision(saved)
        st.caption(
            f"{curve.summary} ({curve.repeats} repeat(s) at {curve.image_size} px, {curve.epochs} epoch(s) a run, "
            f"in {precision}, {human_seconds(curve.seconds)}.)"
        )
    elif saved.status == RUNNING and running:
        return  # the progress bar below tells
    else:
        why = saved.reason or "the server restarted while it ran"
        st.warning(f"Your last transfer curve ({saved.created[:16].replace('T', ' ')} UTC) did not finish: {why}.")
    # Read only on request: a curve has dozens of runs, and the page reruns at every click.
    count = f"{saved.runs_planned} " if saved.done else ""
    if st.toggle(f"Show this curve's {count}runs (kept with the curve, not in the runs table)", key=RUNS_SHOWN_KEY):
        if saved.curve is not None and (shared := shared_runs_note(saved.curve.points)):
            st.caption(shared)
        st.dataframe(
            curve_runs_table(curves.runs_of(saved.curve_id).list()),
            hide_index=True,
            width="stretch",
            column_config={"validation accuracy": st.column_config.NumberColumn(format="percent")},
        )
    with st.container(horizontal=True):
        if saved.curve is not None:
            st.download_button(
                "Download the curve (JSON)",
                json.dumps(saved.curve.to_dict(), indent=1),
                file_name=f"{saved.curve_id}.json",
                mime="application/json",
                key="download_curve",
            )
        st.button(
            "Delete this curve",
            key="delete_curve",
            on_click=curves.delete,
            args=(saved.curve_id,),
            disabled=running and saved.status == RUNNING,
            help="Deletes the curve and its runs.",
        )


def curve_precision(saved: SavedCurve) -> str:
    """The precision the curve's runs computed in, in words."""
    config = saved.settings.get("config")
    precision = config.get("precision") if isinstance(config, dict) else None
    return PRECISION_NAMES.get(str(precision), str(precision or FLOAT32))


def curve_runs_table(runs: list[RunSummary]) -> pd.DataFrame:
    """One line per run of a curve, by repeat, freeze point and condition: accuracy, seconds, status."""
    rows = [
        {
            "repeat": r.tags.get("repeat"),
            "freeze point": r.tags.get("point"),
            "order": CONDITIONS.index(c) if (c := str(r.tags.get("condition"))) in CONDITIONS else len(CONDITIONS),
            "condition": CONDITION_WORDS.get(c, c),
            "validation accuracy": r.val_accuracy,
            "seconds": None if r.seconds is None else round(r.seconds, 1),
            "status": r.status,
        }
        for r in runs
    ]
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).sort_values(["repeat", "freeze point", "order"]).drop(columns="order")
    # The status says something only when a run did not complete.
    return table.drop(columns="status") if (table["status"] == COMPLETED).all() else table


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
