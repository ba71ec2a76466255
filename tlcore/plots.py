"""Figures for the dashboard and for notebooks: confusion matrix, Grad-CAM overlay, learning curves.

Every function builds a `matplotlib.figure.Figure` directly and never touches
pyplot's global state: Streamlit runs each session in its own thread, and
pyplot's "current figure" is shared by all of them. A Figure made this way
is not registered with pyplot, so nothing needs closing; it is freed like any
other object. No TensorFlow at import time (the Runs page draws curves
without it).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

PHASE_LABELS = {1: "head / freeze point", 2: "fine-tuning"}
METRIC_LABELS = {
    "val_accuracy": "validation accuracy",
    "val_loss": "validation loss",
    "accuracy": "training accuracy",
    "loss": "training loss",
}


def confusion_matrix_figure(confusion: np.ndarray, class_names: Sequence[str], title: str | None = None) -> Figure:
    """A confusion matrix (rows: true class, columns: predicted class) with every count written in its cell.

    Colour is each cell's share of its row, so a small class's mistakes are as
    visible as a big class's.
    """
    confusion = np.asarray(confusion)
    n = len(class_names)
    if confusion.shape != (n, n):
        raise ValueError(f"confusion must be {n}x{n} for {n} class names. Received shape {confusion.shape}")
    row_totals = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, row_totals, out=np.zeros(confusion.shape, dtype=float), where=row_totals > 0)

    side = min(9.0, 2.2 + 0.7 * n)
    fig = Figure(figsize=(side, side * 0.85), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels=class_names, rotation=45 if n > 3 else 0, ha="right" if n > 3 else "center")
    ax.set_yticks(range(n), labels=class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title)
    for i in range(n):
        for j in range(n):
            # Dark text on light cells, light text on dark cells.
            ax.text(j, i, f"{int(confusion[i, j])}", ha="center", va="center", fontsize=12 if n <= 6 else 8,
                    color="white" if share[i, j] > 0.5 else "black")
    return fig


def gradcam_overlay(pixels: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4, colormap: str = "jet") -> np.ndarray:
    """Blend a Grad-CAM heatmap over an image.

    Args:
        pixels: uint8 (H, W, 3) RGB; the heatmap is resized to H x W (H == W).
        heatmap: floats in [0, 1] at the conv layer's resolution (e.g. 4x4).
        alpha: weight of the colour map; 0 gives the image back unchanged.

    Returns:
        uint8 (H, W, 3) RGB: the image where the heat is low, red where it is high.
    """
    # Imported here: tlcore.inference imports TensorFlow, which curves and
    # confusion matrices do not need.
    from tlcore.inference import upsample_heatmap

    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[-1] != 3 or pixels.shape[0] != pixels.shape[1]:
        raise ValueError(f"pixels must be a square (H, W, 3) RGB image. Received shape {pixels.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]. Received: alpha={alpha}")
    heat = upsample_heatmap(np.asarray(heatmap, dtype=np.float32), pixels.shape[0])
    colours = colormaps[colormap](heat)[..., :3] * 255.0  # RGBA floats in [0, 1] -> RGB 0..255
    blended = (1.0 - alpha) * pixels.astype(np.float32) + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def curves_figure(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    metric: str = "val_accuracy",
    title: str | None = None,
) -> Figure:
    """One line per run: `metric` against epoch, for overlaying several runs.

    Args:
        histories: run label -> history rows (as in history.csv: epoch, phase,
            partial and the metrics).
        metric: a history column, e.g. "val_accuracy" or "val_loss".

    A dotted vertical line in the run's colour marks where its fine-tuning
    phase began; an epoch cut short by Stop is drawn as a hollow marker.
    """
    fig = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for label, rows in histories.items():
        rows = [r for r in rows if metric in r]
        if not rows:
            continue
        epochs = [int(r["epoch"]) for r in rows]
        values = [float(r[metric]) for r in rows]
        (line,) = ax.plot(epochs, values, marker="o", markersize=4, label=label)
        partial = [(e, v) for e, v, r in zip(epochs, values, rows) if r.get("partial")]
        if partial:
            ax.plot(*zip(*partial), linestyle="none", marker="o", markersize=8,
                    markerfacecolor="white", color=line.get_color())
        starts = [e for prev, r, e in zip(rows, rows[1:], epochs[1:]) if r.get("phase") != prev.get("phase")]
        for start in starts:
            ax.axvline(start - 0.5, color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    if metric.endswith("accuracy"):
        ax.set_ylim(-0.02, 1.02)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    if ax.lines:  # below the axes: inside, it hides the very curves being compared
        fig.legend(loc="outside lower center", ncols=min(2, len(histories)), fontsize="small", frameon=False)
    return fig


def probabilities_figure(probabilities: Mapping[str, float], highlight: str | None = None) -> Figure:
    """Horizontal bars of class probabilities, the highlighted (e.g. top) class in a stronger colour."""
    names = list(probabilities)
    values = [float(probabilities[name]) for name in names]
    fig = Figure(figsize=(4.0, 0.5 + 0.35 * len(names)), layout="constrained")
    ax = fig.add_subplot()
    colours = ["tab:orange" if name == highlight else "tab:blue" for name in names]
    ax.barh(range(len(names)), values, color=colours)
    ax.set_yticks(range(len(names)), labels=names)
    ax.invert_yaxis()  # first class on top, like a table
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    for i, value in enumerate(values):
        ax.text(min(value + 0.02, 0.85), i, f"{value:.1%}", va="center", fontsize=9)
    return fig


def live_curves_chart(history: Sequence[Mapping[str, Any]], metric: str, title: str):
    """An Altair chart of a metric and its validation twin per epoch, for live training.

    Points mark every epoch (a run's first epoch is visible before there is a
    line), the epoch axis has whole numbers only, and a dashed rule marks
    where a fine-tuning phase begins.
    """
    import altair as alt
    import pandas as pd

    rows = [
        {"epoch": int(r["epoch"]), "series": name, "value": float(r[key])}
        for r in history
        for name, key in (("train", metric), ("validation", f"val_{metric}"))
    ]
    base = alt.Chart(pd.DataFrame(rows)).encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1, format="d"), title="epoch"),
        y=alt.Y("value:Q", title=title, scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom")),
    )
    chart = base.mark_line(point=True)
    starts = [int(r["epoch"]) for r in history if r.get("phase", 1) > 1][:1]
    if starts:
        rule = alt.Chart(pd.DataFrame({"epoch": [starts[0] - 0.5], "label": ["fine-tuning starts"]}))
        chart = chart + rule.mark_rule(strokeDash=[4, 4], color="gray").encode(x="epoch:Q", tooltip="label:N")
    return chart.properties(title=title, height=260)


def sweep_chart(points_df):
    """Best validation accuracy and seconds per epoch against trainable VGG16 layers (18 - freeze point).

    points_df: tlcore.sweep.sweep_table's frame. Pretrained points are joined by a line; the
    from-scratch baseline (point "scratch") is a dashed horizontal rule on the accuracy chart.
    """
    import altair as alt
    import pandas as pd

    points_df = pd.DataFrame(points_df)
    scratch = points_df[points_df["point"] == "scratch"]
    pretrained = points_df[points_df["point"] != "scratch"]
    x = alt.X("trainable layers:Q", title="trainable VGG16 layers (18 − freeze point)",
              scale=alt.Scale(domain=[0, 18]), axis=alt.Axis(tickMinStep=1, format="d"))
    tooltip = ["point:N", "best val acc:Q", "s/epoch:Q"]
    accuracy = alt.Chart(pretrained).mark_line(point=True).encode(
        x=x, y=alt.Y("best val acc:Q", title="best validation accuracy", scale=alt.Scale(domain=[0, 1])),
        tooltip=tooltip)
    scratch_acc = scratch["best val acc"].dropna()
    if not scratch_acc.empty:
        rule = pd.DataFrame({"best val acc": [float(scratch_acc.iloc[0])], "label": ["from scratch"]})
        accuracy = accuracy + alt.Chart(rule).mark_rule(strokeDash=[6, 4], color="crimson").encode(
            y="best val acc:Q", tooltip=["label:N", "best val acc:Q"])
    speed = alt.Chart(pretrained).mark_line(point=True, color="darkorange").encode(
        x=x, y=alt.Y("s/epoch:Q", title="seconds per epoch"), tooltip=tooltip)
    return alt.hconcat(accuracy.properties(title="Validation accuracy (best)", height=260),
                       speed.properties(title="Time per epoch", height=260))
