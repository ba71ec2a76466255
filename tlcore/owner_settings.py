"""Each owner's settings, kept on the server so a reloaded tab gets its dataset and settings back.

One small JSON object per owner in `<runs folder>/.settings/`, under a name derived from the owner id
(never the id itself, which a folder listing would show). Values are plain JSON (what widgets hold);
a file that cannot be read counts as no settings, and writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tlcore.fileio import atomic_write
from tlcore.jsontypes import JSONValue
from tlcore.runs import default_runs_dir

SETTINGS_DIR = ".settings"


class OwnerSettings:
    """The settings files of a runs folder's owners."""

    def __init__(self, runs_root: str | Path | None = None) -> None:
        self.root = Path(runs_root if runs_root is not None else default_runs_dir()) / SETTINGS_DIR

    def _path(self, owner: str) -> Path:
        return self.root / f"{hashlib.sha256(owner.encode()).hexdigest()[:32]}.json"

    def load(self, owner: str) -> dict[str, Any]:
        """The owner's last saved settings; {} when there are none or the file cannot be read."""
        try:
            data = json.loads(self._path(owner).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, owner: str, values: Mapping[str, JSONValue]) -> None:
        """Replace the owner's settings (raises OSError when the disk refuses; the caller decides)."""
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self._path(owner), json.dumps(values, sort_keys=True))

    def delete(self, owner: str) -> None:
        self._path(owner).unlink(missing_ok=True)
