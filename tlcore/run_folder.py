"""One run's folder read back: runs/<id>/{run.json, history.csv, model.keras}, and the run's effective status.

A running run's record holds its pid, host and a heartbeat: a run whose
process is gone reads as "interrupted", not "running" forever. What the files
hold is tlcore.records and tlcore.history; writing them is tlcore.recording.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from tlcore.fileio import atomic_write
from tlcore.history import History
from tlcore.records import INTERRUPTED, RUNNING, RunRecord

RUN_FILE, HISTORY_FILE, MODEL_FILE = "run.json", "history.csv", "model.keras"
STALE_AFTER_S = 15 * 60.0  # a heartbeat this old means the run is dead, wherever it ran

# Runs this process is recording now. A record written by this very process
# that is not among them stayed "running" only because a write failed (disk full).
_RECORDING: set[str] = set()


def began_recording(run_id: str) -> None:
    """Note that this process records `run_id` now (its "running" record is live)."""
    _RECORDING.add(run_id)


def ended_recording(run_id: str) -> None:
    """Note that this process no longer records `run_id`."""
    _RECORDING.discard(run_id)


def utc_now() -> str:
    """Now, in UTC, as run.json writes times (ISO 8601, whole seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_status(record: RunRecord) -> str:
    """The stored status, except a "running" run whose process died reads "interrupted"."""
    if record.status != RUNNING:
        return record.status
    same_host = record.host == socket.gethostname()
    if same_host and not _pid_alive(record.pid):
        return INTERRUPTED
    if same_host and record.pid == os.getpid() and record.run_id not in _RECORDING:
        return INTERRUPTED
    if time.time() - record.heartbeat > STALE_AFTER_S:
        return INTERRUPTED
    return RUNNING


def mark_interrupted(run_dir: Path, reason: str) -> None:
    """Record that a run's process died mid-run (a lost cluster worker), unless the run had already ended.

    A dead process on this host already reads "interrupted" (effective_status); one on
    another node would only after STALE_AFTER_S: this says so at once, and why.
    """
    path = Path(run_dir) / RUN_FILE
    try:
        record = RunRecord.from_json(path.read_text())
    except (OSError, ValueError):
        return  # nothing readable to correct: the run store lists it as damaged already
    if record.status == RUNNING:
        atomic_write(path, record.updated(status=INTERRUPTED, reason=reason, finished=utc_now()).to_json())


def read_history(run_dir: Path) -> History:
    """The run's history.csv (empty before the first epoch).

    Raises:
        ValueError: the file does not parse; the message names it, the line and why.
    """
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return History()
    return History.from_csv(path.read_text(), source=str(path))


def load_record(run_dir: Path) -> RunRecord:
    """A run folder's record with its history and its effective status; its id is the folder's name.

    Raises:
        OSError: run.json cannot be read.
        ValueError: run.json or history.csv does not parse (the message names the file and why).
    """
    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    try:
        record = RunRecord.from_json(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not a readable run record: {err}") from None
    record.status = effective_status(record)
    record.run_id, record.run_dir = run_dir.name, run_dir
    record.history = read_history(run_dir).keeping(record.kept_epoch)
    return record


def disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
