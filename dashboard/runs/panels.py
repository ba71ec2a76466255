"""The Runs page's live list of runs in training, and deleting runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from dashboard.identity import actor, run_store
from dashboard.state import K
from dashboard.tables import runs_dataframe
from tlcore.feature_store import MB, FeatureStore
from tlcore.records import RUNNING


@st.fragment(run_every=2.0)
def training_now(shown: tuple[str, ...]) -> None:
    """The runs still training, redrawn every 2 s; the whole page reruns when one of them ends."""
    try:  # only these runs' records: listing the whole runs folder every 2 s would grow with it
        running = [run_store().summary(run_id) for run_id in shown]
    except FileNotFoundError:
        running = []
    if any(s.status != RUNNING for s in running) or len(running) != len(shown):
        st.rerun()  # a run ended or went away: the whole table above changes
    st.subheader("Training now")
    st.caption("Runs still training, from any session or the command line; updated every 2 seconds.")
    st.dataframe(runs_dataframe(running), hide_index=True)


def _delete_selected() -> None:
    # A callback runs before the page, so it may reset the widgets that list the deleted runs.
    deleted, kept = run_store().delete_finished(st.session_state.get("delete_select", []))
    st.session_state["delete_select"] = kept
    st.session_state["delete_confirm"] = False
    if st.session_state.get(K.last_run_dir) and Path(st.session_state[K.last_run_dir]).name in deleted:
        st.session_state[K.last_run_dir] = None
    st.session_state["runs_deleted"] = (deleted, kept)


def deletion_report() -> None:
    """What the last Delete did (it ran in a callback, before this page run)."""
    deleted, kept = st.session_state.pop("runs_deleted", ([], []))
    if deleted:
        st.success(f"Deleted {len(deleted)} run(s): {', '.join(deleted)}")
    if kept:
        st.warning(f"Not deleted, still training: {', '.join(kept)}. Stop the run on the Train page first.")


def delete_section(run_ids: list[str], label: Callable[[str], str]) -> None:
    """Pick runs, confirm, delete them and their models (runs still training are kept)."""
    st.subheader("Delete runs")
    to_delete = st.multiselect("Runs to delete", run_ids, format_func=label, key="delete_select")
    confirm = st.checkbox("Yes, delete the selected runs and their models for good", key="delete_confirm")
    st.button(
        "Delete selected",
        key="delete_runs",
        type="primary",
        on_click=_delete_selected,
        disabled=not (confirm and to_delete),
    )


def _clear_feature_store() -> None:
    if not actor().teacher:  # every student's features are in it: only the teacher may empty it
        return
    count, freed = FeatureStore.default(run_store().root).clear()
    st.session_state["feature_store_cleared"] = (count, freed)


def feature_store_section() -> None:
    """What the feature store holds, and a button to empty it (the teacher's alone in a class: it holds
    every student's features)."""
    if not actor().teacher:
        return
    st.subheader("Feature store")
    store = FeatureStore.default(run_store().root)
    entries = store.entries()
    total = sum(e.bytes for e in entries)
    st.write(
        "Frozen features are kept here after a run computes them, so the next run with the same images, size, "
        "weights and freeze point starts training at once (a new head, dropout or learning rate does not change "
        "them). The least recently used go first when the store is full."
    )
    st.caption(f"`{store.root}`: {len(entries)} entries, {total / MB:.1f} MB of {store.max_bytes / MB:.0f} MB.")
    if cleared := st.session_state.pop("feature_store_cleared", None):
        st.success(f"Cleared {cleared[0]} entries ({cleared[1] / MB:.1f} MB).")
    if entries:
        with st.expander("Entries, most recently used first"):
            st.dataframe([{"entry": e.summary} for e in entries], hide_index=True)
    st.button("Clear the feature store", key="clear_feature_store", on_click=_clear_feature_store, disabled=not entries)
