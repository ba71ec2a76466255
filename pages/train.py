"""Train page: start a run in the background, watch its curves grow, stop it."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.live_view import REFRESH_S, describe_setup, draw, setting_changes
from dashboard.state import K, current_config, page_intro, require_dataset, weights_ready
from tlcore.cluster import ClusterError
from tlcore.data import TRAIN, VALIDATION
from tlcore.estimate import estimate, machine_gflops
from tlcore.feature_store import FeatureStore, features_stored
from tlcore.jobs import JOBS, JobBusy, start_training
from tlcore.runs import history_csv

page_intro(
    "Train",
    "Training runs in the background: watch the loss fall and the accuracy rise, epoch by epoch, "
    "while you explore the other pages. A widening gap between training and validation "
    "accuracy is overfitting, the thing freezing layers helps against.",
)
info = require_dataset()
try:
    config = current_config()
except ValueError as err:
    st.error(f"The settings on the Model page are not valid: {err}")
    st.page_link("pages/model.py", label="Fix them on the Model & freeze page", icon=":material/layers:")
    st.stop()


job = JOBS.get(st.session_state.get(K.job_id) or st.query_params.get("job"))
if job is None or job.snapshot().kind != "training":  # a reloaded tab: find this browser's run again
    job = JOBS.running_for(st.session_state[K.owner], kind="training")
if job is not None:
    st.session_state[K.job_id] = job.id

n_train, n_val = info.num_images(TRAIN), info.num_images(VALIDATION)
stored = features_stored(FeatureStore.default(), config, info.fingerprint())
guess = estimate(config, n_train, n_val, machine_gflops(), stored)
weights_ok, weights_message = weights_ready()
next_run = describe_setup(config, n_train, n_val, guess.route)
if job is None or job.config is None:
    st.markdown(next_run)
    st.caption(f"Estimated time on this machine: {guess.describe()}.")
else:  # describe the run itself (a reloaded tab's session may hold other settings)
    n_job = (job.train_images, job.validation_images)
    route = job.snapshot().route or estimate(job.config, *n_job, machine_gflops()).route
    st.markdown("This run: " + describe_setup(job.config, *n_job, route))
    if changes := setting_changes(job, config, str(info.root)):
        st.info(
            "Your current settings differ from this run's: " + "; ".join(changes) + ".\n\n"
            f"**Start training** trains with them: {next_run} ({guess.describe()})."
        )
if not weights_ok:
    st.error(f"{weights_message} Choose weights in the sidebar before training.")


def _start() -> None:
    # A callback, so the click survives any rerun of the script that follows it.
    current = JOBS.get(st.session_state.get(K.job_id))
    if current is not None and current.running:
        st.session_state["train_notice"] = (
            "A run is already in progress in this session: stop it or wait for it to finish."
        )
        return
    try:
        started = start_training(st.session_state[K.owner], config, info)
    except (JobBusy, ClusterError) as err:
        st.session_state["train_notice"] = str(err)
        return
    st.session_state[K.job_id] = started.id
    st.query_params["job"] = started.id


def _stop() -> None:
    current = JOBS.get(st.session_state.get(K.job_id))
    if current is not None:
        current.stop()
        st.toast("Stopping after the current batch (a fraction of a second); what was learned so far is kept.")


left, right = st.columns([1, 1])
running = job is not None and job.running
left.button(
    "Start training",
    key="start_training",
    type="primary",
    disabled=not weights_ok or running,
    on_click=_start,
    help="One run at a time per session: stop this one first." if running else None,
)
right.button("Stop", key="stop_training", disabled=not running, on_click=_stop)
if notice := st.session_state.pop("train_notice", None):
    st.warning(notice)


@st.fragment(run_every=REFRESH_S)
def live_progress() -> None:
    snap = job.snapshot()
    draw(job, snap)
    if snap.done:
        st.rerun()  # the whole page: show the finished run with its downloads


if running:
    live_progress()
elif job is not None:
    snap = job.snapshot()
    if snap.run_dir:
        st.session_state[K.last_run_dir] = snap.run_dir
    draw(job, snap)
    if snap.final:
        cols = st.columns(len(snap.final))
        for col, (name, value) in zip(cols, snap.final.items()):
            col.metric(name.replace("_", " "), f"{value:.3f}")
    run_dir = Path(snap.run_dir) if snap.run_dir else None
    saved = run_dir is not None and (run_dir / "model.keras").is_file()
    file_stem = run_dir.name if run_dir else "model"
    if saved or job.model_bytes:
        d1, d2 = st.columns(2)
        # When the disk could not take the model, it is offered from memory instead.
        model_data = (lambda: (run_dir / "model.keras").read_bytes()) if saved else job.model_bytes
        d1.download_button(
            "Download model (.keras)",
            data=model_data,
            file_name=f"{file_stem}.keras",
            key="download_model",
            type="primary" if not saved else "secondary",
        )
        d2.download_button(
            "Download history (CSV)",
            data=history_csv(snap.history),
            file_name=f"{file_stem}-history.csv",
            key="download_history",
        )
    if saved:
        st.page_link("pages/inference.py", label="Try the model on images", icon=":material/image_search:")
        st.page_link("pages/runs.py", label="Compare with other runs", icon=":material/folder_open:")
    elif job.model_bytes:
        st.error("This run's model is only in memory: download it now, it is lost when the app restarts.")
