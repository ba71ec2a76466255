"""Shared fixtures: no network, tiny generated datasets, quiet TensorFlow."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

# Before TensorFlow/Keras are imported by any test module.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="tllab-keras-home-"))
# Runs, the feature store and each session's kept settings go to a folder of this test session, never ./runs
# (the runs_dir fixture gives a test its own).
os.environ["TLLAB_RUNS_DIR"] = tempfile.mkdtemp(prefix="tllab-test-runs-")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = ROOT / "sample_data"

from tests.helpers import TINY_CONFIG, make_dataset_folder  # noqa: E402

# --- no network: only loopback and Unix sockets may connect -------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NetworkBlocked(OSError):
    pass


def _is_local(host) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        raise NetworkBlocked(f"tests may not open network connections (to {address[0]})")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        raise NetworkBlocked(f"tests may not open network connections (to {address[0]})")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _is_local(host if not isinstance(host, bytes) else host.decode()):
        raise socket.gaierror(socket.EAI_NONAME, f"tests may not resolve {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


# For the whole session, never undone: pytest's MonkeyPatch says that these methods are replaced on purpose.
_NO_NETWORK = pytest.MonkeyPatch()
_NO_NETWORK.setattr(socket.socket, "connect", _guarded_connect)
_NO_NETWORK.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
_NO_NETWORK.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)


# --- data ------------------------------------------------------------------------


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """train/ + validation/ with 2 classes of 12 + 6 coloured 40x40 images each."""
    return make_dataset_folder(tmp_path / "data", classes=("cats", "dogs"), n_train=12, n_val=6)


@pytest.fixture(scope="session")
def shared_tiny_dataset(tmp_path_factory) -> Path:
    """A read-only tiny dataset shared by the tests that only read it."""
    return make_dataset_folder(
        tmp_path_factory.mktemp("shared") / "data", classes=("cats", "dogs"), n_train=16, n_val=8
    )


@pytest.fixture(scope="session")
def runs_at_10_and_14(tmp_path_factory) -> tuple[Path, Path]:
    """Two finished tiny runs in one runs folder, oldest first, trained once for the whole session:
    TINY_CONFIG for 2 epochs on cats/dogs (8 + 4 images each) at freeze point 10 (blocks 4-5 and the head
    train), then at 14 (block 5 and the head). Read-only: a test that changes a run changes a copy."""
    from tlcore.data import scan
    from tlcore.runs import RunStore
    from tlcore.tf.training import train_and_record

    tmp = tmp_path_factory.mktemp("runs-at-10-and-14")
    info = scan(make_dataset_folder(tmp / "data", n_train=8, n_val=4))
    at_10, at_14 = (
        train_and_record(TINY_CONFIG.replace(freeze_at=k, epochs=2), info, RunStore(tmp / "runs"))[1].run_dir
        for k in (10, 14)
    )
    return at_10, at_14


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "runs"
    monkeypatch.setenv("TLLAB_RUNS_DIR", str(path))
    return path


# --- lanes: what a test module needs (tests/lanes.py), so `scripts/test.sh --fast` can leave it out ------

FAST_LANE_ENV = "TLLAB_FAST_LANE"  # set by scripts/test.sh --fast: a test that imports TensorFlow fails


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests.lanes import lanes_of

    for item in items:
        module = item.module if isinstance(item, pytest.Function) else None
        for lane in lanes_of(module.__name__ if module else ""):
            item.add_marker(lane)


@pytest.fixture(autouse=True)
def _fast_lane_stays_without_tensorflow(request: pytest.FixtureRequest):
    """In the fast lane, the test that brings TensorFlow in fails, naming the module to move to its lane."""
    already = "tensorflow" in sys.modules
    yield
    if os.environ.get(FAST_LANE_ENV) and not already and "tensorflow" in sys.modules:
        pytest.fail(
            f"{request.node.nodeid} imported TensorFlow in the fast lane: add "
            f"{request.module.__name__.split('.')[-1]} to TENSORFLOW in tests/lanes.py"
        )


# --- class mode in AppTest ---------------------------------------------------------------------------

CLASS_TEST_KEY = "the-teachers-own-class-key"


@pytest.fixture
def class_browser(monkeypatch, runs_dir):
    """Class mode on; `.token` is the cookie the app sees (set it to play another browser)."""
    from dashboard import identity
    from tlcore.classroom import CLASS_KEY_ENV

    monkeypatch.setenv(CLASS_KEY_ENV, CLASS_TEST_KEY)

    class Browser:
        token: str | None = "browser-of-ada"

    monkeypatch.setattr(identity, "browser_token", lambda: Browser.token)
    return Browser


# --- what a page offers for download ----------------------------------------------------------------


@pytest.fixture
def offered(monkeypatch) -> dict[str, tuple[str, bytes]]:
    """{key or label: (file name, bytes)} of every download offered since the dict was last cleared."""
    seen: dict[str, tuple[str, bytes]] = {}
    original, main = DeltaGenerator.download_button, st._main  # st.download_button is main's bound method

    def record(self: DeltaGenerator, label: str, data: Any, file_name: str | None = None, *args, **kwargs):
        content = data() if callable(data) else data
        seen[kwargs.get("key") or label] = (file_name or "", content.encode() if isinstance(content, str) else content)
        return original(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", record)
    monkeypatch.setattr(st, "download_button", lambda *args, **kwargs: record(main, *args, **kwargs))
    return seen
