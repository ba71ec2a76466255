"""What a backend is (the protocol jobs run through), the errors it raises, and the in-process one.

A backend runs one job function, `fn(*args, report=..., stop=...)`, and hands back its return
value; `report` gets the function's progress events and setting `stop` asks it to end within one
batch. The storage probe lets a backend whose workers write runs check they share the run store.
The Ray backend lives in `tlcore.cluster`, which also chooses the backend (`backend_from_env`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypedDict, TypeVar

from tlcore import environment
from tlcore.environment import MAX_JOBS_ENV
from tlcore.progress import ProgressFn, StopFlag

STORAGE_PROBE_PREFIX = ".storage-probe-"

R = TypeVar("R")  # what a job function returns
# A job function's own arguments, whatever it takes: only `fn` knows them, and Ray pickles them to a worker.
JobArgs = Sequence[Any]


class ClusterError(Exception):
    """The cluster cannot run jobs; the message says why, for people."""


class ClusterGone(ClusterError):
    """The cluster went away (or could not be reached) while a job ran."""


class WorkerLost(ClusterError):
    """The worker process running a job died mid-run (killed, out of memory, its node lost)."""


class StorageNotShared(ClusterError):
    """The run store is not on storage the workers share with this process."""


class Backend(Protocol):
    name: str
    parallel: bool  # whether a sweep's points may run at once, one job slot each

    def connect(self, storage_root: str | os.PathLike[str] | None = None) -> None:
        """Be ready to run jobs that write runs under storage_root (raises ClusterError when it cannot)."""
        ...

    def slots(self) -> int:
        """How many jobs may run at once."""
        ...

    def call(self, fn: Callable[..., R], args: JobArgs, report: ProgressFn, stop: StopFlag) -> R:
        """Run fn(*args, report=report, stop=stop) and return its value (raises what it raised)."""
        ...

    def describe(self) -> str:
        """Where jobs run, in plain words (the sidebar shows it)."""
        ...

    def problem(self) -> str:
        """Why jobs cannot run now ('' when they can)."""
        ...


class InProcessBackend:
    """Jobs run in threads of this process: TLLAB_MAX_JOBS (default 1) at a time.

    On a small shared machine two VGG16 runs side by side each take twice as
    long and need twice the memory, so by default the second waits its turn.
    """

    name = "in-process"
    parallel = False

    def __init__(self, max_jobs: int | None = None) -> None:
        self.max_jobs = max_jobs

    def connect(self, storage_root: str | os.PathLike[str] | None = None) -> None:
        """Nothing to connect: the jobs run here and write where this process writes."""

    def slots(self) -> int:
        return self.max_jobs or environment.whole_number(MAX_JOBS_ENV, 1)

    def call(self, fn: Callable[..., R], args: JobArgs, report: ProgressFn, stop: StopFlag) -> R:
        return fn(*args, report=report, stop=stop)

    def describe(self) -> str:
        n = self.slots()
        return f"this machine, {n} job{'s' if n != 1 else ''} at a time"

    def problem(self) -> str:
        return ""


# --- the storage probe: runs on a worker ------------------------------------------------------------


class ProbeWriter(TypedDict, total=False):
    """Who wrote a storage probe, and what went wrong if it could not."""

    host: str
    pid: int
    error: str


def write_storage_probe(root: str, token: str, *, report: ProgressFn, stop: StopFlag) -> ProbeWriter:
    """Write `root/.storage-probe-<token>` where this (worker) process sees `root`; say who wrote it."""
    where = ProbeWriter(host=socket.gethostname(), pid=os.getpid())
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        (Path(root) / f"{STORAGE_PROBE_PREFIX}{token}").write_text(token)
    except OSError as err:
        return {**where, "error": f"{err.strerror or err}"}
    return where


def check_storage_probe(root: str, token: str, writer: ProbeWriter) -> None:
    """Read the probe a worker wrote (and remove it).

    Raises:
        StorageNotShared: this process cannot read what the worker wrote, so the runs
            the workers write would not reach this app.
    """
    probe = Path(root) / f"{STORAGE_PROBE_PREFIX}{token}"
    try:
        seen = probe.read_text()
    except OSError:
        seen = ""
    finally:
        probe.unlink(missing_ok=True)
    if seen == token:
        return
    why = f" (it could not write there: {writer['error']})" if writer.get("error") else ""
    raise StorageNotShared(
        f"The run store {root} is not shared with the Ray workers: a worker on {writer.get('host', '?')} "
        f"(pid {writer.get('pid', '?')}) wrote a probe file there that this app on {socket.gethostname()} "
        f"cannot read{why}. Runs are written by the workers, so put the run store on storage every node "
        f"sees (an NFS mount, the same path everywhere) and point TLLAB_RUNS_DIR at it."
    )
