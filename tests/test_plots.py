"""Figures: confusion matrix, Grad-CAM overlay, learning curves, probability bars."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from tlcore.plots import confusion_matrix_figure, curves_figure, gradcam_overlay, probabilities_figure


def _rows(values, phases=None, partial_last=False):
    phases = phases or [1] * len(values)
    return [
        {"epoch": i + 1, "phase": p, "val_accuracy": v, "val_loss": 1 - v,
         "partial": partial_last and i == len(values) - 1}
        for i, (v, p) in enumerate(zip(values, phases))
    ]


def _renders(fig: Figure) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


def test_confusion_matrix_writes_every_count_in_its_cell():
    confusion = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])  # an empty row must not divide by zero
    fig = confusion_matrix_figure(confusion, ["cats", "dogs", "owls"], title="validation")
    (ax,) = fig.axes
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 9
    assert sorted(map(int, texts)) == sorted(confusion.ravel().tolist())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cats", "dogs", "owls"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    _renders(fig)


def test_confusion_matrix_refuses_a_shape_that_does_not_match_the_classes():
    with pytest.raises(ValueError, match="2x2"):
        confusion_matrix_figure(np.zeros((3, 3)), ["a", "b"])


def test_gradcam_overlay_is_an_rgb_image_that_changes_only_where_the_heat_is():
    pixels = np.full((64, 64, 3), 128, dtype=np.uint8)
    heatmap = np.zeros((4, 4), dtype=np.float32)
    heatmap[0, 0] = 1.0  # hot top-left corner
    out = gradcam_overlay(pixels, heatmap)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    hot, cold = out[:4, :4].astype(int), out[-4:, -4:].astype(int)
    assert np.abs(hot - 128).max() > 40  # coloured where the heat is high
    assert hot[..., 0].mean() > hot[..., 2].mean()  # ...and the hot end of jet is red
    # Where the heat is zero, jet is dark blue: blended at 0.4, not the hot colour.
    assert cold[..., 2].mean() > cold[..., 0].mean()
    np.testing.assert_array_equal(gradcam_overlay(pixels, heatmap, alpha=0.0), pixels)


def test_gradcam_overlay_checks_its_inputs():
    with pytest.raises(ValueError, match="square"):
        gradcam_overlay(np.zeros((10, 12, 3), np.uint8), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="alpha"):
        gradcam_overlay(np.zeros((8, 8, 3), np.uint8), np.zeros((2, 2)), alpha=2.0)


def test_curves_figure_draws_one_line_per_run_and_marks_fine_tuning():
    histories = {
        "run a": _rows([0.5, 0.6, 0.7]),
        "run b": _rows([0.4, 0.8, 0.85, 0.9], phases=[1, 1, 2, 2], partial_last=True),
        "empty": [],
    }
    fig = curves_figure(histories, "val_accuracy")
    (ax,) = fig.axes
    runs = [line for line in ax.lines if line.get_label() in histories]
    assert [line.get_label() for line in runs] == ["run a", "run b"]
    np.testing.assert_allclose(runs[1].get_ydata(), [0.4, 0.8, 0.85, 0.9])
    vertical = [line for line in ax.lines if len(set(line.get_xdata())) == 1 and len(line.get_xdata()) == 2]
    assert [line.get_xdata()[0] for line in vertical] == [2.5]  # fine-tuning began at epoch 3
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["run a", "run b"]
    assert curves_figure(histories, "val_loss").axes[0].get_ylabel() == "validation loss"
    _renders(fig)


def test_probabilities_figure_has_one_bar_per_class():
    fig = probabilities_figure({"cats": 0.2, "dogs": 0.8}, highlight="dogs")
    (ax,) = fig.axes
    assert [bar.get_width() for bar in ax.patches] == pytest.approx([0.2, 0.8])
    assert [t.get_text() for t in ax.texts] == ["20.0%", "80.0%"]
    _renders(fig)


def test_live_curves_chart_marks_the_fine_tuning_boundary():
    from tlcore.plots import live_curves_chart

    history = [
        {"epoch": e, "phase": 1 if e <= 2 else 2, "loss": 1.0 / e, "val_loss": 1.2 / e,
         "accuracy": 0.5 + e / 10, "val_accuracy": 0.45 + e / 10}
        for e in (1, 2, 3)
    ]
    spec = live_curves_chart(history, "loss", "Loss").to_dict()
    line, rule = spec["layer"]
    assert line["mark"]["type"] == "line" and line["mark"]["point"] is True
    assert rule["mark"]["type"] == "rule"
    values = next(iter(spec["datasets"].values()))
    assert len(values) == 6  # train + validation for 3 epochs
    single = live_curves_chart(history[:1], "accuracy", "Accuracy").to_dict()
    assert "layer" not in single and single["mark"]["point"] is True  # no boundary in one phase
