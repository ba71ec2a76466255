"""Runs page: every saved training run, side-by-side curves and config differences, delete."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.charts import curves_chart
from dashboard.state import K, page_intro
from dashboard.sweep_panel import PERCENT, sweep_section
from dashboard.tables import config_differences, curve_label, describe_run, runs_dataframe
from dashboard.weight_change_panel import weight_change_section
from tlcore.backbone_facts import BLOCK5, HEAD_ONLY
from tlcore.runs import RUNNING, RunStore


def delete_selected() -> None:
    # A callback runs before the page, so it may reset the widgets that list the deleted runs.
    deleted, kept = RunStore().delete_finished(st.session_state.get("delete_select", []))
    st.session_state["delete_select"] = kept
    st.session_state["delete_confirm"] = False
    if st.session_state.get(K.last_run_dir) and Path(st.session_state[K.last_run_dir]).name in deleted:
        st.session_state[K.last_run_dir] = None
    st.session_state["runs_deleted"] = (deleted, kept)


page_intro(
    "Runs",
    "Every training run is kept on disk with its settings, its learning curves and its model. "
    "Compare runs to see what a change in freeze point, weights or head actually did to validation "
    "accuracy: that is the experiment transfer learning is about.",
)
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

st.caption(
    f"{len(summaries)} run(s) in `{store.root.resolve()}`. ⚠ interrupted = the process that trained "
    "it ended without finishing (its history and the epochs it completed are kept)."
)
tenths = st.column_config.NumberColumn(format="%.1f")
st.dataframe(
    runs_dataframe(summaries),
    hide_index=True,
    column_config={
        "freeze": st.column_config.TextColumn(
            help=f"VGG16 layers frozen, 0..{HEAD_ONLY} ({HEAD_ONLY} = train only the "
            f"head); {HEAD_ONLY}→{BLOCK5}: then fine-tuned with {BLOCK5} frozen"
        ),
        "weights": st.column_config.TextColumn(width=150),
        "px": st.column_config.NumberColumn(help="image size the model was trained at"),
        "val acc": st.column_config.NumberColumn(format="percent", help="validation accuracy after the last epoch"),
        "best val acc": PERCENT,
        "time (s)": tenths,
        "MB": tenths,
    },
)


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
chosen = st.multiselect(
    "Runs to compare", list(by_id), format_func=label, key="runs_compare", placeholder="Pick two or more runs"
)
if chosen:
    histories = {curve_label(by_id[r]): by_id[r].history.as_rows() for r in chosen}
    left, right = st.columns(2)
    for column, metric in ((left, "val_accuracy"), (right, "val_loss")):
        column.altair_chart(curves_chart(histories, metric), width="stretch", theme="streamlit")
    st.caption(
        "Dashed line: where a run's fine-tuning phase began. Hollow marker: an epoch cut short by Stop. "
        "Loss is on a log scale, so one bad epoch does not flatten the others."
    )
if len(chosen) >= 2:
    differences = config_differences([by_id[r].record for r in chosen])
    if differences.empty:
        st.info("These runs used the same settings (and the same dataset folder).")
    else:
        st.write("Settings that differ between these runs:")
        st.dataframe(differences)

weight_change_section(summaries)

st.subheader("Delete runs")
to_delete = st.multiselect("Runs to delete", list(by_id), format_func=label, key="delete_select")
confirm = st.checkbox("Yes, delete the selected runs and their models for good", key="delete_confirm")
st.button(
    "Delete selected", key="delete_runs", type="primary", on_click=delete_selected, disabled=not (confirm and to_delete)
)

sweep_section(summaries)
