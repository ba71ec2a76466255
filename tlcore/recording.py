"""A run being recorded: keeps its run.json and history.csv current on disk, with a heartbeat.

Every write is atomic (temporary file, fsync, rename), so a run killed at any
moment leaves a readable record. `tlcore.runs.RunStore.create` makes a `Run`;
reading it back is tlcore.run_folder. Loading its model is `tlcore.tf.model.load_run_model`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore.fileio import atomic_write
from tlcore.history import EpochRow, History
from tlcore.jsontypes import JSONValue
from tlcore.modelfile import add_labels
from tlcore.records import RunRecord
from tlcore.run_folder import HISTORY_FILE, MODEL_FILE, RUN_FILE, ended_recording, utc_now

if TYPE_CHECKING:
    import keras

HEARTBEAT_EVERY_S = 10.0


class Run:
    """A run being recorded: keeps run.json and history.csv current on disk."""

    def __init__(self, run_dir: Path, record: RunRecord):
        self.run_dir = Path(run_dir)
        self.record = record
        self._last_beat = 0.0

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def history(self) -> History:
        return self.record.history

    def _write_record(self) -> None:
        self.record.heartbeat = time.time()
        atomic_write(self.run_dir / RUN_FILE, self.record.to_json())

    def heartbeat(self, force: bool = False) -> None:
        """Refresh the heartbeat (at most every HEARTBEAT_EVERY_S unless forced)."""
        now = time.monotonic()
        if force or now - self._last_beat >= HEARTBEAT_EVERY_S:
            self._last_beat = now
            self._write_record()

    def update(self, **fields: JSONValue) -> None:
        """Change some of run.json's keys (values as run.json holds them) and write it."""
        self.record = self.record.updated(**fields)
        self._write_record()

    def add_epoch(self, row: EpochRow | Mapping[str, JSONValue]) -> None:
        """Append an epoch to history.csv (rewritten atomically) and refresh run.json."""
        row = EpochRow.of(row)
        # Kept in memory first: a failed write loses nothing the next write would not restore.
        self.record.history = self.record.history.plus(row)
        atomic_write(self.run_dir / HISTORY_FILE, self.record.history.to_csv())
        self.record.epochs_done = len(self.record.history)
        self.record.last_epoch = row
        self._write_record()

    def save_model(self, model: keras.Model) -> Path:
        """Save model.keras atomically (Keras needs the .keras suffix on the temp name too), with the run's
        class names inside it (`tlcore.modelfile.add_labels`): a downloaded copy predicts named classes."""
        final = self.run_dir / MODEL_FILE
        tmp = self.run_dir / f".model.{os.getpid()}.tmp.keras"
        try:
            model.save(tmp)
            config = self.record.config
            add_labels(tmp, self.record.class_names or [], config.image_size if config else 0)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        return final

    def finish(self, status: str, reason: str = "", **fields: JSONValue) -> None:
        ended_recording(self.run_id)
        self.record = self.record.updated(**fields, status=status, reason=reason, finished=utc_now())
        self._write_record()
