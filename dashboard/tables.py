"""The dashboard's tables and labels: runs, sweeps and the layer table as a learner reads them.

View code over the engine's records (tlcore.runs, tlcore.sweep, tlcore.architecture): no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.config import TrainConfig, flatten_config
from tlcore.devices import FLOAT32, PRECISION_SHORT, device_headline
from tlcore.jsontypes import JSONObject, JSONValue
from tlcore.records import COMPLETED, FAILED, INTERRUPTED, RUNNING, STOPPED, RunRecord
from tlcore.runs import RunSummary
from tlcore.sweep import SCRATCH, point_label

# --- runs: labels for pickers and legends, the runs table, what differs -----------------

# Plain symbols that every font has (colour emoji are missing on some systems).
STATUS_ICONS = {COMPLETED: "✓", RUNNING: "▶", STOPPED: "■", INTERRUPTED: "⚠", FAILED: "✗"}


def local_time(created: str | None) -> str:
    """A stored UTC timestamp as "YYYY-MM-DD HH:MM" in the app machine's local time.

    A missing timestamp reads "?"; one that does not parse is returned as it is.
    """
    if created is None:
        return "?"
    try:
        return datetime.fromisoformat(created).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return created or "?"


def weights_text(weights: str) -> str:
    """How a weights setting reads in the table: "none (random)", "imagenet" or a file's name."""
    return {"none": "none (random)", "imagenet": "imagenet"}.get(weights, Path(weights).name)


def freeze_text(config: TrainConfig | None) -> str:
    """The freeze point, "18", or "18→14" for a run fine-tuned with 14 layers frozen."""
    if config is None:
        return "?"
    return f"{config.freeze_at}→{config.fine_tune.freeze_at}" if config.fine_tune else str(config.freeze_at)


def setup_text(config: TrainConfig) -> str:
    """What matters most for transfer: pretrained or not, and the freeze point.

    "from scratch" is kept for what the sweep's baseline does (random weights, every layer trains);
    random weights with frozen layers read "random".
    """
    if config.weights == "none" and config.freeze_at == 0 and config.fine_tune is None:
        return "from scratch, freeze 0"
    return f"{'random' if config.weights == 'none' else 'pretrained'}, freeze {freeze_text(config)}"


def describe_run(run: RunSummary | RunRecord) -> str:
    """One line for a run picker, from a RunSummary or a record from `load_record`.

    Example: "2024-05-01 14:03 · 3f9a2c · pretrained, freeze 18→14 · val acc 87% · completed"
    """
    record = run.record if isinstance(run, RunSummary) else run
    acc = record.history.final_val_accuracy
    accuracy = "—" if acc is None else f"{acc:.0%}"
    setup = [setup_text(record.config)] if record.config else []
    return " · ".join(
        [local_time(record.created), (record.run_id or "?")[-6:], *setup, f"val acc {accuracy}", record.status]
    )


def curve_label(summary: RunSummary) -> str:
    """Short legend text: the id's tail, then weights and freeze point."""
    tail = summary.run_id[-6:]
    return f"{tail}: {setup_text(summary.config)}" if summary.config else tail


def runs_dataframe(summaries: Sequence[RunSummary]) -> pd.DataFrame:
    """The runs table: one row per run (what it was, how far it got, how well it did).

    The device, tags and note columns are left out when no run has any, the precision when every run is float32.
    """
    rows = []
    for s in summaries:
        c = s.config
        rows.append(
            {
                "date": local_time(s.created),
                "status": f"{STATUS_ICONS.get(s.status, '')} {s.status}",
                "freeze": freeze_text(c),
                "weights": weights_text(c.weights) if c else "?",
                "px": c.image_size if c else None,
                "epochs": f"{s.epochs_done}/{s.planned_epochs or '?'}",
                "val acc": s.val_accuracy,
                "best val acc": s.best_val_accuracy,
                "time (s)": s.seconds,
                "precision": PRECISION_SHORT.get(s.record.precision, s.record.precision),
                "device": device_headline(s.record.device),
                "MB": s.disk_bytes / 1e6,
                "tags": ", ".join(f"{k}={v}" for k, v in s.tags.items()),
                "note": s.record.reason,
                "run": s.run_id,  # last: a reference, not a headline
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "date",
            "status",
            "freeze",
            "weights",
            "px",
            "precision",
            "epochs",
            "val acc",
            "best val acc",
            "time (s)",
            "device",
            "MB",
            "tags",
            "note",
            "run",
        ],
    )
    # Empty columns only take room (no run older than the lab's device record names its device), and so does
    # a precision every run shares with the default.
    empty = [c for c in ("device", "tags", "note") if not table[c].any()]
    default_precision = (table["precision"] == PRECISION_SHORT[FLOAT32]).all()
    return table.drop(columns=empty + (["precision"] if default_precision else []))


def config_differences(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Only the settings (and dataset folder) that differ between runs.

    Returns:
        One row per dotted setting name (sorted), one column per run id, every
        cell a string ("—" where a run lacks the setting). Empty when all agree.
    """
    configs = {
        r.run_id: flatten_config({**_settings(r), "dataset": r.dataset.root if r.dataset else None}) for r in records
    }
    fields = sorted({f for c in configs.values() for f in c})
    differ = [f for f in fields if len({repr(c.get(f)) for c in configs.values()}) > 1]
    # Strings throughout: one column may hold numbers, lists and None.
    return pd.DataFrame(
        {rid: [str(c.get(f, "—")) for f in differ] for rid, c in configs.items()},
        index=pd.Index(differ, name="setting"),
    )


def _settings(record: RunRecord) -> JSONObject:
    """The run's settings as run.json holds them (an unreadable config as it was read)."""
    if record.config is not None:
        return record.config.to_dict()
    raw = record.extra.get("config")
    return dict(raw) if isinstance(raw, Mapping) else {}


# --- sweeps: a saved sweep's points, a live sweep's finished points ----------------


def sweep_ids(summaries: Sequence[RunSummary]) -> list[str]:
    """The sweep ids among runs' tags, newest first (ids sort by their start time)."""
    return sorted({sweep for s in summaries if isinstance(sweep := s.tags.get("sweep"), str) and sweep}, reverse=True)


def saved_sweep_frame(summaries: Sequence[RunSummary], sweep_id: str) -> pd.DataFrame:
    """One row per point of a saved sweep (RunStore().list() summaries), pretrained points by freeze
    point from most frozen, the scratch baseline last.

    Columns: point, freeze_at, trainable layers (18 - freeze_at), weights, best/final val acc,
    s/epoch (mean over complete epochs), epochs, path, status, run.
    """
    rows = []
    for s in summaries:
        if (s.tags or {}).get("sweep") != sweep_id:
            continue
        history, config = s.history, s.config
        freeze_at = config.freeze_at if config else 0
        rows.append(
            {
                "point": s.tags.get("point", point_label(freeze_at)),
                "freeze_at": freeze_at,
                "trainable layers": VGG16_LAYERS - freeze_at,
                "weights": config.weights if config else "",
                "best val acc": history.best_val_accuracy,
                "final val acc": history.final_val_accuracy,
                "s/epoch": history.mean_epoch_seconds,
                "epochs": len(history),
                "path": ", ".join(dict.fromkeys(r.route for r in history if r.route)),
                "status": s.status,
                "run": s.run_id,
            }
        )
    columns = [
        "point",
        "freeze_at",
        "trainable layers",
        "weights",
        "best val acc",
        "final val acc",
        "s/epoch",
        "epochs",
        "path",
        "status",
        "run",
    ]
    table = pd.DataFrame(rows, columns=columns)
    order = table["point"].eq(SCRATCH).astype(int) * 100 - table["freeze_at"]
    return table.loc[order.sort_values(kind="stable").index].reset_index(drop=True)


def sweep_points_frame(points: Sequence[Mapping[str, JSONValue]]) -> pd.DataFrame:
    """A live sweep's finished points (SweepPoint.to_dict()s of a sweep job's Snapshot.sweep) as a table."""
    columns = {
        "label": "point",
        "freeze_at": "freeze_at",
        "best_val_accuracy": "best val acc",
        "final_val_accuracy": "final val acc",
        "epoch_seconds": "s/epoch",
        "status": "status",
    }
    rows = [{name: p.get(key) for key, name in columns.items()} for p in points]
    return pd.DataFrame(rows, columns=list(columns.values()))


# --- the layer table at a freeze point ---------------------------------------------

FROZEN, TRAINABLE, PHASE_2, NEW, INPUT = "frozen", "trainable", "phase 2", "new", "input"
# Two shades per state, alternating by VGG block, so block boundaries show in the table.
STATE_COLOURS = {
    FROZEN: ("#dbeafe", "#bfdbfe"),
    TRAINABLE: ("#ffedd5", "#fed7aa"),
    PHASE_2: ("#f3e8ff", "#e9d5ff"),
    NEW: ("#dcfce7",) * 2,
    INPUT: ("#f3f4f6",) * 2,
}
# The legend under the table: each state in its colour, in the words a learner reads.
STATE_LEGEND = (
    ":blue-background[frozen] pretrained, kept as is · :orange-background[trainable] pretrained, fine-tuned · "
    ":violet-background[phase 2] frozen while the head learns, fine-tuned after · "
    ":green-background[new] the head: random start, always trained · shades alternate by VGG block."
)


def freeze_display(table: pd.DataFrame, freeze_at: int, phase_2_at: int | None = None) -> pd.DataFrame:
    """The layer table as a learner reads it at a freeze point, and after a second phase.

    Args:
        table: `tlcore.tf.model.layer_table` of a model (any freeze point).
        freeze_at: backbone layers frozen from the input side (phase 1).
        phase_2_at: the second phase's freeze point (smaller), or None for one phase.

    Returns:
        Columns '#', 'layer', 'type', 'output shape', 'params', 'block' and
        'state': frozen / trainable (pretrained backbone layers), trains in
        phase 2 (frozen in phase 1, trained after), new for the head
        trained from scratch, input for the layers without weights before the
        backbone.
    """
    index = table["freeze_index"]
    frozen_until = freeze_at if phase_2_at is None else phase_2_at
    state = np.where(table["part"] == "head", NEW, np.where(table["part"] == "input", INPUT, TRAINABLE))
    state = np.where(index.notna() & (index.fillna(0) > frozen_until) & (index.fillna(0) <= freeze_at), PHASE_2, state)
    state = np.where(index.notna() & (index.fillna(0) <= frozen_until), FROZEN, state)
    return pd.DataFrame(
        {
            "#": index,
            "layer": table["name"],
            "type": table["type"],
            "output shape": table["output_shape"],
            "params": table["params"],
            "block": table["block"],
            "state": state,
        }
    )


def styled_freeze_display(display: pd.DataFrame) -> Styler:
    """`freeze_display`'s table coloured by state, in alternating shades per VGG block, params with commas."""
    block_parity = display["block"].map(lambda block: int(block[-1]) % 2 if block.startswith("block") else 0)

    def colour(row: pd.Series) -> list[str]:
        return [f"background-color: {STATE_COLOURS[row['state']][block_parity[row.name]]}; color: #1f2937"] * len(row)

    return display.style.apply(colour, axis=1).format("{:,}", subset=["params"])


def freeze_summary(table: pd.DataFrame, freeze_at: int, phase_2_at: int | None = None) -> str:
    """Where the cut falls, in words: which layers stay fixed and which learn (in each phase)."""
    names = list(table[table["freeze_index"].notna()]["name"])
    if freeze_at <= 0:
        first = f"Nothing is frozen: all {len(names)} VGG16 layers and the head learn."
    elif freeze_at >= len(names):
        first = f"All {len(names)} VGG16 layers are frozen ({names[0]} … {names[-1]}): only the head learns."
    else:
        first = (
            f"Frozen: {names[0]} … {names[freeze_at - 1]} ({freeze_at} layers). "
            f"Learning: {names[freeze_at]} … {names[-1]} ({len(names) - freeze_at} layers) and the head."
        )
    if phase_2_at is None:
        return first
    unfrozen = names[phase_2_at : min(freeze_at, len(names))]
    return (
        f"Phase 1 — {first} Phase 2 — {unfrozen[0]} … {unfrozen[-1]} ({len(unfrozen)} layers) unfreeze too, "
        f"{'every layer' if phase_2_at == 0 else f'{phase_2_at} stay frozen'}."
    )
