"""Model page (AppTest over the whole app): the seed-article preset buttons set every widget and show the notes;
dashboard.state's one widget <-> TrainConfig mapping round-trips the defaults and every preset."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.state import (
    DEFAULT_CONFIG,
    DEFAULTS,
    IMAGE_SIZES,
    WEIGHTS_FILE,
    WEIGHTS_SCRATCH,
    K,
    config_to_state,
    state_to_config,
)
from tests.conftest import ROOT
from tlcore.backbones import IMAGENET, WEIGHTS_ENV
from tlcore.config import AugmentConfig, FineTuneConfig, HeadConfig, TrainConfig
from tlcore.presets import PRESETS

# Presets are the articles' own training: an unnormalised head, exactly their epochs, no early stopping.
AS_THE_ARTICLE = {K.normalize: False, K.min_steps: 0, K.early_stopping: False}
EXPECTED = {
    "big-head-64": {
        **AS_THE_ARTICLE,
        K.image_size: 64,
        K.freeze_at: 18,
        K.pooling: "flatten",
        K.dense: "1024,1024,512",
        K.dropout: 0.0,
        K.optimizer: "adam",
        K.learning_rate: 1e-4,
        K.epochs: 50,
        K.batch_size: 32,
        K.augment: False,
        K.fine_tune: False,
    },
    "augment-224": {
        **AS_THE_ARTICLE,
        K.image_size: 224,
        K.freeze_at: 18,
        K.pooling: "flatten",
        K.dense: "512",
        K.dropout: 0.5,
        K.output: "sigmoid",
        K.optimizer: "rmsprop",
        K.learning_rate: 1e-4,
        K.epochs: 10,
        K.batch_size: 20,
        K.augment: True,
        K.flip: True,
        K.rotation: pytest.approx(40 / 360),
        K.zoom: 0.2,
        K.translation: 0.2,
        K.contrast: 0.0,
        K.fine_tune: False,
    },
}


def _model_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    # Not the defaults, so the test sees every preset value written.
    for key, value in {K.freeze_at: 5, K.dense: "7", K.dropout: 0.3, K.epochs: 3, K.fine_tune: True, K.seed: 7}.items():
        at.session_state[key] = value
    at.run()  # app.py first: it initialises the session state every page relies on
    at.switch_page("pages/model.py").run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("name", ["big-head-64", "augment-224"])
def test_a_preset_button_sets_its_settings_and_shows_its_notes(name):
    at = _model_page()
    assert not any("Applied:" in i.value for i in at.info)
    button = at.button(key=f"preset_{name}")
    assert button.label == PRESETS[name].label and len(button.label) <= 32  # readable in a narrow column
    assert button.help == PRESETS[name].title  # the full title as its tooltip
    button.click().run()
    assert not at.exception, at.exception
    for key, value in EXPECTED[name].items():
        assert at.session_state[key] == value, key
    assert at.slider(key=K.freeze_at).value == 18
    assert at.text_input(key=K.dense).value == EXPECTED[name][K.dense]
    assert at.select_slider(key=K.learning_rate).value == 1e-4
    assert at.select_slider(key=K.image_size).value == EXPECTED[name][K.image_size]
    (applied,) = [i.value for i in at.info if "Applied:" in i.value]
    assert PRESETS[name].title in applied and "preprocess_input" not in applied  # the notes are folded away
    (notes,) = [e for e in at.expander if e.label == "What differs from the article, and why"]
    text = "\n".join(m.value for m in notes.markdown)
    assert "preprocess_input" in text and "224 px" in text and text.count("\n- ") == len(PRESETS[name].notes) - 1
    # The widgets now describe exactly the preset (the sidebar's weights stay the user's).
    config = state_to_config(at.session_state)
    assert config == PRESETS[name].config.replace(weights=config.weights)
    assert at.radio(key=K.output).value == PRESETS[name].config.head.output
    assert at.main.success and "Ready to train" in at.main.success[-1].value  # the preset is a valid config
    # Still editable afterwards.
    at.slider(key=K.freeze_at).set_value(14).run()
    assert not at.exception and at.session_state[K.freeze_at] == 14


def test_config_to_state_snaps_the_image_size():
    state = config_to_state(PRESETS["big-head-64"].config.replace(image_size=100), IMAGE_SIZES)
    assert state[K.image_size] == 96 and state[K.dense] == "1024,1024,512" and state[K.fine_tune] is False


def _round_trip(config: TrainConfig) -> TrainConfig:
    return state_to_config({**DEFAULTS, **config_to_state(config)})


@pytest.fixture
def keras_download_only(monkeypatch):
    """No administrator's weights file: the "ImageNet" choice means Keras' own download, as in the presets."""
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_the_widget_state(name, keras_download_only):
    assert _round_trip(PRESETS[name].config) == PRESETS[name].config
    assert _round_trip(PRESETS["augment-224"].config).head.output == "sigmoid"


def test_the_imagenet_choice_reads_the_servers_file_when_keras_has_none(monkeypatch, tmp_path):
    """Offline, the administrator's TLLAB_WEIGHTS file is the ImageNet weights: choosing "ImageNet" uses it."""
    server_file = tmp_path / "vgg16_notop.weights.h5"
    server_file.write_bytes(b"x")
    monkeypatch.setenv(WEIGHTS_ENV, str(server_file))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    assert _round_trip(DEFAULT_CONFIG).weights == str(server_file)
    monkeypatch.delenv(WEIGHTS_ENV)
    assert _round_trip(DEFAULT_CONFIG).weights == IMAGENET


def test_the_defaults_round_trip_and_are_the_dashboards_starting_config(keras_download_only):
    assert state_to_config(DEFAULTS) == DEFAULT_CONFIG
    assert _round_trip(DEFAULT_CONFIG) == DEFAULT_CONFIG


def test_every_setting_round_trips(tmp_path):
    weights = tmp_path / "vgg16.h5"
    weights.write_bytes(b"x")
    config = TrainConfig(
        weights=str(weights),
        image_size=64,
        batch_size=7,
        epochs=9,
        optimizer="sgd",
        learning_rate=3e-4,
        freeze_at=10,
        seed=3,
        head=HeadConfig(pooling="max", dense=(), dropout=0.25, output="sigmoid"),
        augment=AugmentConfig(True, False, 0.2, 0.3, 0.05, 0.15),
        fine_tune=FineTuneConfig(6, 2, 3e-6),
    )
    state = config_to_state(config)
    assert (state[K.weights_choice], state[K.weights_path], state[K.dense]) == (WEIGHTS_FILE, str(weights), "")
    assert _round_trip(config) == config
    assert config_to_state(config.replace(weights="none"))[K.weights_choice] == WEIGHTS_SCRATCH
