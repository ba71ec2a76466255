"""Charts for the dashboard and for notebooks (Altair).

Every chart is sized for a projector: the sizes and font sizes below are defined once and used by every
chart, so the Train, Inference, Runs and Dataset pages look alike. Charts set no text or background colours
of their own (except counts written on heatmap cells, which must contrast with the cell, a rule's label in
its rule's colour, and the grey of the accuracy reached without learning), so Streamlit's light and dark
themes both apply. Loss is drawn on a log scale (one diverging epoch does not flatten the rest) and accuracy
and probability on a fixed 0..1 axis (0.45 vs 0.55 stays the coin toss it is). The Grad-CAM overlay and its
colours are `tlcore.tf.gradcam`'s.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import altair as alt
import numpy as np
import pandas as pd

from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.baselines import Baseline
from tlcore.cka import cka_words
from tlcore.data import TRAIN, VALIDATION
from tlcore.history import Cell, EpochRow
from tlcore.lr_finder import format_rate
from tlcore.transfer_curve import CONDITION_WORDS, CONDITIONS, FINE_TUNED, KEPT, RANDOM, REINITIALISED, TransferCurve
from tlcore.weight_changes import HEAD, RepresentationChanges, WeightChanges

# What every chart function returns: the chart kinds st.altair_chart accepts (alt.layer's type names a facet too).
AltairChart = alt.Chart | alt.LayerChart | alt.FacetChart | alt.HConcatChart | alt.VConcatChart
# A Vega-Lite spec as Altair's to_dict makes it: JSON whose nested parts a chart reads and copies by key.
VegaSpec = dict[str, Any]
Tooltips = list[str | alt.Tooltip]  # a chart's tooltip fields: names, or alt.Tooltip where it formats one

PLOT_HEIGHT = 260  # px of plot area; the title, axes and legend come on top of it (see _projector)
BAR_STEP = 36  # px per bar in horizontal bar charts
PROBABILITY_LABEL_LIMIT = 240  # px: a class name and its percentage, whole (Streamlit's theme cut them shorter)
CELL_SIZE = 64  # px per class in a confusion matrix (at least PLOT_HEIGHT in all)
LABEL_FONT_SIZE = 15  # axis tick labels, legend labels, counts in cells
AXIS_TITLE_FONT_SIZE = 16
TITLE_FONT_SIZE = 18  # a chart's own title
# Series colours far apart in hue and readable on a light and a dark background
# (Streamlit's own palette starts with dark blue then light blue: two runs looked alike).
CATEGORY_SCHEME = "tableau10"
PREDICTED_COLOUR = "#f58518"  # tableau10's orange: the predicted class's bar
CONV_COLOUR = "#4c78a8"  # tableau10's blue: VGG16's conv layers in the weight-change and CKA charts
LINE_WIDTH = 3  # px; thinner lines fade on a projector
# A grey that reads on light and dark backgrounds: accuracy without learning, and text Streamlit's themes leave out.
BASELINE_COLOUR = "#8c8c8c"

METRIC_LABELS = {
    "val_accuracy": "validation accuracy",
    "val_loss": "validation loss",
    "accuracy": "training accuracy",
    "loss": "training loss",
}
PHASE_2_NOTE = "fine-tuning starts"


def _projector(chart: AltairChart, fit_width: bool = True) -> AltairChart:
    """The shared fonts, and a height that is the plot's own.

    Streamlit's default autosize ("fit") squeezes title, axes and legend into
    the given height, which left live curves ~60 px of plot. "fit-x" fits only
    the width to the column; "pad" keeps the chart's own width too.
    """
    autosize = alt.AutoSizeParams(type="fit-x" if fit_width else "pad", contains="padding")
    return (
        chart.properties(autosize=autosize)
        .configure_axis(labelFontSize=LABEL_FONT_SIZE, titleFontSize=AXIS_TITLE_FONT_SIZE)
        .configure_legend(labelFontSize=LABEL_FONT_SIZE, titleFontSize=LABEL_FONT_SIZE, labelLimit=0)
        .configure_title(fontSize=TITLE_FONT_SIZE)
        .configure_range(category={"scheme": CATEGORY_SCHEME})
    )


def log_ticks(values: Sequence[float]) -> list[float]:
    """Round ticks for a log axis over `values`: 1, 2, 5 per decade, or only powers of ten over many decades.

    Vega's own log ticks label a few of the 1..9 multiples and draw a grid line at every one of them.
    """
    positive = [v for v in values if v > 0]
    if not positive:
        return []
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    multiples = (1, 2, 5) if high - low <= 3 else (1,)
    return [float(f"{m}e{k}") for k in range(low, high + 1) for m in multiples if m == 1 or k < high]


def metric_scale(metric: str) -> alt.Scale:
    """Accuracy on a fixed 0..1 axis, loss on a log axis, anything else fitted to its values."""
    if metric.endswith("accuracy"):
        return alt.Scale(domain=[0, 1])
    if metric.endswith("loss"):
        return alt.Scale(type="log")
    return alt.Scale(zero=False)


def metric_format(metric: str) -> str:
    """Axis label format: accuracy in percent, like the tables and the probability bars."""
    return "%" if metric.endswith("accuracy") else "~g"


def _plottable(metric: str, value: Cell | None) -> bool:
    """A value the metric's axis can show: finite, and above zero on a log axis."""
    if value is None:
        return False
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and (value > 0 or not metric.endswith("loss"))


WHOLE_EPOCH_LABELS = "datum.value % 1 ? '' : datum.label"  # Vega: label whole epochs only


def _curves(
    points: list[dict],
    rules: list[dict],
    series: str,
    metric: str,
    y_title: str,
    title: str | None,
    legend_direction: Literal["horizontal", "vertical"],
    baselines: Sequence[Baseline] = (),
) -> AltairChart:
    """Lines per `series` over epochs, a filled point per epoch, a hollow one for a partial epoch,
    a dashed rule where a series' fine-tuning phase began, and on accuracy the levels reached without
    learning (`tlcore.baselines`) as dotted grey lines with their labels.

    points: {series, "epoch", "value", "partial"} and optionally "running" (the epoch in progress: on the
    line, no marker); rules: {"epoch" (the rule's x), "note"} and optionally {series}. legend_direction:
    "horizontal" for short labels, "vertical" for one per line.
    """
    # A running point at a fraction of an epoch can bring a tick between two epochs: it gets no label, so
    # no axis reads "1, 1".
    epochs = alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d", labelExpr=WHOLE_EPOCH_LABELS))
    ticks = (log_ticks([p["value"] for p in points]) if metric.endswith("loss") else None) or alt.Undefined
    value = alt.Y(
        "value:Q", title=y_title, scale=metric_scale(metric), axis=alt.Axis(values=ticks, format=metric_format(metric))
    )
    order = list(dict.fromkeys(p[series] for p in points))  # the legend in the order given (k=0, k=3, ... k=18)
    colour = alt.Color(
        f"{series}:N", title=None, sort=order, legend=alt.Legend(orient="bottom", direction=legend_direction)
    )
    tooltip: Tooltips = [f"{series}:N", "epoch:Q", alt.Tooltip("value:Q", format=".3f")]
    frame = pd.DataFrame(
        [{"running": False, **point} for point in points], columns=[series, "epoch", "value", "partial", "running"]
    )
    base = alt.Chart(frame).encode(x=epochs, y=value, color=colour, tooltip=tooltip)
    layers = [
        base.mark_line(strokeWidth=LINE_WIDTH),
        base.mark_point(filled=True, size=80).transform_filter("!datum.partial && !datum.running"),
        # Hollow and bigger: an epoch cut short by Stop is not comparable to a full one.
        base.mark_point(filled=False, size=200, strokeWidth=LINE_WIDTH).transform_filter("datum.partial"),
    ]
    if rules:  # in the series' colour where rules belong to series (runs); grey for the one live run
        per_series = series in rules[0]
        rule = alt.Chart(pd.DataFrame(rules)).mark_rule(strokeDash=[6, 4], strokeWidth=2, color="gray")
        layers.append(
            rule.encode(
                x="epoch:Q",
                tooltip=[alt.Tooltip("note:N", title="")],
                **({"color": alt.Color(f"{series}:N")} if per_series else {}),
            )
        )
    if baselines and metric.endswith("accuracy"):
        layers += _baseline_layers(baselines)
    chart = alt.layer(*layers).properties(height=PLOT_HEIGHT)
    if title:
        chart = chart.properties(title=title)
    return _projector(chart)


def _baseline_layers(baselines: Sequence[Baseline]) -> list[alt.Chart]:
    """Dotted grey lines at the accuracies reached without learning, each labelled at the left edge.

    Grey reads on both themes; the labels sit just above their lines, inside the plot.
    """
    levels = alt.Chart(pd.DataFrame([{"level": b.accuracy, "label": b.label} for b in baselines]))
    rule = levels.mark_rule(strokeDash=[2, 4], strokeWidth=2, color=BASELINE_COLOUR)
    text = levels.mark_text(align="left", baseline="bottom", dx=4, dy=-3, color=BASELINE_COLOUR, fontSize=13)
    return [
        rule.encode(y="level:Q", tooltip=[alt.Tooltip("label:N", title="without learning")]),
        text.encode(y="level:Q", x=alt.value(0), text="label:N"),
    ]


def with_running_point(spec: VegaSpec, epoch: float, value: float) -> VegaSpec:
    """A copy of a curves spec whose training line reaches on to the epoch in progress (x: fractional epoch).

    Only the main dataset's list is copied and extended, so a live redraw costs no chart building. The main
    dataset is the chart's own, or its first layer's when other layers (rules, baselines) bring data of theirs.
    """
    name = (spec.get("data") or spec["layer"][0]["data"])["name"]
    row = {"series": "train", "epoch": epoch, "value": value, "partial": False, "running": True}
    return {**spec, "datasets": {**spec["datasets"], name: [*spec["datasets"][name], row]}}


def _phase_2_start(rows: Sequence[EpochRow]) -> int | None:
    """The first epoch of a later phase than the one before it, if any."""
    for previous, row in itertools.pairwise(rows):
        if row.phase != previous.phase:
            return row.epoch
    return None


def _metric(row: EpochRow, name: str) -> float:
    """A metric of an epoch by its history column's name ("loss", "val_accuracy", ...)."""
    value = getattr(row, name)
    return float(value) if isinstance(value, (int, float)) else math.nan


def live_curves_chart(
    history: Sequence[EpochRow], metric: str, title: str, baselines: Sequence[Baseline] = ()
) -> AltairChart:
    """A metric and its validation twin per epoch, for live training ("loss" or "accuracy").

    Points mark every epoch (a run's first epoch is visible before there is a
    line), the epoch axis has whole numbers only, and a dashed rule marks
    where a fine-tuning phase begins.
    """
    points = [
        {"series": name, "epoch": r.epoch, "value": _metric(r, key), "partial": r.partial}
        for r in history
        for name, key in (("train", metric), ("validation", f"val_{metric}"))
        if _plottable(metric, _metric(r, key))
    ]
    start = _phase_2_start(history)
    rules = [{"epoch": start - 0.5, "note": PHASE_2_NOTE}] if start else []
    y_title = f"{title.lower()} (log scale)" if metric.endswith("loss") else title.lower()
    return _curves(points, rules, "series", metric, y_title, title, "horizontal", baselines)


def curves_chart(
    histories: Mapping[str, Sequence[EpochRow]],
    metric: str = "val_accuracy",
    title: str | None = None,
    baselines: Sequence[Baseline] = (),
) -> AltairChart:
    """One line per run: `metric` against epoch, for overlaying several runs.

    Args:
        histories: run label -> its epochs (a History).
        metric: a history column, e.g. "val_accuracy" or "val_loss".

    A dashed vertical rule in the run's colour marks where its fine-tuning
    phase began; an epoch cut short by Stop is drawn as a hollow marker.
    """
    points, rules = [], []
    for label, rows in histories.items():
        points += [
            {"run": label, "epoch": r.epoch, "value": _metric(r, metric), "partial": r.partial}
            for r in rows
            if _plottable(metric, _metric(r, metric))
        ]
        if start := _phase_2_start(rows):
            rules.append({"run": label, "epoch": start - 0.5, "note": PHASE_2_NOTE})
    label = METRIC_LABELS.get(metric, metric)
    y_title = f"{label} (log scale)" if metric.endswith("loss") else label
    # Run labels are long: one per line.
    return _curves(points, rules, "run", metric, y_title, title or label.capitalize(), "vertical", baselines)


def probabilities_chart(probabilities: Mapping[str, float], highlight: str | None = None) -> AltairChart:
    """Horizontal bars of class probabilities on a fixed 0..1 axis, the highlighted (e.g. top) class
    in another colour; each class's percentage is written beside its name."""
    frame = pd.DataFrame(
        {
            "class": list(probabilities),
            "probability": [float(p) for p in probabilities.values()],
            "label": [f"{name}  {float(p):.1%}" for name, p in probabilities.items()],
            "shown": ["predicted" if name == highlight else "other" for name in probabilities],
        }
    )
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(
                "probability:Q",
                title="probability",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1]),
            ),
            # The given order: first class on top, like a table; labels whole ("vehicles  100.0%" was cut).
            y=alt.Y("label:N", title=None, sort=None, axis=alt.Axis(labelLimit=PROBABILITY_LABEL_LIMIT)),
            # The prediction in the palette's strong colour, the other classes in a grey that reads on either theme.
            color=alt.Color(
                "shown:N", scale=alt.Scale(domain=["predicted", "other"], range=[PREDICTED_COLOUR, "gray"]), legend=None
            ),
            tooltip=["class:N", alt.Tooltip("probability:Q", format=".1%")],
        )
        .properties(height=alt.Step(BAR_STEP))
    )
    return _projector(chart)


CONFUSION_CELL = "cell"  # the confusion matrix's click selection: {"true class": ..., "predicted class": ...}


def confusion_matrix_chart(
    confusion: np.ndarray, class_names: Sequence[str], title: str | None = None, clickable: bool = False
) -> AltairChart:
    """A confusion matrix heatmap (rows: true class, columns: predicted class) with every count in its cell.

    Colour is each cell's share of its row, so a small class's mistakes are as
    visible as a big class's. `clickable`: a click selects a cell (the selection CONFUSION_CELL, outlined),
    for `st.altair_chart(on_select="rerun")`.
    """
    confusion = np.asarray(confusion)
    n = len(class_names)
    if confusion.shape != (n, n):
        raise ValueError(f"confusion must be {n}x{n} for {n} class names. Received shape {confusion.shape}")
    row_totals = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, row_totals, out=np.zeros(confusion.shape, dtype=float), where=row_totals > 0)
    frame = pd.DataFrame(
        [
            {
                "true class": class_names[i],
                "predicted class": class_names[j],
                "count": int(confusion[i, j]),
                "share of row": float(share[i, j]),
            }
            for i in range(n)
            for j in range(n)
        ]
    )
    order = list(class_names)
    base = alt.Chart(frame).encode(
        x=alt.X("predicted class:N", sort=order, axis=alt.Axis(labelAngle=-45 if n > 3 else 0, orient="top")),
        y=alt.Y("true class:N", sort=order),
        tooltip=["true class:N", "predicted class:N", "count:Q", alt.Tooltip("share of row:Q", format=".0%")],
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "share of row:Q",
            scale=alt.Scale(scheme="blues", domain=[0, 1]),
            legend=alt.Legend(format="%", title="share of row", orient="bottom"),
        )
    )
    if clickable:  # a click on a cell's count selects it too: both marks share the layer's scope
        picked = alt.selection_point(name=CONFUSION_CELL, fields=["true class", "predicted class"], on="click")
        cells = cells.add_params(picked).encode(
            stroke=alt.condition(picked, alt.value(PREDICTED_COLOUR), alt.value(None)),
            strokeWidth=alt.condition(picked, alt.value(4), alt.value(0)),
        )
    # The counts sit on the cells, not on the page: dark on light cells, light on dark ones, in either theme.
    counts = base.mark_text(fontSize=LABEL_FONT_SIZE + (4 if n <= 6 else 0), fontWeight="bold").encode(
        text="count:Q", color=alt.condition("datum['share of row'] > 0.5", alt.value("white"), alt.value("black"))
    )
    side = max(PLOT_HEIGHT, CELL_SIZE * n)
    chart = alt.layer(cells, counts).properties(width=side, height=side)
    if title:
        chart = chart.properties(title=title)
    return _projector(chart, fit_width=False)


def class_counts_chart(counts: Mapping[str, Mapping[str, int]]) -> AltairChart:
    """Images per class, one bar per split side by side (`DatasetInfo.counts()`: {split: {class: n}})."""
    frame = pd.DataFrame(
        [
            {"class": name, "split": split, "images": int(n)}
            for split, per_class in counts.items()
            for name, n in per_class.items()
        ]
    )
    classes = list(dict.fromkeys(frame["class"])) if not frame.empty else []
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("images:Q", title="images", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("class:N", title="class", sort=classes),
            yOffset=alt.YOffset("split:N", sort=list(counts)),
            color=alt.Color("split:N", sort=list(counts), title=None, legend=alt.Legend(orient="bottom")),
            tooltip=["class:N", "split:N", "images:Q"],
        )
        .properties(height=max(PLOT_HEIGHT, BAR_STEP * len(classes) * max(len(counts), 1)))
    )
    return _projector(chart)


def sweep_charts(points_df: pd.DataFrame, baselines: Sequence[Baseline] = ()) -> tuple[AltairChart, AltairChart]:
    """Validation accuracy (of each point's model), and seconds per epoch, against the freeze point.

    points_df: dashboard.tables.saved_sweep_frame's frame. The freeze point runs left to right from 0 to 18,
    as the Model page's slider does. Pretrained points are joined by a line; the from-scratch baseline
    (point "scratch") is a dashed horizontal rule on the accuracy chart, beside the accuracies reached
    without learning. Two charts, not one concatenated: each fills its own column like every other chart.
    """
    points_df = pd.DataFrame(points_df)
    scratch = points_df[points_df["point"] == "scratch"]
    pretrained = points_df[points_df["point"] != "scratch"]
    x = alt.X(
        "freeze_at:Q",
        title="freeze point (VGG16 layers frozen)",
        scale=alt.Scale(domain=[0, VGG16_LAYERS]),
        axis=alt.Axis(tickMinStep=1, format="d"),
    )
    tooltip = [
        "point:N",
        alt.Tooltip("final val acc:Q", format=".1%", title="val acc"),
        alt.Tooltip("best val acc:Q", format=".1%"),
        alt.Tooltip("s/epoch:Q", format=".2f"),
    ]
    accuracy: alt.Chart | alt.LayerChart | alt.FacetChart = (
        alt.Chart(pretrained)
        .mark_line(strokeWidth=LINE_WIDTH, point=alt.OverlayMarkDef(size=80))
        .encode(
            x=x,
            y=alt.Y(
                "final val acc:Q",
                title="validation accuracy",
                scale=metric_scale("val_accuracy"),
                axis=alt.Axis(format=metric_format("val_accuracy")),
            ),
            tooltip=tooltip,
        )
    )
    scratch_acc = scratch["final val acc"].dropna()
    if not scratch_acc.empty:
        rule = pd.DataFrame({"final val acc": [float(scratch_acc.iloc[0])], "label": ["from scratch"]})
        accuracy = accuracy + alt.Chart(rule).mark_rule(strokeDash=[6, 4], strokeWidth=2, color="crimson").encode(
            y="final val acc:Q", tooltip=["label:N", alt.Tooltip("final val acc:Q", format=".1%")]
        )
    if baselines:
        accuracy = alt.layer(accuracy, *_baseline_layers(baselines))
    speed = (
        alt.Chart(pretrained)
        .mark_line(strokeWidth=LINE_WIDTH, point=alt.OverlayMarkDef(size=80), color="darkorange")
        .encode(x=x, y=alt.Y("s/epoch:Q", title="seconds per epoch"), tooltip=tooltip)
    )
    return (
        _projector(accuracy.properties(title="Validation accuracy (the model kept)", height=PLOT_HEIGHT)),
        _projector(speed.properties(title="Time per epoch", height=PLOT_HEIGHT)),
    )


def gradcam_colorbar(width: int, colours: Sequence[str]) -> AltairChart:
    """The colour bar that goes with the Grad-CAM overlay: its colours (`tlcore.tf.gradcam.colorbar_colours`,
    from "low" to "high" attention) side by side, `width` px wide."""
    steps = len(colours)
    frame = pd.DataFrame(
        {"start": np.arange(steps) / steps, "end": np.arange(1, steps + 1) / steps, "colour": list(colours)}
    )
    chart = (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X(
                "start:Q",
                scale=alt.Scale(domain=[0, 1], nice=False),
                axis=alt.Axis(values=[0, 1], labelExpr="datum.value < 0.5 ? 'low' : 'high'", grid=False),
                title="attention",
            ),
            x2="end:Q",
            color=alt.Color("colour:N", scale=None),  # the hex values as they are
        )
        .properties(width=width, height=18)
    )
    return _projector(chart, fit_width=False)


def probe_chart(scores: pd.DataFrame, chance: float) -> AltairChart:
    """Probe accuracy against depth: one line per weighting, and chance as a dashed rule.

    scores: columns "freeze point", "layer", "weights" (a side's title) and "accuracy" (None: not probed).
    """
    scores = pd.DataFrame(scores).dropna(subset=["accuracy"])
    x = alt.X(
        "freeze point:Q",
        title="depth: freeze point (layers from the input)",
        scale=alt.Scale(domain=[0, VGG16_LAYERS]),
        axis=alt.Axis(values=sorted(scores["freeze point"].unique().tolist()), format="d"),
    )
    y = alt.Y(
        "accuracy:Q",
        title="probe accuracy (validation)",
        scale=metric_scale("val_accuracy"),
        axis=alt.Axis(format=metric_format("val_accuracy")),
    )
    tooltip = ["weights:N", "layer:N", "freeze point:Q", alt.Tooltip("accuracy:Q", format=".1%")]
    lines = (
        alt.Chart(scores)
        .mark_line(strokeWidth=LINE_WIDTH, point=alt.OverlayMarkDef(size=100, filled=True))
        .encode(x=x, y=y, color=alt.Color("weights:N", title=None, legend=alt.Legend(orient="bottom")), tooltip=tooltip)
    )
    rule = pd.DataFrame({"accuracy": [chance], "freeze point": [VGG16_LAYERS], "label": [f"chance ({chance:.0%})"]})
    chance_rule = alt.Chart(rule).mark_rule(strokeDash=[6, 4], strokeWidth=2, color="gray").encode(y="accuracy:Q")
    chance_label = (
        alt.Chart(rule)
        .mark_text(align="right", baseline="bottom", dy=-4, fontSize=LABEL_FONT_SIZE, color="gray")
        .encode(x="freeze point:Q", y="accuracy:Q", text="label:N")
    )
    chart = alt.layer(lines, chance_rule, chance_label)
    return _projector(chart.properties(title="Linear probe accuracy by depth", height=PLOT_HEIGHT))


def class_results_chart(results: pd.DataFrame) -> AltairChart:
    """The class's experiment: each finished run a point, validation accuracy against the freeze point,
    ImageNet and random weights in two colours (a line through each side's mean per freeze point), and
    chance as a dotted grey line.

    results: columns "name", "freeze point", "weights" ("ImageNet" / "random"), "val accuracy", "chance".
    """
    results = pd.DataFrame(results)
    x = alt.X(
        "freeze point:Q",
        title="freeze point (VGG16 layers frozen)",
        scale=alt.Scale(domain=[0, VGG16_LAYERS]),
        axis=alt.Axis(tickMinStep=1, format="d"),
    )
    y = alt.Y(
        "val accuracy:Q",
        title="validation accuracy",
        scale=metric_scale("val_accuracy"),
        axis=alt.Axis(format=metric_format("val_accuracy")),
    )
    colour = alt.Color(
        "weights:N",
        title=None,
        scale=alt.Scale(domain=["ImageNet", "random"], range=["#1f77b4", "#d62728"]),
        legend=alt.Legend(orient="bottom"),
    )
    tooltip = ["name:N", "weights:N", "freeze point:Q", alt.Tooltip("val accuracy:Q", format=".1%")]
    base = alt.Chart(results)
    points = base.mark_circle(size=120, opacity=0.8).encode(x=x, y=y, color=colour, tooltip=tooltip)
    means = base.mark_line(strokeWidth=LINE_WIDTH).encode(x=x, y="mean(val accuracy):Q", color=colour)
    chance = float(results["chance"].max()) if len(results) else 0.5
    levels = _baseline_layers([Baseline(f"chance {chance:.0%}", chance)])
    chart = alt.layer(points, means, *levels)
    return _projector(chart.properties(title="The class's transfer curve", height=PLOT_HEIGHT))


def feature_map_chart(
    points: pd.DataFrame, title: str, class_names: Sequence[str], subtitle: Sequence[str] = ()
) -> AltairChart:
    """A 2-D map of images: one point per image at its projected features, coloured by class,
    a circle for a training image and a triangle for a validation one; hovering shows the image's name.

    points: columns "x", "y", "class", "split", "image". subtitle: lines under the title (short: the map
    may be a third of a projector's width, and Vega cuts what does not fit).
    """
    base = alt.Chart(pd.DataFrame(points)).encode(
        x=alt.X("x:Q", title="component 1", axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("y:Q", title="component 2", axis=alt.Axis(labels=False, ticks=False)),
        color=alt.Color("class:N", sort=list(class_names), title=None, legend=alt.Legend(orient="bottom")),
        shape=alt.Shape(
            "split:N",
            title=None,
            scale=alt.Scale(domain=[TRAIN, VALIDATION], range=["circle", "triangle-up"]),
            legend=alt.Legend(orient="top", direction="horizontal"),  # beside the classes it overflowed
        ),
        tooltip=["image:N", "class:N", "split:N"],
    )
    chart = base.mark_point(size=90, filled=True, opacity=0.85, strokeWidth=2).properties(
        title=alt.TitleParams(
            title,
            subtitle=list(subtitle) or alt.Undefined,
            subtitleFontSize=LABEL_FONT_SIZE,
            subtitleColor=BASELINE_COLOUR,  # Streamlit's themes colour the title, not the subtitle
        ),
        height=PLOT_HEIGHT,
    )
    return _projector(chart)


CHANGE_AXIS_TITLE = "weight change ‖W − W₀‖ / ‖W₀‖ (log scale)"
CHANGE_PARTS = {"backbone": "VGG16 conv layer", HEAD: "head"}  # LayerChange.part in a legend's words


def change_domain(*runs: WeightChanges) -> tuple[float, float]:
    """A log axis from the decade below the smallest relative change that moved to the decade above the largest,
    shared by the runs so their bars compare at a glance ((1e-4, 1) when nothing moved)."""
    moved = [c for run in runs for layer in run.layers if (c := layer.relative_change) is not None and c > 0]
    if not moved:
        return 1e-4, 1.0
    # Half a decade or more above the largest: room for its value written beside its bar.
    return 10.0 ** math.floor(math.log10(min(moved))), 10.0 ** math.ceil(math.log10(max(moved)) + 0.5)


def weight_changes_chart(
    changes: WeightChanges, title: str | None = None, domain: tuple[float, float] | None = None
) -> AltairChart:
    """One horizontal bar per layer with weights, input side on top: how far it moved from where the run started.

    The change is on a log axis (early layers may move 1e-4 of their size,
    the head about 1) with its value written beside each bar; a frozen layer
    has no bar, the words "frozen: unchanged" instead. VGG16's convolutions
    and the head's layers have different colours.

    Args:
        domain: the log axis' ends; give two runs the same (`change_domain`) to set them side by side.
    """
    low, high = domain or change_domain(changes)
    rows = []
    for layer in changes.layers:
        change = layer.relative_change
        moved = change if change is not None and change > 0 else None
        rows.append(
            {
                "layer": layer.name,
                "block": layer.block,
                "part": CHANGE_PARTS.get(layer.part, layer.part),
                "status": "trained" if layer.trained else "frozen",
                "change": None if moved is None else max(moved, low),  # a bar below the axis shows, at its start
                "relative change": change,
                "start": low,
                "note": f"{moved:.2g}" if moved else ("frozen: unchanged" if not layer.trained else "unchanged"),
            }
        )
    frame = pd.DataFrame(rows)
    y = alt.Y("layer:N", title=None, sort=list(frame["layer"]))  # the model's order: the input side on top
    tooltip: Tooltips = ["layer:N", "block:N", "status:N", alt.Tooltip("relative change:Q", format=".3g")]
    scale = alt.Scale(type="log", domain=[low, high], nice=False)
    decades = [10.0**k for k in range(round(math.log10(low)), round(math.log10(high)) + 1)]
    x = alt.X("change:Q", title=CHANGE_AXIS_TITLE, scale=scale, axis=alt.Axis(values=decades, format="~g"))
    base = alt.Chart(frame).encode(y=y, tooltip=tooltip)
    bars = (
        base.transform_filter("datum.change != null")
        .mark_bar()
        .encode(
            x=x,
            x2="start:Q",
            color=alt.Color(
                "part:N",
                title=None,
                scale=alt.Scale(domain=list(CHANGE_PARTS.values()), range=[CONV_COLOUR, PREDICTED_COLOUR]),
                legend=alt.Legend(orient="bottom"),
            ),
        )
    )
    # Text marks get no colour from Streamlit's themes (Vega's default black vanished on the dark one): the
    # values in their bar's colour, "frozen: unchanged" in a grey that reads on both.
    values = (
        base.transform_filter("datum.change != null")
        .mark_text(align="left", dx=4, fontSize=LABEL_FONT_SIZE)
        .encode(x="change:Q", text="note:N", color=alt.Color("part:N", sort=list(CHANGE_PARTS.values()), legend=None))
    )
    unchanged = (
        base.transform_filter("datum.change == null")
        .mark_text(align="left", dx=4, fontSize=LABEL_FONT_SIZE, fontStyle="italic", color=BASELINE_COLOUR)
        .encode(x="start:Q", text="note:N")
    )
    chart = alt.layer(bars, values, unchanged).properties(height=alt.Step(BAR_STEP))
    if title:
        chart = chart.properties(title=title)
    return _projector(chart)


CKA_AXIS_TITLE = "1 − CKA: how much it changed (log scale)"
CKA_LABEL_LIMIT = 260  # px: "block5_conv3  0.9999950" whole, at the projector's label size


def cka_domain(*runs: RepresentationChanges) -> float:
    """The left end of a shared 1 − CKA log axis: the decade below the smallest change any trained layer shows
    (1e-6 when none changed), so two runs' bars compare at a glance."""
    changes = [1.0 - layer.cka for run in runs for layer in run.layers if layer.trained and 1.0 - layer.cka > 0.0]
    return 10.0 ** math.floor(math.log10(min(changes))) if changes else 1e-6


def cka_chart(
    representations: RepresentationChanges, title: str | None = None, low: float | None = None
) -> AltairChart:
    """One horizontal bar per conv layer, input side on top: 1 − CKA of its activations before and after.

    Fine-tuning at a low rate leaves CKA at 0.99 and above, where bars on a 0..1 axis all look full: 1 − CKA on
    a log axis from `low` (`cka_domain`, shared by the runs shown) to 1 shows which layers moved, in the conv
    layers' colour of the weight-change chart above it. Each layer's CKA is in its label (to as many decimals as
    tell it from 1), the frozen ones' "frozen: 1", so no text runs past the plot on a narrow screen.
    """
    low = low or cka_domain(representations)
    rows = [
        {
            "layer": f"{layer.name}  {cka_words(layer.cka) if layer.trained else 'frozen: 1'}",
            "status": "trained" if layer.trained else "frozen: 1 by construction",
            "cka": layer.cka if math.isfinite(layer.cka) else None,
            "change": max(1.0 - layer.cka, low) if layer.trained and math.isfinite(layer.cka) else None,
            "start": low,
        }
        for layer in representations.layers
    ]
    frame = pd.DataFrame(rows)
    decades = [10.0**k for k in range(round(math.log10(low)), 1)]
    x = alt.X(
        "change:Q",
        title=CKA_AXIS_TITLE,
        scale=alt.Scale(type="log", domain=[low, 1.0], nice=False),
        axis=alt.Axis(values=decades[:: max(1, len(decades) // 4)], format="~e"),
    )
    bars = (
        alt.Chart(frame)
        .transform_filter("datum.change != null")
        .mark_bar(color=CONV_COLOUR)
        .encode(
            x=x,
            x2="start:Q",
            y=alt.Y("layer:N", title=None, sort=list(frame["layer"]), axis=alt.Axis(labelLimit=CKA_LABEL_LIMIT)),
            tooltip=["layer:N", "status:N", alt.Tooltip("cka:Q", title="CKA", format=".6f")],
        )
    )
    # The frozen layers keep their rows (and labels) without a bar: an empty layer on the same y-axis.
    rows_kept = (
        alt.Chart(frame)
        .mark_point(opacity=0)
        .encode(
            x=alt.X("start:Q", scale=alt.Scale(type="log", domain=[low, 1.0], nice=False)),
            y=alt.Y("layer:N", sort=list(frame["layer"])),
        )
    )
    chart = alt.layer(bars, rows_kept).properties(height=alt.Step(BAR_STEP))
    if title:
        chart = chart.properties(title=title)
    return _projector(chart)


LR_FINDER_TITLE = "Loss as the learning rate rises"
SUGGESTED_COLOUR = PREDICTED_COLOUR  # the palette's strong orange: the one rate the chart recommends


def lr_finder_chart(
    curve: pd.DataFrame,
    marked: Sequence[float],
    suggested: float | None = None,
    ceiling: float | None = None,
    title: str = LR_FINDER_TITLE,
) -> AltairChart:
    """The range test's smoothed loss against the learning rate on a log axis, with labelled rules: the marked
    rates dashed grey (labels above the plot), the suggested rate solid orange (label inside, at the top).

    curve: columns "rate", "smoothed loss" and "loss" (the batch's own). The loss axis is linear from 0, as
    fastai draws it: a shoot-up reads as one, and the wobble of a low loss (a trained head's 0.02 to 0.2)
    does not look like a change. ceiling: the loss axis' top (the stop rule's threshold), so the one step that
    blew up does not flatten the rest; the line is clipped there. The rate axis spans the marked rates too,
    so a sweep that blew up before 1e-3 still shows where 1e-3 is.
    """
    curve = pd.DataFrame(curve)
    rates = [*curve["rate"], *marked]
    low_rate, high_rate = min(rates), max(rates)
    x_scale = alt.Scale(type="log", domain=[low_rate, high_rate], nice=False)
    x_ticks = [t for t in log_ticks(rates) if low_rate <= t <= high_rate]
    x = alt.X("rate:Q", title="learning rate (log scale)", scale=x_scale, axis=alt.Axis(values=x_ticks, format="~e"))
    top = float(curve["smoothed loss"].max()) if ceiling is None else min(float(curve["smoothed loss"].max()), ceiling)
    y = alt.Y("smoothed loss:Q", title="training loss (smoothed)", scale=alt.Scale(domain=[0, top * 1.05], nice=False))
    tooltip = [
        alt.Tooltip("rate:Q", format=".2e"),
        alt.Tooltip("smoothed loss:Q", format=".3f"),
        alt.Tooltip("loss:Q", title="batch loss", format=".3f"),
    ]
    line = alt.Chart(curve).mark_line(strokeWidth=LINE_WIDTH, clip=True).encode(x=x, y=y, tooltip=tooltip)
    rules = pd.DataFrame({"rate": list(marked), "label": [format_rate(r) for r in marked]})
    marked_rules = alt.Chart(rules).mark_rule(strokeDash=[6, 4], strokeWidth=2, color="gray").encode(x="rate:Q")
    marked_labels = (  # above the plot, where no curve can hide them
        alt.Chart(rules)
        .mark_text(align="center", baseline="bottom", dy=-4, fontSize=LABEL_FONT_SIZE, color="gray")
        .encode(x="rate:Q", y=alt.value(0), text="label:N")
    )
    layers: list[alt.Chart] = [line, marked_rules, marked_labels]
    if suggested is not None:
        pick = pd.DataFrame({"rate": [suggested], "label": [f"suggested {format_rate(suggested)}"]})
        # Right of its rule, or left of it in the plot's right part, so the words stay inside the plot.
        right_part = math.log(suggested / low_rate) > 0.6 * math.log(high_rate / low_rate)
        layers += [
            alt.Chart(pick).mark_rule(strokeWidth=LINE_WIDTH, color=SUGGESTED_COLOUR).encode(x="rate:Q"),
            alt.Chart(pick)
            .mark_text(
                align="right" if right_part else "left",
                baseline="top",
                dx=-6 if right_part else 6,
                dy=6,
                fontSize=LABEL_FONT_SIZE,
                fontWeight="bold",
                color=SUGGESTED_COLOUR,
            )
            .encode(x="rate:Q", y=alt.value(0), text="label:N"),
        ]
    # The title clears the marked rates' labels above the plot.
    heading = alt.TitleParams(title, offset=LABEL_FONT_SIZE + 10)
    return _projector(alt.layer(*layers).properties(title=heading, height=PLOT_HEIGHT))


CURVE_COLOURS = {  # one colour per condition, in CONDITIONS order: the paper's kept, AnB, AnB+ and control
    KEPT: CONV_COLOUR,
    REINITIALISED: "#e45756",
    FINE_TUNED: "#54a24b",
    RANDOM: BASELINE_COLOUR,
}


def transfer_curve_chart(curve: TransferCurve) -> AltairChart:
    """Validation accuracy against the freeze point, one line per condition (mean of the repeats) in a band
    from the lowest to the highest repeat, chance dotted: the shape of Yosinski et al. 2014, Fig. 2."""
    frame = pd.DataFrame(
        [
            {
                "freeze point": n,
                "condition": CONDITION_WORDS[c],
                "mean": curve.band(n, c).mean,
                "low": min(curve.band(n, c).values),
                "high": max(curve.band(n, c).values),
            }
            for n in curve.points
            for c in CONDITIONS
        ]
    )
    words = [CONDITION_WORDS[c] for c in CONDITIONS]
    colour = alt.Color(
        "condition:N",
        title=None,
        sort=words,
        scale=alt.Scale(domain=words, range=[CURVE_COLOURS[c] for c in CONDITIONS]),
        # Lines as the symbols (the bands' pale fill made every condition look alike); one column, as two overflow
        # a phone's width at the projector's font size.
        legend=alt.Legend(orient="bottom", columns=1, symbolType="stroke", symbolOpacity=1, symbolStrokeWidth=3),
    )
    x = alt.X(
        "freeze point:Q",
        title="layers frozen (18: the head alone)",
        scale=alt.Scale(domain=[0, VGG16_LAYERS]),
        axis=alt.Axis(values=list(curve.points)),
    )
    y = alt.Y("mean:Q", title="validation accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"))
    base = alt.Chart(frame).encode(x=x, color=colour)
    bands = base.mark_area(opacity=0.15).encode(y="low:Q", y2="high:Q")
    lines = base.mark_line(strokeWidth=LINE_WIDTH, point=True).encode(
        y=y,
        tooltip=[
            "condition:N",
            "freeze point:Q",
            alt.Tooltip("mean:Q", format=".1%"),
            alt.Tooltip("low:Q", format=".1%"),
            alt.Tooltip("high:Q", format=".1%"),
        ],
    )
    chance = (
        alt.Chart(pd.DataFrame([{"chance": curve.chance}]))
        .mark_rule(strokeDash=[2, 3], color=BASELINE_COLOUR)
        .encode(y="chance:Q")
    )
    chart = alt.layer(bands, lines, chance).properties(height=PLOT_HEIGHT, title="The transfer curve on your images")
    return _projector(chart)
