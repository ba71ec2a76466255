"""The Streamlit app renders (AppTest, no browser)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


def test_app_opens_on_the_dataset_page_with_the_sample_data():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "Dataset"
    assert "animals, vehicles" in " ".join(m.value for m in at.markdown)


def test_script_runs_leave_keras_alone_while_a_run_may_be_training():
    """Streamlit's own end-of-run cleanup would reset Keras (and its names) under a training thread."""
    import keras

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    before = keras.layers.Dense(1).name
    at.run()
    after = keras.layers.Dense(1).name
    # After keras.backend.clear_session() names start again at "dense"; untouched, they count on.
    number = int(before.rsplit("_", 1)[1]) if "_" in before else 0
    assert after == f"dense_{number + 1}"


def test_the_server_does_not_collect_garbage_after_every_script_run():
    """With TensorFlow loaded a full collection takes a good part of a second; the live view reruns every second."""
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
