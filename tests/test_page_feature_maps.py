"""See inside page, "What the frozen layers see" (AppTest over the whole app): the image, the layer's shape and
each weighting's maps, following the freeze point, with the random side alone when no pretrained weights are usable."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard.inside.feature_maps import IMAGE_KEY, LAYER_KEY, TOP_KEY, UPLOAD_KEY
from dashboard.state import SOURCE_FOLDER, WEIGHTS_FILE, WEIGHTS_SCRATCH, K
from tests.conftest import ROOT
from tests.helpers import make_dataset_folder
from tests.weights_files import write_keras3
from tlcore.backbones import WEIGHTS_ENV
from tlcore.featuremaps import default_layer_note

SIZE = 32
HEADING = "What the frozen layers see"


def _inside(tmp_path, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[K.source] = SOURCE_FOLDER
    at.session_state[K.folder] = str(make_dataset_folder(tmp_path / "data", n_train=2, n_val=1))
    at.session_state[K.image_size] = SIZE
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page("pages/inside.py").run()
    assert not at.exception, at.exception
    return at


def _layer_heading(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("#### "))


def _image_captions(at: AppTest) -> list[str]:
    return [img.caption for element in at.image for img in element.proto.imgs]


def _side_titles(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value in ("**ImageNet weights**", "**Random weights (seed 1337)**")]


def test_the_section_shows_the_image_and_both_sides_at_the_freeze_points_layer(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    tiny = write_keras3(tmp_path / "tiny.weights.h5")
    at = _inside(tmp_path, **{K.weights_choice: WEIGHTS_FILE, K.weights_path: str(tiny), K.freeze_at: 10})
    assert HEADING in [h.value for h in at.subheader]
    assert _layer_heading(at) == "#### block3_pool · 4 × 4 × 256"  # k=10: blocks 1-3 frozen
    assert any(default_layer_note(10) in c.value for c in at.caption)
    # The input image (the first training image) and one mosaic per side, pretrained first.
    assert _image_captions(at) == [f"cats_000.png · {SIZE} px", "", ""]
    assert _side_titles(at) == ["**ImageNet weights**", "**Random weights (seed 1337)**"]
    channel_lists = [c.value for c in at.caption if c.value.startswith("Channels ")]
    assert len(channel_lists) == 2 and all(len(c.split(",")) == 16 for c in channel_lists)

    at.selectbox(key=LAYER_KEY).set_value("block2_conv1").run()
    at.select_slider(key=TOP_KEY).set_value(4).run()
    assert not at.exception
    assert _layer_heading(at) == "#### block2_conv1 · 16 × 16 × 128"
    assert all(len(c.value.split(",")) == 4 for c in at.caption if c.value.startswith("Channels "))
    # The picks stay while another page runs, as long as the freeze point does.
    at.switch_page("pages/dataset.py").run()
    at.switch_page("pages/inside.py").run()
    assert _layer_heading(at) == "#### block2_conv1 · 16 × 16 × 128"
    assert at.select_slider(key=TOP_KEY).value == 4
    # A new freeze point shows its own layer: nothing frozen, the first conv layer.
    at.session_state[K.freeze_at] = 0
    at.run()
    assert _layer_heading(at) == f"#### block1_conv1 · {SIZE} × {SIZE} × 64"
    assert any("Nothing is frozen" in c.value for c in at.caption)


def test_another_image_and_an_upload(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    at = _inside(tmp_path, **{K.weights_choice: WEIGHTS_SCRATCH})
    picks = at.selectbox(key=IMAGE_KEY).options
    assert len(picks) == 2 * (2 + 1)  # every training and validation image of both classes, by class and split
    assert picks[0] == "cats/cats_000.png (train)" and picks[-1] == "dogs/dogs_000.png (validation)"
    at.selectbox(key=IMAGE_KEY).set_value(str(tmp_path / "data" / "validation" / "dogs" / "dogs_000.png")).run()
    assert _image_captions(at)[0] == f"dogs_000.png · {SIZE} px"
    buffer = io.BytesIO()
    Image.fromarray(np.full((50, 70, 3), (200, 30, 30), np.uint8)).save(buffer, format="PNG")
    at.file_uploader(key=UPLOAD_KEY).set_value(("red.png", buffer.getvalue(), "image/png"))
    at.run()
    assert not at.exception
    assert _image_captions(at)[0] == f"red.png · {SIZE} px"
    assert at.selectbox(key=IMAGE_KEY).disabled  # the upload is what the maps show
    at.file_uploader(key=UPLOAD_KEY).set_value(("notes.png", b"not an image at all", "image/png"))
    at.run()
    assert not at.exception
    assert [e.value for e in at.error if e.value.startswith("**notes.png** cannot be used: ")]


def test_without_pretrained_weights_only_the_random_side_shows(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)  # and no ImageNet weights in the tests' Keras cache
    at = _inside(tmp_path, **{K.weights_choice: WEIGHTS_SCRATCH})
    assert any(w.value.startswith("No pretrained side") for w in at.warning)  # the page says why, once
    assert any(c.value.startswith("Random weights only") for c in at.caption)
    assert _layer_heading(at) == "#### block5_pool · 1 × 1 × 512"
    assert _side_titles(at) == ["**Random weights (seed 1337)**"]
    assert len(_image_captions(at)) == 2  # the image and the random side's mosaic
