"""Charts (Altair specs, read from `chart.to_dict()`); the Grad-CAM overlay's tests are in test_gradcam.py."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.charts import (
    AXIS_TITLE_FONT_SIZE,
    LABEL_FONT_SIZE,
    LR_FINDER_TITLE,
    PLOT_HEIGHT,
    PREDICTED_COLOUR,
    TITLE_FONT_SIZE,
    class_counts_chart,
    confusion_matrix_chart,
    curves_chart,
    gradcam_colorbar,
    live_curves_chart,
    log_ticks,
    lr_finder_chart,
    probabilities_chart,
    sweep_charts,
)
from tests.helpers import epoch_row


def _rows(values, phases=None, partial_last=False):
    phases = phases or [1] * len(values)
    return [
        epoch_row(epoch=i + 1, phase=p, val_accuracy=v, val_loss=1 - v, partial=partial_last and i == len(values) - 1)
        for i, (v, p) in enumerate(zip(values, phases))
    ]


def _data(spec: dict) -> list[dict]:
    """Every row of every dataset in a spec, in order."""
    return [row for rows in spec["datasets"].values() for row in rows]


def _layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


def _projector_ready(spec: dict, fits_width: bool = True) -> None:
    """The shared sizes: fonts for a projector, no text/background colours of our own, a height of the plot's own."""
    config = spec["config"]
    assert config["axis"] == {"labelFontSize": LABEL_FONT_SIZE, "titleFontSize": AXIS_TITLE_FONT_SIZE}
    assert config["title"] == {"fontSize": TITLE_FONT_SIZE} and config["legend"]["labelFontSize"] == LABEL_FONT_SIZE
    assert "background" not in config and "background" not in spec  # Streamlit's light or dark theme decides
    # Streamlit's default "fit" would squeeze title, axes and legend into the height: the plot got ~60 px.
    assert spec["autosize"] == {"type": "fit-x" if fits_width else "pad", "contains": "padding"}


def test_live_loss_is_on_a_log_scale_with_a_plot_at_least_250_px_high():
    history = [
        epoch_row(epoch=e, phase=1, loss=loss, val_loss=val, accuracy=0.5, val_accuracy=0.5, partial=False)
        for e, loss, val in ((1, 0.7, 0.69), (2, 0.3, 65.0), (3, 0.1, 0.2))  # a spike at epoch 2
    ]
    spec = live_curves_chart(history, "loss", "Loss").to_dict()
    _projector_ready(spec)
    assert spec["height"] >= 250 and spec["height"] == PLOT_HEIGHT
    line = _layers(spec)[0]
    assert line["mark"]["type"] == "line"
    assert line["encoding"]["y"]["scale"] == {"type": "log"}
    assert line["encoding"]["y"]["axis"]["values"] == log_ticks([0.1, 65.0])  # 0.1 .. 100, in 1-2-5 steps
    assert line["encoding"]["y"]["title"] == "loss (log scale)"
    # Whole epochs only on the x-axis, even when a running point at epoch 1.25 brings a tick between two.
    assert line["encoding"]["x"]["axis"]["labelExpr"] == "datum.value % 1 ? '' : datum.label"
    assert spec["title"] == "Loss"
    values = _data(spec)
    assert [(v["series"], v["epoch"], v["value"]) for v in values][:4] == [
        ("train", 1, 0.7),
        ("validation", 1, 0.69),
        ("train", 2, 0.3),
        ("validation", 2, 65.0),
    ]


def test_log_ticks_are_round_numbers_over_the_values_decades():
    assert log_ticks([0.3, 65.0]) == [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
    assert log_ticks([1e-5, 2.0]) == [1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0]  # many decades: powers of ten
    assert log_ticks([0.0, -1.0]) == []


def test_live_loss_leaves_out_values_a_log_axis_cannot_show():
    history = [
        epoch_row(epoch=1, phase=1, loss=0.0, val_loss=float("nan"), accuracy=1.0, val_accuracy=0.0),
        epoch_row(epoch=2, phase=1, loss=0.5, val_loss=0.6, accuracy=0.8, val_accuracy=0.7),
    ]
    assert [v["epoch"] for v in _data(live_curves_chart(history, "loss", "Loss").to_dict())] == [2, 2]
    # Accuracy 0.0 and 1.0 are real values on a linear axis.
    assert len(_data(live_curves_chart(history, "accuracy", "Accuracy").to_dict())) == 4


def test_live_accuracy_has_a_fixed_0_to_1_axis_and_marks_the_fine_tuning_boundary():
    history = [
        epoch_row(
            epoch=e,
            phase=1 if e <= 2 else 2,
            loss=1.0 / e,
            val_loss=1.2 / e,
            accuracy=0.5 + e / 100,
            val_accuracy=0.45 + e / 100,
            partial=e == 3,
        )
        for e in (1, 2, 3)
    ]
    spec = live_curves_chart(history, "accuracy", "Accuracy").to_dict()
    _projector_ready(spec)
    assert spec["height"] >= 250
    line, filled, hollow, rule = _layers(spec)
    assert line["encoding"]["y"]["scale"] == {"domain": [0, 1]}  # 0.45..0.55 noise is not zoomed into a trend
    assert line["encoding"]["y"]["axis"] == {"format": "%"}
    assert filled["mark"] == {"type": "point", "filled": True, "size": 80}
    assert hollow["mark"]["filled"] is False and hollow["transform"] == [{"filter": "datum.partial"}]
    assert filled["transform"] == [{"filter": "!datum.partial && !datum.running"}]  # no marker mid-epoch
    assert rule["mark"]["type"] == "rule" and rule["mark"]["strokeDash"] == [6, 4]
    assert rule["data"]["name"] in spec["datasets"]
    assert spec["datasets"][rule["data"]["name"]] == [{"epoch": 2.5, "note": "fine-tuning starts"}]
    assert [v["partial"] for v in _data(spec) if v.get("series") == "train"] == [False, False, True]
    single = live_curves_chart(history[:1], "accuracy", "Accuracy").to_dict()
    assert [layer["mark"]["type"] for layer in single["layer"]] == ["line", "point", "point"]  # no rule in one phase


def test_curves_chart_draws_one_line_per_run_with_its_fine_tuning_rule_and_partial_epoch():
    histories = {
        "run a": _rows([0.5, 0.6, 0.7]),
        "run b": _rows([0.4, 0.8, 0.85, 0.9], phases=[1, 1, 2, 2], partial_last=True),
        "empty": [],
    }
    spec = curves_chart(histories, "val_accuracy").to_dict()
    _projector_ready(spec)
    assert spec["height"] >= 250 and spec["title"] == "Validation accuracy"
    line, _, hollow, rule = spec["layer"]
    assert line["encoding"]["color"]["field"] == "run" and line["encoding"]["y"]["scale"] == {"domain": [0, 1]}
    assert line["encoding"]["y"]["title"] == "validation accuracy"
    points = [row for row in _data(spec) if "value" in row]
    assert [row["value"] for row in points if row["run"] == "run b"] == [0.4, 0.8, 0.85, 0.9]
    assert {row["run"] for row in points} == {"run a", "run b"}
    assert [row["epoch"] for row in points if row["partial"]] == [4]  # the hollow marker's epoch
    assert hollow["mark"]["filled"] is False
    # Fine-tuning began at epoch 3 of run b: a dashed rule at 2.5, in run b's colour.
    assert spec["datasets"][rule["data"]["name"]] == [{"run": "run b", "epoch": 2.5, "note": "fine-tuning starts"}]
    assert rule["encoding"]["color"]["field"] == "run"
    loss = curves_chart(histories, "val_loss").to_dict()
    assert loss["layer"][0]["encoding"]["y"]["scale"] == {"type": "log"}
    assert loss["layer"][0]["encoding"]["y"]["title"] == "validation loss (log scale)"


def test_probability_bars_have_a_fixed_0_to_1_axis_so_a_coin_toss_looks_like_one():
    spec = probabilities_chart({"cats": 0.505, "dogs": 0.495}, highlight="cats").to_dict()
    _projector_ready(spec)
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["x"]["scale"] == {"domain": [0, 1]}
    assert spec["encoding"]["y"]["sort"] is None  # the classes in the given order
    assert spec["encoding"]["y"]["axis"]["labelLimit"] >= 200  # "vehicles  100.0%" whole
    assert spec["encoding"]["color"]["scale"]["range"] == [PREDICTED_COLOUR, "gray"]
    rows = _data(spec)
    assert [(r["class"], r["probability"], r["label"], r["shown"]) for r in rows] == [
        ("cats", 0.505, "cats  50.5%", "predicted"),
        ("dogs", 0.495, "dogs  49.5%", "other"),
    ]


def test_confusion_matrix_is_a_heatmap_with_every_count_in_its_cell():
    confusion = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])  # an empty row must not divide by zero
    spec = confusion_matrix_chart(confusion, ["cats", "dogs", "owls"], title="validation").to_dict()
    _projector_ready(spec, fits_width=False)
    cells, counts = spec["layer"]
    assert cells["mark"]["type"] == "rect" and counts["mark"]["type"] == "text"
    assert counts["encoding"]["text"]["field"] == "count"
    assert cells["encoding"]["color"]["scale"]["domain"] == [0, 1]
    rows = _data(spec)
    assert len(rows) == 9
    assert sorted(r["count"] for r in rows) == sorted(confusion.ravel().tolist())
    assert {(r["true class"], r["predicted class"]): r["count"] for r in rows}[("dogs", "cats")] == 2
    assert {(r["true class"], r["predicted class"]): r["share of row"] for r in rows}[("owls", "owls")] == 0.0
    assert cells["encoding"]["y"]["sort"] == cells["encoding"]["x"]["sort"] == ["cats", "dogs", "owls"]
    assert cells["encoding"]["x"]["field"] == "predicted class"
    assert cells["encoding"]["y"]["field"] == "true class"
    assert spec["height"] >= 250 and spec["title"] == "validation"


def test_confusion_matrix_refuses_a_shape_that_does_not_match_the_classes():
    with pytest.raises(ValueError, match="2x2"):
        confusion_matrix_chart(np.zeros((3, 3)), ["a", "b"])


def test_class_counts_are_bars_per_class_and_split():
    spec = class_counts_chart({"train": {"cats": 12, "dogs": 4}, "validation": {"cats": 3, "dogs": 3}}).to_dict()
    _projector_ready(spec)
    assert spec["mark"]["type"] == "bar" and spec["height"] >= 250
    assert spec["encoding"]["yOffset"]["field"] == "split"
    assert [(r["class"], r["split"], r["images"]) for r in _data(spec)] == [
        ("cats", "train", 12),
        ("dogs", "train", 4),
        ("cats", "validation", 3),
        ("dogs", "validation", 3),
    ]


def test_sweep_charts_are_two_charts_of_the_shared_height():
    table = {
        "point": ["18", "14", "scratch"],
        "freeze_at": [18, 14, 0],
        "trainable layers": [0, 4, 18],
        "best val acc": [0.9, 0.8, 0.6],
        "final val acc": [0.85, 0.8, 0.5],
        "s/epoch": [0.1, 2.0, 9.0],
    }
    accuracy, speed = (chart.to_dict() for chart in sweep_charts(table))
    for spec in (accuracy, speed):
        _projector_ready(spec)
        assert spec["height"] == PLOT_HEIGHT
        # The freeze point runs 0 -> 18 as the Model page's slider does.
        x = (spec["layer"][0] if "layer" in spec else spec)["encoding"]["x"]
        assert x["field"] == "freeze_at" and x["scale"] == {"domain": [0, 18]}
    line, scratch = accuracy["layer"]
    assert line["encoding"]["y"]["field"] == "final val acc"  # the accuracy of the model each point kept
    assert line["encoding"]["y"]["scale"] == {"domain": [0, 1]}
    assert [row["final val acc"] for row in accuracy["datasets"][line["data"]["name"]]] == [0.85, 0.8]
    assert scratch["mark"]["type"] == "rule"
    assert accuracy["datasets"][scratch["data"]["name"]][0]["final val acc"] == 0.5


def test_gradcam_colorbar_draws_the_given_colours_from_low_to_high():
    given = ["#000080", "#00ff00", "#800000"]  # tlcore.tf.gradcam.colorbar_colours gives the overlay's
    spec = gradcam_colorbar(224, given).to_dict()
    _projector_ready(spec, fits_width=False)
    assert spec["width"] == 224
    assert spec["encoding"]["color"]["scale"] is None  # the colours as given
    assert spec["encoding"]["x"]["axis"]["labelExpr"] == "datum.value < 0.5 ? 'low' : 'high'"
    rows = _data(spec)
    assert [row["colour"] for row in rows] == given
    assert [row["start"] for row in rows] == pytest.approx([0, 1 / 3, 2 / 3])  # equal blocks, edge to edge
    assert [row["end"] for row in rows] == pytest.approx([1 / 3, 2 / 3, 1])


def test_lr_finder_chart_marks_the_rates_even_past_a_blow_up_and_clips_it():
    rates = [1e-7 * 10 ** (i / 4) for i in range(14)]  # 1e-7 .. 1.8e-4: the sweep blew up before 1e-3
    losses = [0.7] * 10 + [0.6, 0.5, 1.0, 40.0]
    curve = {"rate": rates, "smoothed loss": losses, "loss": losses}
    spec = lr_finder_chart(curve, [1e-4, 1e-3], suggested=1e-5, ceiling=2.0).to_dict()
    _projector_ready(spec)
    line, rules, labels, pick, pick_label = spec["layer"]
    x = line["encoding"]["x"]
    assert x["scale"] == {"type": "log", "domain": [1e-7, 1e-3], "nice": False}  # reaches 1e-3 all the same
    assert x["axis"]["values"] == [1e-7, 1e-6, 1e-5, 1e-4, 1e-3]
    # The loss axis is linear from 0 and ends at the ceiling: the blown-up 40 is clipped, not drawn to scale.
    assert line["encoding"]["y"]["scale"] == {"domain": [0, pytest.approx(2.1)], "nice": False}
    assert line["mark"]["clip"] is True
    rows = _data(spec)
    assert {(r["rate"], r["label"]) for r in rows if "label" in r} == {
        (1e-4, "1e-4"),
        (1e-3, "1e-3"),
        (1e-5, "suggested 1e-5"),
    }
    assert rules["mark"]["strokeDash"] and pick["mark"]["color"] == PREDICTED_COLOUR
    assert labels["encoding"]["y"] == {"value": 0} and labels["mark"]["baseline"] == "bottom"  # above the plot
    assert pick_label["mark"]["align"] == "left"  # 1e-5 is in the left part: its words go right of its rule
    assert spec["title"]["text"] == LR_FINDER_TITLE


def test_a_clickable_confusion_matrix_selects_a_cell():
    spec = confusion_matrix_chart(np.array([[3, 1], [2, 4]]), ["cats", "dogs"], clickable=True).to_dict()
    (param,) = spec["params"]
    assert param["name"] == "cell" and param["select"] == {
        "type": "point",
        "fields": ["true class", "predicted class"],
        "on": "click",
    }
    assert param["views"] == [spec["layer"][0]["name"]]  # the cells' layer; its counts share its scope
    assert spec["layer"][0]["encoding"]["stroke"]["condition"] == {"param": "cell", "value": PREDICTED_COLOUR}
    assert "params" not in confusion_matrix_chart(np.eye(2, dtype=int), ["cats", "dogs"]).to_dict()
