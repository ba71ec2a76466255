"""Runs page: every saved training run, side-by-side curves and config differences, delete."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from pages.ui import K, page_intro
from tlcore.plots import curves_figure
from tlcore.runs import RUNNING, RunStore, RunSummary

# Plain symbols that every font has (colour emoji are missing on some systems).
STATUS_ICONS = {"completed": "✓", "running": "▶", "stopped": "■", "interrupted": "⚠", "failed": "✗"}


def when(summary: RunSummary) -> str:
    try:  # stored in UTC; shown in the viewer's local time
        return datetime.fromisoformat(summary.created).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return summary.created or "?"


def weights_text(weights: str) -> str:
    return {"none": "none (from scratch)", "imagenet": "imagenet"}.get(weights, Path(weights).name)


def runs_dataframe(summaries: list[RunSummary]) -> pd.DataFrame:
    """One row per run: what it was, how far it got, how well it did."""
    rows = []
    for s in summaries:
        c = s.config
        freeze = "?" if c is None else f"{c.freeze_at}→{c.fine_tune.freeze_at}" if c.fine_tune else str(c.freeze_at)
        rows.append({
            "date": when(s), "status": f"{STATUS_ICONS.get(s.status, '')} {s.status}", "freeze": freeze,
            "weights": weights_text(c.weights) if c else "?", "px": c.image_size if c else None,
            "epochs": f"{s.epochs_done}/{c.total_epochs() if c else '?'}",
            "val acc": s.val_accuracy, "best val acc": s.best_val_accuracy, "time (s)": s.seconds,
            "MB": s.disk_bytes / 1e6, "tags": ", ".join(f"{k}={v}" for k, v in s.tags.items()),
            "note": s.record.get("reason", ""), "run": s.run_id,  # last: a reference, not a headline
        })
    table = pd.DataFrame(rows)
    return table.drop(columns=[c for c in ("tags", "note") if not table[c].any()])  # empty columns only take room


def curve_label(s: RunSummary) -> str:
    """Short legend text: the id's tail and what matters most for transfer (weights, freeze point)."""
    if s.config is None:
        return s.run_id[-6:]
    start = "scratch" if s.config.weights == "none" else "pretrained"
    fine = f"→{s.config.fine_tune.freeze_at}" if s.config.fine_tune else ""
    return f"{s.run_id[-6:]}: {start}, freeze {s.config.freeze_at}{fine}"


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'head': {'dense': [8]}} -> {'head.dense': [8]}"""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(summaries: list[RunSummary]) -> pd.DataFrame:
    """Only the settings that differ between the runs: one row per setting, one column per run."""
    configs = {s.run_id: flatten({**s.record.get("config", {}), "dataset": s.record.get("dataset", {}).get("root")})
               for s in summaries}
    fields = sorted({f for c in configs.values() for f in c})
    differ = [f for f in fields if len({repr(c.get(f)) for c in configs.values()}) > 1]
    # Strings throughout: one column may hold numbers, lists and None.
    return pd.DataFrame({rid: [str(c.get(f, "—")) for f in differ] for rid, c in configs.items()},
                        index=pd.Index(differ, name="setting"))


def delete_selected() -> None:
    # A callback runs before the page, so it may reset the widgets that list the deleted runs.
    store, deleted, kept = RunStore(), [], []
    for run_id in st.session_state.get("delete_select", []):
        try:
            if store.load(run_id)["status"] == RUNNING:
                kept.append(run_id)
                continue
            store.delete(run_id)
            deleted.append(run_id)
        except FileNotFoundError:
            deleted.append(run_id)  # already gone: nothing to do
    st.session_state["delete_select"] = kept
    st.session_state["delete_confirm"] = False
    if st.session_state.get(K.last_run_dir) and Path(st.session_state[K.last_run_dir]).name in deleted:
        st.session_state[K.last_run_dir] = None
    st.session_state["runs_deleted"] = (deleted, kept)


page_intro("Runs", "Every training run is kept on disk with its settings, its learning curves and its model. "
           "Compare runs to see what a change in freeze point, weights or head actually did to validation "
           "accuracy: that is the experiment transfer learning is about.")
store = RunStore()
summaries = store.list()
if not summaries:
    st.info(f"No runs yet in `{store.root}`. Train a model and it appears here.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/show_chart:")
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
    "best val acc": st.column_config.NumberColumn(format="percent"), "time (s)": tenths, "MB": tenths,
})

by_id = {s.run_id: s for s in summaries}
for key in ("runs_compare", "delete_select"):  # runs deleted since (here, in another tab, by the CLI) drop out
    st.session_state[key] = [r for r in st.session_state.get(key, []) if r in by_id]
label = lambda rid: f"{curve_label(by_id[rid])} · {when(by_id[rid])} · {by_id[rid].status}"  # noqa: E731

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
    differences = config_differences([by_id[r] for r in chosen])
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
