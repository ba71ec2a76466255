"""The sidebar's weights choice on a server: ImageNet offline means the administrator's file."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from dashboard.state import WEIGHTS_IMAGENET, K
from tests.conftest import ROOT
from tests.weights_files import write_keras3


def _session(**state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def test_imagenet_is_the_servers_weights_file_when_keras_has_none_cached(monkeypatch, tmp_path):
    """Offline, the administrator's TLLAB_WEIGHTS file is the ImageNet weights: choosing "ImageNet" uses it."""
    server_file = write_keras3(tmp_path / "vgg16.weights.h5")
    monkeypatch.setenv("TLLAB_WEIGHTS", str(server_file))
    at = _session(**{K.weights_choice: WEIGHTS_IMAGENET})
    assert not at.exception
    sidebar = " ".join(a.value for a in [*at.sidebar.success, *at.sidebar.warning, *at.sidebar.error])
    assert "ImageNet weights from the server's file: Weights file vgg16.weights.h5" in sidebar
    assert "not downloaded" not in sidebar and not [b for b in at.sidebar.button if b.key == "download_weights"]
    assert at.session_state[K.weights_choice] == WEIGHTS_IMAGENET
    # Without the server's file, ImageNet is Keras' download, and the sidebar offers it.
    monkeypatch.delenv("TLLAB_WEIGHTS")
    offline = _session(**{K.weights_choice: WEIGHTS_IMAGENET})
    assert any("not downloaded yet" in w.value for w in offline.sidebar.warning)
