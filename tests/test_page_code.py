"""The code behind the clicks on the pages (AppTest): the Model page's script for its settings, a run's on Runs."""

from __future__ import annotations

import ast
import contextlib

from streamlit.testing.v1 import AppTest

from dashboard.code_panel import RUN_PICK
from dashboard.state import SAMPLE_DATA, WEIGHTS_SCRATCH, K
from tests.conftest import ROOT
from tests.helpers import TINY_CONFIG
from tlcore.codegen import SCRIPT_NAME
from tlcore.config import FineTuneConfig
from tlcore.data import scan
from tlcore.records import COMPLETED
from tlcore.runs import RunStore


def _constants(script: str) -> dict[str, object]:
    """The script's top-level NAME = literal assignments (DATA_DIR's Path("...") as its string)."""
    values = {}
    for node in ast.parse(script).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            value = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Path":
                value = value.args[0]
            with contextlib.suppress(ValueError):
                values[node.targets[0].id] = ast.literal_eval(value)
    return values


def _scripts(at: AppTest) -> list[str]:
    return [code.value for code in at.code if code.value.startswith('"""')]


def _downloads(at: AppTest) -> list[str]:
    return [button.label for button in at.download_button]


def test_the_model_page_shows_the_code_for_its_settings_and_follows_the_freeze_point():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state[K.weights_choice] = WEIGHTS_SCRATCH
    at.switch_page("pages/model.py").run()
    assert not at.exception, at.exception
    assert "The code behind these settings" in [h.value for h in at.subheader]
    (script,) = _scripts(at)
    values = _constants(script)
    assert (values["FREEZE_AT"], values["WEIGHTS"], values["DATA_DIR"]) == (18, None, str(SAMPLE_DATA))
    assert values["CLASS_NAMES"] == ["animals", "vehicles"]
    assert _downloads(at) == [f"Download {SCRIPT_NAME}"]

    at.slider(key=K.freeze_at).set_value(11).run()
    assert not at.exception
    (script,) = _scripts(at)
    assert _constants(script)["FREEZE_AT"] == 11
    assert "# VGG16 layers frozen, counted from the input: up to block4_conv1\nFREEZE_AT = 11\n" in script


def test_settings_that_cannot_train_show_no_code():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state[K.dense] = "8, lots"
    at.switch_page("pages/model.py").run()
    assert not at.exception
    assert _scripts(at) == [] and _downloads(at) == []


def test_the_runs_page_shows_a_picked_runs_code(runs_dir):
    info = scan(SAMPLE_DATA)
    store = RunStore(runs_dir)
    older = store.create(TINY_CONFIG.replace(freeze_at=6, seed=3), info)
    older.finish(COMPLETED)
    newer = store.create(TINY_CONFIG.replace(freeze_at=14, fine_tune=FineTuneConfig(10, 1, 1e-5)), info)
    newer.finish(COMPLETED)

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    assert "The code behind a run" in [h.value for h in at.subheader]
    assert at.selectbox(key=RUN_PICK).value == store.list()[0].run_id  # the first run of the table
    assert _downloads(at) == [f"Download {SCRIPT_NAME}"]

    at.selectbox(key=RUN_PICK).set_value(newer.run_id).run()
    (script,) = _scripts(at)
    values = _constants(script)
    assert (values["FREEZE_AT"], values["FINE_TUNE_AT"], values["DATA_DIR"]) == (14, 10, str(SAMPLE_DATA))
    assert f"run {newer.run_id}" in script

    at.selectbox(key=RUN_PICK).set_value(older.run_id).run()
    (script,) = _scripts(at)
    assert (_constants(script)["FREEZE_AT"], _constants(script)["SEED"]) == (6, 3)
    assert "FINE_TUNE_AT" not in _constants(script)
