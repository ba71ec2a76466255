"""The runs folder as one person sees it: create, list, load and delete runs, within a student's quota.

One run's folder read back (its files, its effective status) is tlcore.run_folder;
a run being written is tlcore.recording; what the files hold is tlcore.records.
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore import environment
from tlcore.access import ADMIN, Actor, plain_name
from tlcore.config import TrainConfig
from tlcore.environment import MAX_RUNS_ENV, RUNS_ENV
from tlcore.history import History
from tlcore.jsontypes import JSONObject, JSONValue
from tlcore.recording import Run
from tlcore.records import RUNNING, DatasetFacts, RunRecord, StartRecord
from tlcore.run_folder import MODEL_FILE, RUN_FILE, began_recording, disk_size, ended_recording, load_record, utc_now
from tlcore.schedule import schedule

if TYPE_CHECKING:
    from tlcore.data import DatasetInfo


def default_runs_dir() -> Path:
    return Path(environment.text(RUNS_ENV) or "runs").expanduser()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "numpy", "PIL"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name if name != "PIL" else "pillow"] = getattr(module, "__version__", "?")
    return versions


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
    def planned_epochs(self) -> int | None:
        """The epochs its plan held on its data: a head trained on cached features may run more than the config
        asks (`tlcore.schedule`). None when the config is unknown; the config's epochs before a route was taken."""
        from tlcore.data import TRAIN  # here: listing runs needs neither NumPy nor Pillow

        config, facts, routes = self.config, self.record.dataset, self.record.routes
        if config is None:
            return None
        if facts is None or not routes:
            return config.total_epochs()
        return schedule(config, sum(facts.counts.get(TRAIN, {}).values()), (), routes[0]).total_epochs

    @property
    def val_accuracy(self) -> float | None:
        return self.record.history.final_val_accuracy

    @property
    def best_val_accuracy(self) -> float | None:
        return self.record.history.best_val_accuracy


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
    `quota`: whether a student's runs here count towards TLLAB_MAX_RUNS (not for runs that keep no model,
    such as a transfer curve's, `tlcore.curve_records`).
    """

    def __init__(self, root: str | os.PathLike | None = None, actor: Actor = ADMIN, quota: bool = True):
        self.root = Path(root) if root is not None else default_runs_dir()
        self.actor = actor
        self.quota = quota

    def as_actor(self, actor: Actor) -> RunStore:
        """The same folder, seen by `actor`."""
        return RunStore(self.root, actor, self.quota)

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
        train_files, _ = info.items("train")
        record = RunRecord(
            run_id=run_dir.name,
            status=RUNNING,
            created=utc_now(),
            pid=os.getpid(),
            host=socket.gethostname(),
            device=device or None,
            config=config,
            class_names=list(info.class_names),
            dataset=DatasetFacts(
                # Absolute: a run made from a relative path (the CLI's `--data sample_data`) must resolve from anywhere.
                root=str(Path(info.root).resolve()),
                fingerprint=info.fingerprint(),
                counts=info.counts(),
                skipped=len(info.skipped),
            ),
            validation_files=[os.path.relpath(p, info.root) for p in validation_files],
            train_files=[os.path.relpath(p, info.root) for p in train_files],
            versions=library_versions(),
            tags=dict(tags or {}),
            owner=self.actor.owner or None,
            start=start,
            run_dir=run_dir,
        )
        run = Run(run_dir, record)
        began_recording(run.run_id)
        try:
            run.heartbeat(force=True)
        except OSError as err:
            ended_recording(run.run_id)
            shutil.rmtree(run_dir, ignore_errors=True)
            raise self._cannot_write(err) from None
        return run

    def quota_problem(self, more: int = 1) -> str | None:
        """Why this actor may not start `more` runs (a student past TLLAB_MAX_RUNS: a sweep's points), or None."""
        if self.actor.teacher or not self.quota:
            return None
        most, kept = max_runs(), len(self.list())
        if kept + more <= most:
            return None
        have = f"You have {kept} run{'s' if kept != 1 else ''}"
        if more > 1:
            return (
                f"{have} and these settings keep {more} more; one student may keep {most} here (each model is "
                "about 59 MB): delete some on the Runs page, or choose fewer points."
            )
        return (
            f"{have}, the most one student may keep here (each model is "
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
