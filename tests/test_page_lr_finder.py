"""The Model page's "Find a learning rate" section (AppTest): the sweep in the background, its chart with
1e-4 and 1e-3 marked and the suggested rate, and "Use this rate" setting the learning-rate slider."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bench._common import wait_for
from dashboard.charts import LR_FINDER_TITLE
from dashboard.model.actions import FINE_TUNE_RATES, LEARNING_RATES, nearest_rate
from dashboard.model.lr_finder import PHASE, RUN_BUTTON, USE_BUTTON
from dashboard.state import SOURCE_FOLDER, WEIGHTS_SCRATCH, K
from tests.conftest import ROOT
from tests.helpers import chart_rows, chart_title, make_dataset_folder, vega_specs
from tlcore.lr_finder import format_rate


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset_folder(tmp_path_factory.mktemp("lr_page") / "data", n_train=16, n_val=4)


def _model_page(dataset: Path, monkeypatch, **state) -> AppTest:
    monkeypatch.delenv("TLLAB_WEIGHTS", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    settings = {
        K.source: SOURCE_FOLDER,
        K.folder: str(dataset),
        K.image_size: 32,
        K.weights_choice: WEIGHTS_SCRATCH,
        K.dense: "8",
        K.batch_size: 8,
        **state,
    }
    for key, value in settings.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/model.py")
    return at.run()


def _finder_chart(at: AppTest, deadline_s: float = 120.0) -> tuple[dict, list[dict]]:
    """The finder's chart spec and data rows once the background sweep has drawn it."""

    def chart() -> tuple[dict, list[dict]] | None:
        at.run()  # run_every fragments do not tick under AppTest
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        shown = zip(vega_specs(at), chart_rows(at))
        return next(((spec, rows) for spec, rows in shown if chart_title(spec) == LR_FINDER_TITLE), None)

    return wait_for(chart, deadline_s, "the finder's chart", poll_s=0.3)


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_the_sweep_draws_the_curve_with_the_marked_rates_and_use_this_rate_sets_the_slider(dataset, monkeypatch):
    at = _model_page(dataset, monkeypatch, **{K.learning_rate: 1e-2})
    assert not [c for c in vega_specs(at) if chart_title(c) == LR_FINDER_TITLE]  # nothing runs before the click
    at.button(key=RUN_BUTTON).click().run()
    spec, rows = _finder_chart(at)
    labels = {row["label"]: row["rate"] for row in rows if "label" in row}
    assert labels["1e-4"] == 1e-4 and labels["1e-3"] == 1e-3
    (suggested_label,) = [label for label in labels if label.startswith("suggested ")]
    suggested = labels[suggested_label]
    assert suggested_label == f"suggested {format_rate(suggested)}"
    assert _metric(at, "Suggested rate") == format_rate(suggested)
    curve = [row for row in rows if "smoothed loss" in row]
    assert len(curve) >= 10 and all(row["smoothed loss"] > 0 for row in curve)
    assert [row["rate"] for row in curve] == sorted(row["rate"] for row in curve)
    assert spec["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"
    (caption,) = [c.value for c in at.caption if c.value.startswith("Route: ")]
    assert "**cached features** at freeze point 18" in caption and " steps** of " in caption
    assert any(m.value.startswith("- 1e-4: ") for m in at.markdown)

    at.button(key=USE_BUTTON).click().run()
    chosen = nearest_rate(suggested, LEARNING_RATES)
    assert at.session_state[K.learning_rate] == chosen
    assert at.select_slider(key=K.learning_rate).value == chosen
    assert any(s.value.startswith(f"Learning rate set to {format_rate(chosen)}") for s in at.success)
    _finder_chart(at, deadline_s=5)  # the curve stays: the sweep never read the rate it set


def test_a_two_phase_setting_sweeps_phase_2_on_request_and_sets_its_rate(dataset, monkeypatch):
    at = _model_page(dataset, monkeypatch, **{K.fine_tune: True, K.ft_freeze_at: 14, K.weights_choice: WEIGHTS_SCRATCH})
    assert at.radio(key=PHASE).value == 1
    at.radio(key=PHASE).set_value(2).run()
    at.button(key=RUN_BUTTON).click().run()
    _finder_chart(at)
    (caption,) = [c.value for c in at.caption if c.value.startswith("Route: ")]
    assert "at freeze point 14" in caption
    suggested = float(_metric(at, "Suggested rate"))
    at.button(key=USE_BUTTON).click().run()
    assert at.session_state[K.ft_lr] == nearest_rate(suggested, FINE_TUNE_RATES)
    assert any(s.value.startswith("Phase 2 learning rate set to ") for s in at.success)
