"""Model page (AppTest over the whole app): the seed-article preset buttons set every widget and show the notes."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from pages.ui import IMAGE_SIZES, K
from tests.conftest import ROOT
from tlcore.presets import PRESETS, preset_state

EXPECTED = {
    "seed-000": {K.image_size: 64, K.freeze_at: 18, K.pooling: "flatten", K.dense: "1024,1024,512", K.dropout: 0.0,
                 K.optimizer: "adam", K.learning_rate: 1e-4, K.epochs: 50, K.batch_size: 32, K.augment: False,
                 K.fine_tune: False},
    "seed-004": {K.image_size: 224, K.freeze_at: 18, K.pooling: "flatten", K.dense: "512", K.dropout: 0.5,
                 K.optimizer: "rmsprop", K.learning_rate: 1e-4, K.epochs: 10, K.batch_size: 20, K.augment: True,
                 K.flip: True, K.rotation: pytest.approx(40 / 360), K.zoom: 0.2, K.translation: 0.2, K.contrast: 0.0,
                 K.fine_tune: False},
}


def _model_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    # Not the defaults, so the test sees every preset value written.
    for key, value in {K.freeze_at: 5, K.dense: "7", K.dropout: 0.3, K.epochs: 3, K.fine_tune: True}.items():
        at.session_state[key] = value
    at.run()  # app.py first: it initialises the session state every page relies on
    at.switch_page("pages/model.py").run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("name", ["seed-000", "seed-004"])
def test_a_preset_button_sets_its_settings_and_shows_its_notes(name):
    at = _model_page()
    assert not any("Applied:" in i.value for i in at.info)
    at.button(key=f"preset_{name}").click().run()
    assert not at.exception, at.exception
    for key, value in EXPECTED[name].items():
        assert at.session_state[key] == value, key
    assert at.slider(key=K.freeze_at).value == 18
    assert at.text_input(key=K.dense).value == EXPECTED[name][K.dense]
    assert at.select_slider(key=K.learning_rate).value == 1e-4
    assert at.select_slider(key=K.image_size).value == EXPECTED[name][K.image_size]
    (applied,) = [i.value for i in at.info if "Applied:" in i.value]
    assert PRESETS[name].title in applied and "preprocess_input" in applied and "224 px" in applied
    assert at.main.success and "Ready to train" in at.main.success[-1].value  # the preset is a valid config
    # Still editable afterwards.
    at.slider(key=K.freeze_at).set_value(14).run()
    assert not at.exception and at.session_state[K.freeze_at] == 14


def test_preset_state_snaps_the_image_size():
    state = preset_state(PRESETS["seed-000"].config.replace(image_size=100), IMAGE_SIZES)
    assert state["image_size"] == 96 and state["dense"] == "1024,1024,512" and state["fine_tune"] is False
