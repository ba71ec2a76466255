"""Runs page: every saved training run, side-by-side curves and config differences, delete."""

from __future__ import annotations

import streamlit as st

from dashboard.charts import curves_chart
from dashboard.classroom.board import results_section
from dashboard.code_panel import run_code_section
from dashboard.export_panel import export_section
from dashboard.identity import in_class, run_store, where
from dashboard.runs.panels import delete_section, deletion_report, feature_store_section, training_now
from dashboard.runs.sweep import PERCENT, sweep_section
from dashboard.runs.transfer_curve import transfer_curve_section
from dashboard.runs.weight_changes import weight_change_section
from dashboard.state import page_intro
from dashboard.tables import config_differences, curve_label, describe_run, runs_dataframe
from tlcore.backbone_facts import BLOCK5, HEAD_ONLY
from tlcore.baselines import run_baselines
from tlcore.classroom import ClassSettings
from tlcore.records import RUNNING

page_intro(
    "Runs",
    "Every training run is kept on disk with its settings, its learning curves and its model. "
    "Compare runs to see what a change in freeze point, weights or head actually did to validation "
    "accuracy: that is the experiment transfer learning is about.",
)
if in_class():  # what the whole class found, names as the teacher chose
    with st.expander("Class results: every finished run of the class", expanded=True):
        results_section(show_names=bool(ClassSettings().load().get("show_names")), csv=False)
store = run_store()
summaries = store.list()
if not summaries:
    st.info(f"No runs yet in {where(store.root, 'your runs')}. Train a model and it appears here.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/show_chart:")
    sweep_section(summaries)
    transfer_curve_section()
    feature_store_section()
    st.stop()

deletion_report()

st.caption(
    f"{len(summaries)} run(s) in {where(store.root.resolve(), 'your runs')}. ⚠ interrupted = the process that trained "
    "it ended without finishing (its history and the epochs it completed are kept)."
)
tenths = st.column_config.NumberColumn(format="%.1f")
st.dataframe(
    runs_dataframe(summaries),
    hide_index=True,
    column_config={
        "date": st.column_config.TextColumn(pinned=True),  # which run a row is, when the table scrolls sideways
        "epochs": st.column_config.TextColumn(
            help="epochs trained / epochs planned on this data (a head alone trains until it has taken enough "
            "steps; early stopping can end a run before its plan)"
        ),
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
    histories = {curve_label(by_id[r]): by_id[r].history for r in chosen}
    levels = [run_baselines(by_id[r].record) for r in chosen]
    baselines = levels[0] if all(level == levels[0] for level in levels) else []  # one validation split: its lines
    left, right = st.columns(2)
    for column, metric in ((left, "val_accuracy"), (right, "val_loss")):
        column.altair_chart(curves_chart(histories, metric, baselines=baselines), width="stretch", theme="streamlit")
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

sweep_section(summaries)

transfer_curve_section()

weight_change_section(summaries)

export_section(summaries)

run_code_section(summaries)

delete_section(list(by_id), label)
feature_store_section()
