"""Inference page (AppTest): a Grad-CAM map that comes out blank is said in words, not shown as an empty image."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard.state import SOURCE_FOLDER, K
from tests.conftest import ROOT
from tests.helpers import make_dataset_folder, shown_predictions
from tests.test_gradcam import red_green_model
from tlcore.tf.gradcam import blank_map_message
from tlcore.uploads import UPLOAD_DIR_ENV

SIZE = 32


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((SIZE, SIZE, 3), colour, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_blank_map_gets_a_message_and_a_map_with_heat_an_overlay(tmp_path, monkeypatch):
    monkeypatch.setenv("TLLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv(UPLOAD_DIR_ENV, str(tmp_path / "uploads"))
    # Sure of class 1 whatever it sees (bias 40); only red regions raise class 1's score.
    red_green_model(bias=40.0, size=SIZE, conv_name="block5_conv3").save(tmp_path / "red-green.keras")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[K.source] = SOURCE_FOLDER
    at.session_state[K.folder] = str(make_dataset_folder(tmp_path / "data", n_train=2, n_val=1))
    at = at.switch_page("pages/inference.py").run()
    at = at.selectbox(key="inference_model").set_value("upload").run()
    at.file_uploader(key="inference_model_upload").set_value(
        ("red-green.keras", (tmp_path / "red-green.keras").read_bytes(), "application/octet-stream")
    )
    at = at.run()
    at.file_uploader(key="inference_images").set_value(
        [("red.png", _png((220, 20, 20)), "image/png"), ("green.png", _png((20, 220, 20)), "image/png")]
    )
    at = at.run()
    assert not at.exception
    assert [r["top_class"] for r in shown_predictions(at)] == ["class 1", "class 1"]
    # green.png: nothing red, so no region raised class 1's score: the page says so, once.
    assert [i.value for i in at.main.info if "Grad-CAM" in i.value] == [blank_map_message("class 1")]
    assert any(f"sees a {SIZE}x{SIZE} grid" in c.value for c in at.caption)  # the map's grid, from the map
    # Both images as people see them, and only red.png's overlay.
    captions = [c for image in at.image for c in image.captions]
    assert captions == [
        f"the image ({SIZE} px to the model)",
        "where it looked for “class 1”",
        f"the image ({SIZE} px to the model)",
    ]
