"""Run store on disk: runs/<id>/{run.json, history.csv, model.keras}.

Every write is atomic (temporary file, fsync, rename), so a run killed at any
moment leaves a readable record. A running run's record holds its pid, host
and a heartbeat: a run whose process is gone reads as "interrupted", not
"running" forever. No TensorFlow here except when a model is saved or loaded.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import secrets
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore.config import TrainConfig

if TYPE_CHECKING:
    import keras

    from tlcore.data import DatasetInfo

RUNS_ENV = "TLLAB_RUNS_DIR"
RUN_FILE, HISTORY_FILE, MODEL_FILE = "run.json", "history.csv", "model.keras"
RUNNING, COMPLETED, STOPPED, FAILED, INTERRUPTED = "running", "completed", "stopped", "failed", "interrupted"
HEARTBEAT_EVERY_S = 10.0
STALE_AFTER_S = 15 * 60.0  # a heartbeat this old means the run is dead, wherever it ran
HISTORY_FIELDS = [
    "phase", "epoch", "freeze_at", "learning_rate", "path", "loss", "accuracy",
    "val_loss", "val_accuracy", "seconds", "batches", "partial",
]


def default_runs_dir() -> Path:
    return Path(os.environ.get(RUNS_ENV) or "runs").expanduser()


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write a file so that readers see either the old or the new content, never a mix."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "numpy", "PIL"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name if name != "PIL" else "pillow"] = getattr(module, "__version__", "?")
    return versions


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_status(record: dict[str, Any]) -> str:
    """The stored status, except a "running" run whose process died reads "interrupted"."""
    status = record.get("status", FAILED)
    if status != RUNNING:
        return status
    same_host = record.get("host") == socket.gethostname()
    if same_host and not _pid_alive(int(record.get("pid", -1))):
        return INTERRUPTED
    if time.time() - float(record.get("heartbeat", 0)) > STALE_AFTER_S:
        return INTERRUPTED
    return RUNNING


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return []
    rows = []
    for raw in csv.DictReader(io.StringIO(path.read_text())):
        row: dict[str, Any] = {}
        for key, value in raw.items():
            if key in ("phase", "epoch", "freeze_at", "batches"):
                row[key] = int(value)
            elif key == "partial":
                row[key] = value == "True"
            elif key == "path":
                row[key] = value
            else:
                row[key] = float(value)
        rows.append(row)
    return rows


def history_csv(history: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    return out.getvalue()


@dataclass
class RunSummary:
    """One line of the runs table."""

    run_id: str
    run_dir: Path
    status: str
    created: str
    config: TrainConfig | None
    val_accuracy: float | None
    best_val_accuracy: float | None
    epochs_done: int
    seconds: float | None
    disk_bytes: int
    tags: dict[str, Any]
    record: dict[str, Any]


class Run:
    """A run being recorded: keeps run.json and history.csv current on disk."""

    def __init__(self, run_dir: Path, record: dict[str, Any]):
        self.run_dir = Path(run_dir)
        self.record = record
        self.history: list[dict[str, Any]] = []
        self._last_beat = 0.0

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def _write_record(self) -> None:
        self.record["heartbeat"] = time.time()
        atomic_write(self.run_dir / RUN_FILE, json.dumps(self.record, indent=2, default=str))

    def heartbeat(self, force: bool = False) -> None:
        """Refresh the heartbeat (at most every HEARTBEAT_EVERY_S unless forced)."""
        now = time.monotonic()
        if force or now - self._last_beat >= HEARTBEAT_EVERY_S:
            self._last_beat = now
            self._write_record()

    def update(self, **fields: Any) -> None:
        self.record.update(fields)
        self._write_record()

    def add_epoch(self, row: dict[str, Any]) -> None:
        """Append an epoch to history.csv (rewritten atomically) and refresh run.json."""
        self.history.append(row)
        atomic_write(self.run_dir / HISTORY_FILE, history_csv(self.history))
        self.record["epochs_done"] = len(self.history)
        self.record["last_epoch"] = row
        self._write_record()

    def save_model(self, model: "keras.Model") -> Path:
        """Save model.keras atomically (Keras needs the .keras suffix on the temp name too)."""
        final = self.run_dir / MODEL_FILE
        tmp = self.run_dir / f".model.{os.getpid()}.tmp.keras"
        try:
            model.save(tmp)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        return final

    def finish(self, status: str, reason: str = "", **fields: Any) -> None:
        self.record.update(fields)
        self.record.update(status=status, reason=reason, finished=_now())
        self._write_record()


class RunStore:
    """The runs folder: create, list, load and delete runs."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()

    def create(
        self,
        config: TrainConfig,
        info: "DatasetInfo",
        tags: dict[str, Any] | None = None,
    ) -> Run:
        """A new run folder with its record written before any training happens."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = self.root / f"{stamp}-{secrets.token_hex(3)}"
        run_dir.mkdir()
        validation_files, _ = info.items("validation")
        record = {
            "run_id": run_dir.name,
            "status": RUNNING,
            "reason": "",
            "created": _now(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "config": config.to_dict(),
            "class_names": list(info.class_names),
            "dataset": {
                "root": str(info.root),
                "fingerprint": info.fingerprint(),
                "counts": info.counts(),
                "skipped": len(info.skipped),
            },
            "validation_files": [os.path.relpath(p, info.root) for p in validation_files],
            "versions": library_versions(),
            "tags": dict(tags or {}),
            "epochs_done": 0,
        }
        run = Run(run_dir, record)
        run.heartbeat(force=True)
        return run

    def run_dir(self, run_id: str) -> Path:
        path = self.root / run_id
        if not (path / RUN_FILE).is_file():
            raise FileNotFoundError(f"No run {run_id!r} in {self.root}")
        return path

    def load(self, run_id: str) -> dict[str, Any]:
        """The run's record (with its effective status) and its history."""
        return load_record(self.run_dir(run_id))

    def list(self) -> list[RunSummary]:
        """All readable runs, newest first. Unreadable folders are left out."""
        if not self.root.is_dir():
            return []
        summaries = []
        for run_dir in sorted(self.root.iterdir(), reverse=True):
            if not (run_dir / RUN_FILE).is_file():
                continue
            try:
                record = load_record(run_dir)
            except (OSError, ValueError):
                continue
            summaries.append(_summary(run_dir, record))
        return summaries

    def delete(self, run_id: str) -> None:
        shutil.rmtree(self.run_dir(run_id))


def load_record(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    record = json.loads((run_dir / RUN_FILE).read_text())
    record["status"] = effective_status(record)
    record["history"] = read_history(run_dir)
    record["run_dir"] = str(run_dir)
    return record


def disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _summary(run_dir: Path, record: dict[str, Any]) -> RunSummary:
    history = record.get("history", [])
    try:
        config = TrainConfig.from_dict(record["config"])
    except (KeyError, TypeError, ValueError):
        config = None
    return RunSummary(
        run_id=run_dir.name,
        run_dir=run_dir,
        status=record["status"],
        created=record.get("created", ""),
        config=config,
        val_accuracy=history[-1]["val_accuracy"] if history else None,
        best_val_accuracy=max(r["val_accuracy"] for r in history) if history else None,
        epochs_done=len(history),
        seconds=record.get("seconds"),
        disk_bytes=disk_size(run_dir),
        tags=record.get("tags", {}),
        record=record,
    )


def load_run_model(run_dir: str | os.PathLike) -> "keras.Model":
    """The run's model.keras, loaded in Keras safe mode."""
    from tlcore.model import load_model

    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Run {Path(run_dir).name} has no saved model ({path} is missing)")
    return load_model(str(path))
