"""See inside page, probe and map sections (AppTest): the probe chart, the maps of features, a run's head."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bench._common import wait_for
from dashboard.state import SOURCE_FOLDER, WEIGHTS_IMAGENET, WEIGHTS_SCRATCH, K
from tests.conftest import ROOT
from tests.helpers import TINY_CONFIG, chart_rows, chart_title, make_dataset_folder, vega_specs
from tests.weights_files import write_keras3
from tlcore.config import HeadConfig
from tlcore.data import scan
from tlcore.runs import RunStore

PROBE_TITLE = "Linear probe accuracy by depth"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset_folder(tmp_path_factory.mktemp("inside") / "data", n_train=8, n_val=4)


def _inside_page(dataset: Path, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[K.source] = SOURCE_FOLDER
    at.session_state[K.folder] = str(dataset)
    at.session_state[K.image_size] = 32
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/inside.py")
    return at.run()


def _charts_when_ready(at: AppTest, count: int, deadline_s: float = 120.0) -> list[dict]:
    """The page's Altair specs once `count` of them show (the features come from a background task)."""

    def charts() -> list[dict] | None:
        at.run()  # run_every fragments do not tick under AppTest
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        specs = vega_specs(at)
        return specs if len(specs) >= count else None

    return wait_for(charts, deadline_s, f"{count} charts", poll_s=0.3)


def _series(at: AppTest) -> set[str]:
    """The weightings the probe chart (the page's first chart) draws a line for."""
    return {row["weights"] for row in chart_rows(at)[0] if "weights" in row}


def test_without_pretrained_weights_the_random_side_shows_alone_with_the_reason(dataset, runs_dir, monkeypatch):
    monkeypatch.delenv("TLLAB_WEIGHTS", raising=False)
    at = _inside_page(dataset, **{K.weights_choice: WEIGHTS_IMAGENET, K.freeze_at: 10})
    assert any("ImageNet weights are not downloaded" in w.value for w in at.warning)
    probe, *maps = _charts_when_ready(at, 2)
    assert chart_title(probe) == PROBE_TITLE
    assert _series(at) == {"Random weights (seed 1337)"}
    assert len(maps) == 1
    assert chart_title(maps[0]) == "Random weights"
    probe_line, where = maps[0]["title"]["subtitle"]
    assert probe_line.startswith("probe accuracy ") and probe_line.endswith("%")
    assert where == "block3_pool, freeze point 10"
    points = chart_rows(at)[1]
    assert len(points) == 16 + 8  # every training and validation image
    names = {p["image"].rsplit("/", 1)[-1] for p in points}
    assert "cats_000.png" in names and {p["split"] for p in points} == {"train", "validation"}
    assert any("Train a model on these classes" in c.value for c in at.caption)


def test_with_a_weights_file_both_sides_show_and_the_map_follows_the_freeze_point(
    dataset, runs_dir, monkeypatch, tmp_path
):
    monkeypatch.setenv("TLLAB_WEIGHTS", str(write_keras3(tmp_path / "vgg16.weights.h5")))
    at = _inside_page(dataset, **{K.weights_choice: WEIGHTS_SCRATCH, K.freeze_at: 0})
    assert not [w.value for w in at.warning if "pretrained side" in w.value]
    _probe, pretrained, _random = _charts_when_ready(at, 3)
    assert _series(at) == {"ImageNet weights", "Random weights (seed 1337)"}
    assert chart_title(pretrained) == "ImageNet weights"
    assert pretrained["title"]["subtitle"][1] == "block5_pool, freeze point 18"
    assert any("Nothing is frozen at freeze point 0" in c.value for c in at.caption)
    at.session_state[K.freeze_at] = 6
    at.run()
    assert [s["title"]["subtitle"][1] for s in vega_specs(at)[1:]] == ["block2_pool, freeze point 6"] * 2


def test_a_finished_run_adds_the_map_of_its_head(dataset, runs_dir, monkeypatch):
    from tlcore.tf.training import train_and_record

    monkeypatch.delenv("TLLAB_WEIGHTS", raising=False)
    train_and_record(TINY_CONFIG, scan(dataset), RunStore(runs_dir))
    at = _inside_page(dataset, **{K.weights_choice: WEIGHTS_SCRATCH})
    specs = _charts_when_ready(at, 3)
    assert chart_title(specs[2]) == "Trained head"
    assert specs[2]["title"]["subtitle"][1] == "head_dense_1, the last layer before the output"
    assert len(chart_rows(at)[2]) == 24


def test_a_run_whose_head_has_no_dense_layer_says_there_is_nothing_to_map(dataset, runs_dir, monkeypatch):
    from tlcore.tf.training import train_and_record

    monkeypatch.delenv("TLLAB_WEIGHTS", raising=False)
    train_and_record(TINY_CONFIG.replace(head=HeadConfig(dense=(), dropout=0.0)), scan(dataset), RunStore(runs_dir))
    at = _inside_page(dataset, **{K.weights_choice: WEIGHTS_SCRATCH})
    _charts_when_ready(at, 2)
    deadline = time.monotonic() + 60
    while not any("no hidden layer to map" in i.value for i in at.info):
        assert time.monotonic() < deadline, [i.value for i in at.info]
        time.sleep(0.3)
        at.run()
    assert len(vega_specs(at)) == 2
