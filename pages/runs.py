"""Runs page: every saved training run, side-by-side curves and config differences, delete."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages.ui import K, current_config, current_dataset, page_intro, weights_ready
from tlcore.jobs import REGISTRY, JobBusy, start_sweep
from tlcore.plots import curves_figure, sweep_chart
from tlcore.runs import RUNNING, RunStore, config_differences, curve_label, describe_run, runs_dataframe
from tlcore.sweep import DEFAULT_IMAGE_SIZE, DEFAULT_POINTS, point_label, sweep_ids, sweep_points_frame, sweep_table

PERCENT = st.column_config.NumberColumn(format="percent")


def delete_selected() -> None:
    # A callback runs before the page, so it may reset the widgets that list the deleted runs.
    deleted, kept = RunStore().delete_finished(st.session_state.get("delete_select", []))
    st.session_state["delete_select"] = kept
    st.session_state["delete_confirm"] = False
    if st.session_state.get(K.last_run_dir) and Path(st.session_state[K.last_run_dir]).name in deleted:
        st.session_state[K.last_run_dir] = None
    st.session_state["runs_deleted"] = (deleted, kept)


def _start_sweep() -> None:
    s = st.session_state
    try:
        job = start_sweep(s[K.owner], current_config().replace(epochs=int(s["sweep_epochs"])), current_dataset(),
                          s["sweep_points"], scratch=bool(s["sweep_scratch"]))
        s["sweep_job_id"] = job.id
    except (JobBusy, ValueError) as err:
        s["sweep_notice"] = str(err)


def sweep_section(summaries) -> None:
    st.subheader("Sweep: how much of VGG16 should stay frozen?")
    st.caption(f"The same head at several freeze points, plus the same model from random weights, at the sidebar's "
               f"{st.session_state[K.image_size]} px (a sweep's default: {DEFAULT_IMAGE_SIZE} px). One run per point.")
    for key, default in (("sweep_points", list(DEFAULT_POINTS)), ("sweep_epochs", 5), ("sweep_scratch", True)):
        st.session_state[key] = st.session_state.get(key, default)  # kept while other pages run
    left, middle, right = st.columns([3, 1, 1])
    left.multiselect("Freeze points", list(range(18, -1, -1)), key="sweep_points", format_func=point_label)
    middle.number_input("Epochs per point", 1, 100, key="sweep_epochs")
    right.checkbox("Include from scratch", key="sweep_scratch")
    info, (weights_ok, message) = current_dataset(), weights_ready()
    running = (job := REGISTRY.get(st.session_state.get("sweep_job_id"))) is not None and job.running
    left, right = st.columns(2)
    left.button("Start sweep", key="start_sweep", type="primary", on_click=_start_sweep,
                disabled=running or not weights_ok or info is None or isinstance(info, Exception))
    right.button("Stop sweep", key="stop_sweep", on_click=lambda: job and job.stop(), disabled=not running)
    if notice := st.session_state.pop("sweep_notice", None):
        st.warning(notice)
    if not weights_ok:
        st.caption(f"{message} Choose weights in the sidebar to start a sweep.")
    if running:
        sweep_progress(job)
    elif job is not None and job.snapshot().error:
        st.error(f"The sweep failed: {job.snapshot().error}")
    if ids := sweep_ids(summaries):
        table = sweep_table(summaries, st.selectbox("Saved sweep", ids, key="sweep_pick"))
        st.altair_chart(sweep_chart(table), width="stretch")
        st.caption("Notice: freezing more layers makes each epoch much cheaper; with few images the pretrained "
                   "features (few trainable layers) tend to beat training more of the network, and every "
                   "pretrained point should beat the dashed from-scratch line.")
        st.dataframe(table, hide_index=True, column_config={"best val acc": PERCENT, "final val acc": PERCENT,
                                                            "s/epoch": st.column_config.NumberColumn(format="%.2f")})
        curves = {s.tags["point"]: s.record.get("history", []) for s in summaries if s.run_id in set(table["run"])}
        st.pyplot(curves_figure(curves, "val_accuracy", "Validation accuracy of every point"), clear_figure=True)


@st.fragment(run_every=1.0)
def sweep_progress(job) -> None:
    snap = job.snapshot()
    current, total = snap.extra.get("current"), max(snap.extra.get("total_points", 1), 1)
    if current:
        st.progress((current["index"] - 1) / total, text=f"Point {current['index']}/{total}: {current['label']}")
    if snap.batches:
        st.progress(snap.fraction(), text=f"Epoch {snap.epoch}/{snap.epochs_total}: batch {snap.batch}/{snap.batches}")
    if finished := snap.extra.get("points"):
        st.dataframe(sweep_points_frame(finished), hide_index=True)
    if snap.done:
        st.rerun()  # the whole page: the finished sweep appears among the saved ones


page_intro("Runs", "Every training run is kept on disk with its settings, its learning curves and its model. "
           "Compare runs to see what a change in freeze point, weights or head actually did to validation "
           "accuracy: that is the experiment transfer learning is about.")
store = RunStore()
summaries = store.list()
if not summaries:
    st.info(f"No runs yet in `{store.root}`. Train a model and it appears here.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/show_chart:")
    sweep_section(summaries)
    st.stop()

deleted, kept = st.session_state.pop("runs_deleted", ([], []))
if deleted:
    st.success(f"Deleted {len(deleted)} run(s): {', '.join(deleted)}")
if kept:
    st.warning(f"Not deleted, still training: {', '.join(kept)}. Stop the run on the Train page first.")

st.caption(f"{len(summaries)} run(s) in `{store.root.resolve()}`. ⚠ interrupted = the process that trained "
           "it ended without finishing (its history and the epochs it completed are kept).")
tenths = st.column_config.NumberColumn(format="%.1f")
st.dataframe(runs_dataframe(summaries), hide_index=True, column_config={
    "freeze": st.column_config.TextColumn(help="VGG16 layers frozen, 0..18 (18 = train only the head); "
                                          "18→14: then fine-tuned with 14 frozen"),
    "weights": st.column_config.TextColumn(width=150),
    "px": st.column_config.NumberColumn(help="image size the model was trained at"),
    "val acc": st.column_config.NumberColumn(format="percent", help="validation accuracy after the last epoch"),
    "best val acc": PERCENT, "time (s)": tenths, "MB": tenths,
})



@st.fragment(run_every=2.0)
def training_now(shown: tuple[str, ...]) -> None:
    try:  # only these runs' records: listing the whole runs folder every 2 s would grow with it
        running = [RunStore().summary(run_id) for run_id in shown]
    except FileNotFoundError:
        running = []
    if any(s.status != RUNNING for s in running) or len(running) != len(shown):
        st.rerun()  # a run ended or went away: the whole table above changes
    st.subheader("Training now")
    st.caption("Runs still training, from any session or the command line; updated every 2 seconds.")
    st.dataframe(runs_dataframe(running), hide_index=True)


if running_ids := tuple(s.run_id for s in summaries if s.status == RUNNING):
    training_now(running_ids)

by_id = {s.run_id: s for s in summaries}
for key in ("runs_compare", "delete_select"):  # runs deleted since (here, in another tab, by the CLI) drop out
    st.session_state[key] = [r for r in st.session_state.get(key, []) if r in by_id]


def label(run_id: str) -> str:
    return describe_run(by_id[run_id])


st.subheader("Compare runs")
chosen = st.multiselect("Runs to compare", list(by_id), format_func=label, key="runs_compare",
                        placeholder="Pick two or more runs")
if chosen:
    histories = {curve_label(by_id[r]): by_id[r].record.get("history", []) for r in chosen}
    left, right = st.columns(2)
    for column, metric in ((left, "val_accuracy"), (right, "val_loss")):
        with column:
            st.pyplot(curves_figure(histories, metric), clear_figure=True)
    st.caption("Dotted line: where a run's fine-tuning phase began. Hollow marker: an epoch cut short by Stop.")
if len(chosen) >= 2:
    differences = config_differences([by_id[r].record for r in chosen])
    if differences.empty:
        st.info("These runs used the same settings (and the same dataset folder).")
    else:
        st.write("Settings that differ between these runs:")
        st.dataframe(differences)

st.subheader("Delete runs")
to_delete = st.multiselect("Runs to delete", list(by_id), format_func=label, key="delete_select")
confirm = st.checkbox("Yes, delete the selected runs and their models for good", key="delete_confirm")
st.button("Delete selected", key="delete_runs", type="primary", on_click=delete_selected,
          disabled=not (confirm and to_delete))

sweep_section(summaries)
