"""Runs page (AppTest): the "What fine-tuning changed" section, two runs' layer changes side by side."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.runs.weight_changes import CHANGES_CKA, CHANGES_PICKS, CHANGES_SHOW
from tests.conftest import ROOT
from tests.helpers import chart_title, vega_specs
from tlcore.backbone_facts import VGG16_CONVS
from tlcore.cka import cka_words
from tlcore.run_folder import RUN_FILE
from tlcore.runs import RunStore

CONVS = [layer.name for layer in VGG16_CONVS]


@pytest.fixture
def trained(runs_at_10_and_14):
    """Two real tiny runs, oldest first: freeze point 10 (blocks 4-5 and the head train), then 14 (block 5)."""
    return list(runs_at_10_and_14)


@pytest.fixture
def store(trained, runs_dir) -> RunStore:
    """This test's own runs folder (TLLAB_RUNS_DIR) holding copies of both runs."""
    for run_dir in trained:
        shutil.copytree(run_dir, runs_dir / run_dir.name)
    return RunStore(runs_dir)


def _runs_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    return at.switch_page("pages/runs.py").run()


def _chart_rows(at, column: str) -> list[list[dict]]:
    """The rows of each chart whose data has `column`, in page order (one row per layer)."""
    charts = []
    for chart in at.get("vega_lite_chart"):
        for dataset in chart.proto.datasets:
            rows = pa.ipc.open_stream(dataset.data.data).read_all().to_pylist()
            if rows and column in rows[0]:
                charts.append(rows)
    return charts


def _bars(at) -> list[list[dict]]:
    """Each weight-change chart's rows (one per layer), in page order."""
    return _chart_rows(at, "relative change")


def test_two_runs_side_by_side_one_bar_per_layer_frozen_ones_marked(store, trained):
    older, newer = (run_dir.name for run_dir in trained)
    at = _runs_page()
    assert not at.exception
    assert "What fine-tuning changed" in [h.value for h in at.subheader]
    assert [at.selectbox(key=key).value for key in CHANGES_PICKS] == [newer, older]  # the two newest
    assert _bars(at) == []  # nothing computed before the user asks

    at = at.button(key=CHANGES_SHOW).click().run()
    assert not at.exception
    newest, oldest = _bars(at)
    for rows, frozen in ((newest, 10), (oldest, 7)):
        assert [row["layer"] for row in rows] == [*CONVS, "head_norm", "head_dense_1", "predictions"]
        assert [row["status"] for row in rows] == ["frozen"] * frozen + ["trained"] * (16 - frozen)
        assert all(row["change"] is None and row["note"] == "frozen: unchanged" for row in rows[:frozen])
        assert all(row["relative change"] == 0.0 for row in rows[:frozen])
        assert all(row["change"] > 0 for row in rows[frozen:])
    specs = vega_specs(at)
    assert [chart_title(spec) for spec in specs] == [
        f"{newer[-6:]}: random, freeze 14",
        f"{older[-6:]}: random, freeze 10",
    ]
    scales = [spec["layer"][0]["encoding"]["x"]["scale"] for spec in specs]
    assert scales[0] == scales[1] and scales[0]["type"] == "log"  # one shared log axis
    captions = [c.value for c in at.caption]
    assert any(c.startswith("3 VGG16 conv layer(s) trained, 10 stayed frozen") for c in captions)
    assert any(c.startswith("6 VGG16 conv layer(s) trained, 7 stayed frozen") for c in captions)


def test_a_run_saved_before_start_records_says_so_beside_the_other(store, trained):
    older, _newer = trained
    record = json.loads((store.root / older.name / RUN_FILE).read_text())
    del record["start"]
    (store.root / older.name / RUN_FILE).write_text(json.dumps(record))
    at = _runs_page().button(key=CHANGES_SHOW).click().run()
    assert not at.exception
    assert len(_bars(at)) == 1
    (warning,) = [w.value for w in at.main.warning]
    assert "saved before the lab recorded its starting weights" in warning


def _cka_bars(at) -> list[list[dict]]:
    """Each CKA chart's rows (one per conv layer), in page order."""
    return _chart_rows(at, "cka")


def test_cka_beside_the_weight_changes_frozen_layers_greyed_at_1(store, trained):
    at = _runs_page()
    at.checkbox(key=CHANGES_CKA).check()
    at = at.button(key=CHANGES_SHOW).click().run()
    assert not at.exception
    assert len(_bars(at)) == 2  # the weight changes stay
    newest, oldest = _cka_bars(at)
    for rows, frozen in ((newest, 10), (oldest, 7)):
        assert [row["layer"].split()[0] for row in rows] == CONVS
        assert [row["status"] for row in rows] == ["frozen: 1 by construction"] * frozen + ["trained"] * (13 - frozen)
        assert all(row["cka"] == 1.0 and row["change"] is None for row in rows[:frozen])
        assert all(row["layer"].endswith("  frozen: 1") for row in rows[:frozen])
        for row in rows[frozen:]:  # the bar: how much it changed, 1 - CKA; the value in the label
            assert 0.0 < row["cka"] < 1.0 and row["layer"].endswith(f"  {cka_words(row['cka'])}")
            assert row["change"] == pytest.approx(max(1.0 - row["cka"], row["start"]))
    assert newest[0]["start"] == oldest[0]["start"]  # one axis for both runs
    texts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    assert any("CKA (centred kernel alignment" in t for t in texts)
    assert any("The first 10 conv layers stayed frozen: their CKA is 1 by construction" in t for t in texts)
    assert any("The first 7 conv layers stayed frozen" in t for t in texts)
