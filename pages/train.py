"""Train page: Start / Stop, one status line and the curves first; the stages and details below them."""

from __future__ import annotations

import streamlit as st

from dashboard.dataset_source import require_dataset
from dashboard.identity import actor, class_limits, job_in_url, owner, put_job_in_url, run_store
from dashboard.state import K, current_config, page_intro, weights_ready
from dashboard.train.finished import finished_run_section
from dashboard.train.live_view import REFRESH_S, describe_setup, plan_for_info, show
from dashboard.train.setting_words import setting_changes
from tlcore.backend import ClusterError
from tlcore.data import TRAIN, VALIDATION
from tlcore.estimate import estimate
from tlcore.feature_store import FeatureStore, features_stored
from tlcore.jobs import JOBS, Job, JobBusy, start_training
from tlcore.schedule import schedule
from tlcore.speed import machine_speed
from tlcore.waits import cap_job, limit_problem

page_intro("Train", "Training runs in the background: watch it learn here, or explore the other pages meanwhile.")
info = require_dataset()
try:
    config = current_config()
except ValueError as err:
    st.error(f"The settings on the Model page are not valid: {err}")
    st.page_link("pages/model.py", label="Fix them on the Model & freeze page", icon=":material/layers:")
    st.stop()

job = JOBS.get(st.session_state.get(K.job_id) or job_in_url(), actor())
if job is None or job.snapshot().kind != "training":  # a reloaded tab: find this browser's run again
    job = JOBS.running_for(owner(), kind="training")
if job is not None:
    st.session_state[K.job_id] = job.id
weights_ok, weights_message = weights_ready()


def _start() -> None:
    # A callback, so the click survives any rerun of the script that follows it.
    current = JOBS.get(st.session_state.get(K.job_id), actor())
    if current is not None and current.running:
        st.session_state["train_notice"] = "A run is already in progress in this session: stop it or wait for it."
        return
    store, limits = run_store(), class_limits()
    problem = store.quota_problem() or limit_problem(
        config, info.num_images(TRAIN), info.num_images(VALIDATION), limits, machine_speed(store.root)
    )
    if problem:
        st.session_state["train_notice"] = problem
        return
    try:
        started = start_training(owner(), config, info, store)
    except (JobBusy, ClusterError) as err:
        st.session_state["train_notice"] = str(err)
        return
    cap_job(started, limits)
    st.session_state[K.job_id] = started.id
    put_job_in_url(started.id)


def _stop() -> None:
    current = JOBS.get(st.session_state.get(K.job_id), actor())
    if current is not None:
        current.stop()
        st.toast("Stopping after the current batch (a fraction of a second); what was learned so far is kept.")


running = job is not None and job.running
with st.container(horizontal=True):
    st.button(
        "Start training",
        key="start_training",
        type="primary",
        disabled=not weights_ok or running,
        on_click=_start,
        help="One run at a time per session: stop this one first." if running else None,
    )
    st.button("Stop", key="stop_training", disabled=not running, on_click=_stop)
if notice := st.session_state.pop("train_notice", None):
    st.warning(notice)
if not weights_ok:
    st.error(f"{weights_message} Choose weights in the sidebar before training.")


@st.fragment(run_every=REFRESH_S)
def live_progress(live: Job) -> None:
    snap = live.snapshot()
    show(live, snap)
    if snap.done:
        st.rerun()  # the whole page: show the finished run with its downloads


n_train, n_val = info.num_images(TRAIN), info.num_images(VALIDATION)
stored = features_stored(FeatureStore.default(), config, info.fingerprint())
speed = machine_speed(run_store().root)
guess = estimate(config, n_train, n_val, speed, stored)
next_run = describe_setup(config, n_train, n_val, guess.route, plan_for_info(config, info, guess.route))
if job is not None and running:
    live_progress(job)
elif job is not None:
    snap = job.snapshot()
    if snap.run_dir:
        st.session_state[K.last_run_dir] = snap.run_dir
    show(job, snap)
if job is None or job.config is None:
    st.markdown(f"Next run: {next_run}")
    st.caption(f"Estimated time on this machine: {guess.describe()}.")
else:  # describe the run itself (a reloaded tab's session may hold other settings)
    n_job, snap = (job.train_images, job.validation_images), job.snapshot()
    route = snap.route or estimate(job.config, *n_job, speed).route
    plan = snap.schedule or schedule(job.config, job.train_images, (), route)
    st.markdown("This run: " + describe_setup(job.config, *n_job, route, plan))
    if changes := setting_changes(job.config, job.dataset_root, config, info):
        st.info(
            "Your current settings differ from this run's: " + "; ".join(changes) + ".\n\n"
            f"**Start training** trains with them: {next_run} ({guess.describe()})."
        )

if job is not None and not running:
    finished_run_section(job)
