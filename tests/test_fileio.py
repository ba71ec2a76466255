"""Atomic writes: a reader sees the old file or the new one, never half, and a failed write leaves no trace."""

from __future__ import annotations

import errno
import json
import os

import pytest

from tlcore.fileio import atomic_write


def test_atomic_write_keeps_old_content_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    atomic_write(target, '{"old": true}')

    def failing_replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left on device"):
        atomic_write(target, '{"new": true}')
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary left behind


def test_atomic_write_replaces_text_and_bytes(tmp_path):
    target = tmp_path / "photo.jpg"
    atomic_write(target, b"\xff\xd8 first")
    atomic_write(target, b"\xff\xd8 second")
    assert target.read_bytes() == b"\xff\xd8 second"
    atomic_write(target, "text")
    assert target.read_text() == "text"
