"""Runs page (AppTest): "Export a model", an export made, checked and offered for download."""

from __future__ import annotations

import io
import shutil
import zipfile

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tlcore.exports import TFLITE


def test_an_export_is_checked_shown_and_offered_as_a_zip(runs_at_10_and_14, runs_dir, offered):
    for run_dir in runs_at_10_and_14:
        shutil.copytree(run_dir, runs_dir / run_dir.name)
    newest = runs_at_10_and_14[1].name
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).switch_page("pages/runs.py").run()
    assert not at.exception
    assert "Export a model" in [h.value for h in at.subheader]
    assert at.selectbox(key="export_run").value == newest  # the newest finished run first
    at.radio(key="runs_export_format").set_value(TFLITE)
    at = at.button(key="runs_export_export").click().run()
    assert not at.exception
    (shown,) = [s.value for s in at.main.success]  # the sidebar may show the weights file's in green too
    assert shown.startswith("LiteRT / TFLite, float32: predicts the same as the run's model on 8 validation images")
    file_name, data = offered[f"runs_export_download_{TFLITE}"]
    assert file_name == f"{newest}-{TFLITE}.zip"
    names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert names == {f"{TFLITE}/model.tflite", f"{TFLITE}/labels.txt", f"{TFLITE}/export.json"}
    again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).switch_page("pages/runs.py").run()
    assert [s.value for s in again.main.success] == [shown]  # recorded: a fresh session sees the check it made
