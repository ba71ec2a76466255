"""A reload keeps the student's work: settings saved on the server per owner, given back to a new tab."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from dashboard.state import IMAGE_SIZES, SOURCE_FOLDER, WEIGHTS_SCRATCH, K
from tests.conftest import ROOT
from tlcore.jsontypes import JSONValue
from tlcore.owner_settings import OwnerSettings


def test_each_owner_has_a_file_that_does_not_name_them(tmp_path):
    store = OwnerSettings(tmp_path)
    store.save("alice-123", {K.epochs: 7})
    store.save("bob", {K.epochs: 9})
    assert store.load("alice-123") == {K.epochs: 7} and store.load("bob") == {K.epochs: 9}
    assert store.load("carol") == {}
    files = sorted(p.name for p in (tmp_path / ".settings").iterdir())
    assert len(files) == 2 and not any("alice" in name or "bob" in name for name in files)
    (tmp_path / ".settings" / files[0]).write_text("{not json")  # a damaged file reads as no settings
    assert {} in (store.load("alice-123"), store.load("bob"))
    store.delete("bob")
    assert store.load("bob") == {}


def _session(owner: str | None = None, /, **state: object) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    if owner is not None:
        at.query_params["owner"] = owner
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def test_a_reload_brings_back_the_model_pages_settings(tiny_dataset):
    first = _session(**{K.source: SOURCE_FOLDER, K.folder: str(tiny_dataset), K.image_size: 64})
    first.switch_page("pages/model.py").run()
    first.button(key="freeze_14").click().run()  # head first, then block 5
    first.number_input(key=K.epochs).set_value(12).run()
    first.text_input(key=K.dense).input("64,32").run()
    assert not first.exception
    reloaded = _session(first.query_params["owner"])
    assert not reloaded.exception
    for key in (K.source, K.folder, K.image_size, K.freeze_at, K.fine_tune, K.ft_freeze_at, K.epochs, K.dense):
        assert reloaded.session_state[key] == first.session_state[key], key
    assert (reloaded.session_state[K.ft_freeze_at], reloaded.session_state[K.epochs]) == (14, 12)
    # Another owner's tab starts from the defaults.
    stranger = _session("someone-else")
    assert (stranger.session_state[K.epochs], stranger.session_state[K.fine_tune]) == (5, False)


def test_saved_values_that_no_longer_fit_their_widget_are_left_out():
    owner = "old-settings"
    values: dict[str, JSONValue] = {
        K.image_size: 100,
        K.weights_choice: "Yesterday's weights",
        K.epochs: "many",
        K.seed: 42,
    }
    OwnerSettings().save(owner, {**values, K.dense: "16"})
    at = _session(owner)
    assert not at.exception
    assert at.session_state[K.image_size] in IMAGE_SIZES and at.session_state[K.image_size] != 100
    assert at.session_state[K.weights_choice] != "Yesterday's weights"
    assert at.session_state[K.epochs] == 5  # the default again
    assert (at.session_state[K.seed], at.session_state[K.dense]) == (42, "16")


def test_nothing_but_the_owner_goes_into_the_url(tiny_dataset):
    at = _session(**{K.source: SOURCE_FOLDER, K.folder: str(tiny_dataset), K.weights_choice: WEIGHTS_SCRATCH})
    at.switch_page("pages/model.py").run()
    at.slider(key=K.freeze_at).set_value(10).run()
    assert set(at.query_params) == {"owner"}
    assert str(tiny_dataset) not in json.dumps(dict(at.query_params))
