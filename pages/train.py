"""Train page: start a run in the background, watch its curves grow, stop it."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages.ui import K, current_config, page_intro, require_dataset, weights_ready
from tlcore.data import TRAIN, VALIDATION
from tlcore.estimate import estimate, machine_gflops  # no TensorFlow: a NumPy matmul, timed once per process
from tlcore.jobs import QUEUED, REGISTRY, JobBusy, Snapshot, start_training
from tlcore.plots import live_curves_chart
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


job = REGISTRY.get(st.session_state.get(K.job_id) or st.query_params.get("job"))
if job is None or job.snapshot().kind != "training":  # a reloaded tab: find this browser's run again
    job = REGISTRY.running_for(st.session_state[K.owner], kind="training")
if job is not None:
    st.session_state[K.job_id] = job.id

n_train, n_val = info.num_images(TRAIN), info.num_images(VALIDATION)
guess = estimate(config, n_train, n_val, machine_gflops())
weights_ok, weights_message = weights_ready()
st.markdown(
    f"**{n_train} training / {n_val} validation images** at {config.image_size} px · "
    f"freeze point **{config.freeze_at}** · weights **{config.weights_label}** · "
    f"{config.total_epochs()} epoch(s) · path: **{guess.path.replace('_', ' ')}**"
)
st.caption(f"Estimated time on this machine: {guess.describe()}.")
if not weights_ok:
    st.error(f"{weights_message} Choose weights in the sidebar before training.")

def _start() -> None:
    # A callback, so the click survives any rerun of the script that follows it.
    current = REGISTRY.get(st.session_state.get(K.job_id))
    if current is not None and current.running:
        st.session_state["train_notice"] = "A run is already in progress in this session: stop it or wait for it to finish."
        return
    try:
        started = start_training(st.session_state[K.owner], config, info)
    except JobBusy as err:
        st.session_state["train_notice"] = str(err)
        return
    st.session_state[K.job_id] = started.id
    st.query_params["job"] = started.id


def _stop() -> None:
    current = REGISTRY.get(st.session_state.get(K.job_id))
    if current is not None:
        current.stop()
        st.toast("Stopping after the current batch; what was learned so far is kept.")


left, right = st.columns([1, 1])
left.button("Start training", key="start_training", type="primary", disabled=not weights_ok, on_click=_start)
right.button("Stop", key="stop_training", disabled=job is None or not job.running, on_click=_stop)
if notice := st.session_state.pop("train_notice", None):
    st.warning(notice)

def draw(snap: Snapshot) -> None:
    status = {"running": ":green[running]", "completed": ":blue[completed]", "stopped": ":orange[stopped]",
              "failed": ":red[failed]"}
    queued = snap.stage == QUEUED
    st.subheader(f"Run status: {':gray[waiting]' if queued else status.get(snap.status, snap.status)}")
    if queued:
        st.info(snap.message)
    if snap.path:
        st.caption(f"Path: **{snap.path.replace('_', ' ')}** — {snap.path_reason}.")
    if snap.step_total and snap.stage in ("decode", "extract"):
        label = "Decoding images" if snap.stage == "decode" else "Computing frozen features (once)"
        st.progress(snap.step_done / snap.step_total, text=f"{label}: {snap.step_done}/{snap.step_total}")
    if snap.batches:
        st.progress(snap.batch / snap.batches, text=f"Epoch {snap.epoch}/{snap.epochs_total}: batch {snap.batch}/{snap.batches}")
    left_s = snap.seconds_left()
    cols = st.columns(3)
    cols[0].metric("Elapsed", f"{snap.elapsed:.0f} s")
    cols[1].metric("Time left", f"{left_s:.0f} s" if left_s is not None else "—")
    cols[2].metric("Epochs done", f"{len(snap.history)}/{snap.epochs_total}")
    if snap.history:
        loss_col, acc_col = st.columns(2)
        loss_col.altair_chart(live_curves_chart(snap.history, "loss", "Loss"), width="stretch")
        acc_col.altair_chart(live_curves_chart(snap.history, "accuracy", "Accuracy"), width="stretch")
        if any(r["phase"] > 1 for r in snap.history):
            boundary = next(r["epoch"] for r in snap.history if r["phase"] > 1)
            st.caption(f"Dashed line: fine-tuning (phase 2, lower learning rate, deeper unfreezing) "
                       f"starts at epoch {boundary}.")
    if snap.error:
        st.error(f"The run failed: {snap.error}")
    elif snap.reason and snap.status != "running":
        st.warning(snap.reason)


@st.fragment(run_every=1.0)
def live_progress() -> None:
    snap = job.snapshot()
    draw(snap)
    if snap.done:
        st.rerun()  # the whole page: show the finished run with its downloads


if job is not None and job.running:
    live_progress()
elif job is not None:
    snap = job.snapshot()
    st.session_state[K.history] = snap.history
    if snap.run_dir:
        st.session_state[K.last_run_dir] = snap.run_dir
    draw(snap)
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
        d1.download_button("Download model (.keras)", data=model_data, file_name=f"{file_stem}.keras",
                           key="download_model", type="primary" if not saved else "secondary")
        d2.download_button("Download history (CSV)", data=history_csv(snap.history),
                           file_name=f"{file_stem}-history.csv", key="download_history")
    if saved:
        st.page_link("pages/inference.py", label="Try the model on images", icon=":material/image_search:")
        st.page_link("pages/runs.py", label="Compare with other runs", icon=":material/folder_open:")
    elif job.model_bytes:
        st.error("This run's model is only in memory: download it now, it is lost when the app restarts.")
