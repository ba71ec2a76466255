"""Run store on disk: runs/<id>/{run.json, history.csv, model.keras}.

What the two files hold, and how they are read and written, is tlcore.records.

Every write is atomic (temporary file, fsync, rename), so a run killed at any
moment leaves a readable record. A running run's record holds its pid, host
and a heartbeat: a run whose process is gone reads as "interrupted", not
"running" forever. Loading a run's model is `tlcore.tf.model.load_run_model`.
"""

from __future__ import annotations

import builtins  # RunStore.list shadows the built-in inside the class
import errno
import os
import platform
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore import environment
from tlcore.access import ADMIN, Actor, plain_name
from tlcore.config import TrainConfig
from tlcore.environment import MAX_RUNS_ENV, RUNS_ENV
from tlcore.fileio import atomic_write
from tlcore.jsontypes import JSONObject, JSONValue
from tlcore.modelfile import add_labels
from tlcore.records import (  # noqa: F401  (the statuses and the columns are part of this module's API)
    COMPLETED,
    FAILED,
    HISTORY_FIELDS,
    INTERRUPTED,
    RUNNING,
    STOPPED,
    DatasetFacts,
    EpochRow,
    History,
    RunRecord,
    StartRecord,
)

if TYPE_CHECKING:
    import keras

    from tlcore.data import DatasetInfo

RUN_FILE, HISTORY_FILE, MODEL_FILE = "run.json", "history.csv", "model.keras"
HEARTBEAT_EVERY_S = 10.0
STALE_AFTER_S = 15 * 60.0  # a heartbeat this old means the run is dead, wherever it ran


# Runs this process is recording now. A record written by this very process
# that is not among them stayed "running" only because a write failed (disk full).
_RECORDING: set[str] = set()


def default_runs_dir() -> Path:
    return Path(environment.text(RUNS_ENV) or "runs").expanduser()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "numpy", "PIL"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name if name != "PIL" else "pillow"] = getattr(module, "__version__", "?")
    return versions


def _now() -> str:
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
        atomic_write(path, record.updated(status=INTERRUPTED, reason=reason, finished=_now()).to_json())


def read_history(run_dir: Path) -> History:
    """The run's history.csv (empty before the first epoch).

    Raises:
        ValueError: the file does not parse; the message names it, the line and why.
    """
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return History()
    return History.from_csv(path.read_text(), source=str(path))


def history_csv(history: Iterable[EpochRow | Mapping[str, JSONValue]]) -> str:
    """history.csv's text for rows (EpochRows, or training events' rows)."""
    return History.of(history).to_csv()


class RunFolderError(Exception):
    """The runs folder cannot take a new run (full, unwritable); the message says where and why."""


@dataclass
class RunSummary:
    """One line of the runs table: a run's record (history included) and what its folder takes on disk."""

    run_dir: Path
    record: RunRecord
    disk_bytes: int

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def created(self) -> str:
        return self.record.created

    @property
    def config(self) -> TrainConfig | None:
        return self.record.config

    @property
    def tags(self) -> JSONObject:
        return self.record.tags

    @property
    def seconds(self) -> float | None:
        """The whole run's wall time; None until it ends."""
        return self.record.seconds

    @property
    def history(self) -> History:
        return self.record.history

    @property
    def epochs_done(self) -> int:
        return len(self.record.history)

    @property
    def val_accuracy(self) -> float | None:
        return self.record.history.final_val_accuracy

    @property
    def best_val_accuracy(self) -> float | None:
        return self.record.history.best_val_accuracy


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
        _RECORDING.discard(self.run_id)
        self.record = self.record.updated(**fields, status=status, reason=reason, finished=_now())
        self._write_record()


DEFAULT_MAX_RUNS = 10  # a student's runs kept at once (a model is ~59 MB)


def max_runs() -> int:
    """The runs one student may keep at once (TLLAB_MAX_RUNS)."""
    try:
        return environment.whole_number(MAX_RUNS_ENV, DEFAULT_MAX_RUNS)
    except ValueError:
        return DEFAULT_MAX_RUNS


class RunStore:
    """The runs folder as one person sees it: create, list, load and delete runs.

    `actor` is who acts (tlcore.access): the runs it creates record its owner id, and it lists, opens and
    deletes only the runs it may use. A run it may not use is "not there", exactly as a missing one.
    """

    def __init__(self, root: str | os.PathLike | None = None, actor: Actor = ADMIN):
        self.root = Path(root) if root is not None else default_runs_dir()
        self.actor = actor

    def as_actor(self, actor: Actor) -> RunStore:
        """The same folder, seen by `actor`."""
        return RunStore(self.root, actor)

    def create(
        self,
        config: TrainConfig,
        info: DatasetInfo,
        tags: Mapping[str, JSONValue] | None = None,
        start: StartRecord | None = None,
        device: str = "",
    ) -> Run:
        """A new run folder with its record written before any training happens.

        Args:
            start: where the run starts (`tlcore.tf.training.start_record`): what rebuilds its starting weights.
            device: what trains it, in words (`tlcore.devices.training_device`).

        Raises:
            RunFolderError: the folder cannot be written, or a student has as many runs as they may keep;
                nothing has started yet.
        """
        if (problem := self.quota_problem()) is not None:
            raise RunFolderError(problem)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = self.root / f"{stamp}-{secrets.token_hex(3)}"
        try:
            run_dir.mkdir(parents=True)
        except OSError as err:
            raise self._cannot_write(err) from None
        validation_files, _ = info.items("validation")
        record = RunRecord(
            run_id=run_dir.name,
            status=RUNNING,
            created=_now(),
            pid=os.getpid(),
            host=socket.gethostname(),
            device=device or None,
            config=config,
            class_names=list(info.class_names),
            dataset=DatasetFacts(
                root=str(info.root), fingerprint=info.fingerprint(), counts=info.counts(), skipped=len(info.skipped)
            ),
            validation_files=[os.path.relpath(p, info.root) for p in validation_files],
            versions=library_versions(),
            tags=dict(tags or {}),
            owner=self.actor.owner or None,
            start=start,
            run_dir=run_dir,
        )
        run = Run(run_dir, record)
        _RECORDING.add(run.run_id)
        try:
            run.heartbeat(force=True)
        except OSError as err:
            _RECORDING.discard(run.run_id)
            shutil.rmtree(run_dir, ignore_errors=True)
            raise self._cannot_write(err) from None
        return run

    def quota_problem(self) -> str | None:
        """Why this actor may not start another run (a student at TLLAB_MAX_RUNS), or None."""
        if self.actor.teacher:
            return None
        most, kept = max_runs(), len(self.list())
        if kept < most:
            return None
        return (
            f"You have {kept} run{'s' if kept != 1 else ''}, the most one student may keep here (each model is "
            "about 59 MB): delete some on the Runs page, then start again."
        )

    def check_writable(self) -> None:
        """Refuse now a runs folder that could not take a run, without making anything (a refusal leaves no trace).

        Raises:
            RunFolderError: the folder, or the nearest folder above it that exists, is a file or not writable.
        """
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise self._cannot_write(NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing)))
        if not os.access(existing, os.W_OK | os.X_OK):
            raise self._cannot_write(PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(existing)))

    def _cannot_write(self, err: OSError) -> RunFolderError:
        return RunFolderError(
            f"The runs folder {self.root} cannot take a new run: {err.strerror or err}. "
            f"Free some space, or point {RUNS_ENV} at a writable folder."
        )

    def run_dir(self, run_id: str) -> Path:
        """The run's folder (FileNotFoundError when there is none, or none this actor may use)."""
        self.load(run_id)
        return self.root / run_id

    def load(self, run_id: str) -> RunRecord:
        """The run's record (with its effective status) and its history.

        Raises:
            FileNotFoundError: no such run here, or one the actor may not use (the same message).
        """
        path = self.root / run_id if plain_name(run_id) else None
        if path is None or not (path / RUN_FILE).is_file():
            raise self._no_run(run_id)
        record = load_record(path)
        if not self.actor.may_use(record.owner):
            raise self._no_run(run_id)
        return record

    def _no_run(self, run_id: str) -> FileNotFoundError:
        return FileNotFoundError(f"No run {run_id!r} in {self.root}")

    def summary(self, run_id: str) -> RunSummary:
        """One run's line of the runs table, read afresh (raises FileNotFoundError when it is gone)."""
        record = self.load(run_id)
        return _summary(self.root / run_id, record)

    def list(self) -> list[RunSummary]:
        """The readable runs this actor may use, newest first. Unreadable folders are left out."""
        return [_summary(run_dir, record) for run_dir, record in self._records() if self.actor.may_use(record.owner)]

    def _records(self) -> Iterator[tuple[Path, RunRecord]]:
        """Every readable run of the folder, newest first, whoever owns it (for this module only)."""
        if not self.root.is_dir():
            return
        for run_dir in sorted(self.root.iterdir(), reverse=True):
            if not plain_name(run_dir.name) or not (run_dir / RUN_FILE).is_file():
                continue
            try:
                yield run_dir, load_record(run_dir)
            except (OSError, ValueError):
                continue

    def delete(self, run_id: str) -> None:
        """Delete a run this actor may use (FileNotFoundError, as for a missing run, otherwise)."""
        shutil.rmtree(self.run_dir(run_id))

    def delete_finished(self, run_ids: Sequence[str]) -> tuple[builtins.list[str], builtins.list[str]]:
        """Delete the runs that are not running; a running run is never deleted under its trainer.

        Returns:
            (deleted, kept): kept are the running ones. A run already gone counts as deleted.
        """
        deleted, kept = [], []
        for run_id in run_ids:
            try:
                if self.load(run_id).status == RUNNING:
                    kept.append(run_id)
                    continue
                self.delete(run_id)
            except FileNotFoundError:
                pass  # already gone: nothing to do
            deleted.append(run_id)
        return deleted, kept


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


def _summary(run_dir: Path, record: RunRecord) -> RunSummary:
    return RunSummary(run_dir=run_dir, record=record, disk_bytes=disk_size(run_dir))


def runs_with_models(store: RunStore, extra: str | os.PathLike | None = None) -> dict[str, RunRecord]:
    """Records of the runs (that the store's actor may use) that saved a model, keyed by resolved run folder,
    newest first.

    Args:
        extra: a run folder to include even if it lies outside `store` (the run
            just trained into another runs folder); it comes first, when its owner is the actor's too.
    """
    records = {str(s.run_dir.resolve()): s.record for s in store.list() if (s.run_dir / MODEL_FILE).is_file()}
    if extra is not None:
        extra_dir = Path(extra).resolve()
        if str(extra_dir) not in records and (extra_dir / MODEL_FILE).is_file():
            try:
                record = load_record(extra_dir)
            except (OSError, ValueError):  # an unreadable record: left out, as RunStore.list does
                return records
            if store.actor.may_use(record.owner):
                records = {str(extra_dir): record, **records}
    return records


def class_mismatch(record: RunRecord, class_names: Sequence[str]) -> str | None:
    """Why a run's model cannot be shown beside models of `class_names`, or None when it has the same classes.

    Its outputs must mean the same classes in the same order: a probability for "dogs" from a model of
    animals and vehicles would mean nothing.
    """
    theirs = list(record.class_names or [])
    if theirs == list(class_names):
        return None
    if not theirs:
        return "its run.json does not name its classes"
    return f"it tells apart {', '.join(theirs)}, not {', '.join(class_names)}"


def read_run_json(data: bytes | str) -> RunRecord:
    """An uploaded run.json, checked enough to take its class names.

    Raises:
        ValueError: not JSON, or not a run record (its class_names, if any, a list of names).
    """
    try:
        record = RunRecord.from_json(data)
    except ValueError as err:
        raise ValueError(f"Expected a run.json object with a class_names list: {err}") from None
    if not all(isinstance(name, str) for name in record.class_names or []):
        raise ValueError("Expected a run.json object with a class_names list of names")
    return record
