"""How the app reads its Ray dispatcher's messages about a call, without Ray: the pipe's messages are faked."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest

from tlcore.backend import ClusterGone
from tlcore.cluster import RayBackend


def _backend_answering(monkeypatch: pytest.MonkeyPatch, kind: str, body: object) -> RayBackend:
    """A backend whose dispatcher answers every call with one (kind, body) message."""
    backend = RayBackend("local")
    monkeypatch.setattr(backend, "connect", lambda: None)

    def send(message: tuple[str, Any]) -> None:
        what, payload = message
        if what == "call":  # payload: (call id, function, arguments, resources)
            backend._calls[payload[0]].inbox.put((kind, body))

    monkeypatch.setattr(backend, "_send", send)
    return backend


def _job(report: object, stop: object) -> None:  # never runs here: the fake dispatcher answers for it
    raise AssertionError


def test_a_cluster_lost_mid_run_fails_the_call_with_the_dispatchers_words(monkeypatch):
    # The dispatcher's own "gone" carries its message (it reads as one string, not a process and a message).
    backend = _backend_answering(monkeypatch, "gone", "The Ray cluster went away mid-run: timed out")
    with pytest.raises(ClusterGone, match="went away mid-run: timed out"):
        backend.call(_job, (), report=lambda event: None, stop=threading.Event())


def test_a_dispatcher_that_ended_fails_the_call_and_is_forgotten(monkeypatch):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    backend = _backend_answering(monkeypatch, "ended", (ended, "The lab's Ray driver ended with exit code 0."))
    backend._process = ended
    with pytest.raises(ClusterGone, match="ended with exit code 0"):
        backend.call(_job, (), report=lambda event: None, stop=threading.Event())
    assert backend._process is None  # the next job starts a new dispatcher
