"""Where jobs run: threads of this process (the default), or the workers of a Ray cluster (the app's side).

`backend_from_env` chooses: Ray when TLLAB_RAY_ADDRESS is set. `RayBackend` starts the lab's Ray
driver (`tlcore.ray_dispatcher`) and follows each job through it. The Backend protocol, its errors
and the in-process backend are in `tlcore.backend`; `tlcore.jobs` keeps the queue of jobs and pages,
the command line and notebooks never see which backend runs. README's "A class on a Ray cluster" tells the rest.
"""

from __future__ import annotations

import atexit
import importlib.util
import itertools
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from tlcore import environment
from tlcore.backend import (
    Backend,
    ClusterError,
    ClusterGone,
    InProcessBackend,
    JobArgs,
    ProbeWriter,
    StorageNotShared,
    WorkerLost,
    check_storage_probe,
    write_storage_probe,
)
from tlcore.environment import RAY_ADDRESS_ENV, RAY_CPUS_ENV, RAY_CPUS_PER_JOB_ENV
from tlcore.progress import ProgressFn, StopFlag

LOCAL = "local"
# The jobs pass little through Ray's object store (events, results): images, features and runs live on disk.
OBJECT_STORE_BYTES = 128 * 2**20
POLL_S = 0.1  # how often the dispatcher collects a worker's events: a Stop reaches it within this, plus one batch
CONNECT_TIMEOUT_S = 120.0
# Ray ends a driver that has not reached its cluster's control service for this long (its default is 60 s):
# the dispatcher then ends, and the jobs it followed fail with one message instead of waiting a minute.
GCS_RECONNECT_TIMEOUT_S = 20
RAY_REQUIREMENTS = "requirements-ray.txt"

R = TypeVar("R")  # what a job function returns
# A message over the pipes to and from the dispatcher is (kind, payload), pickled: the payload's shape depends
# on the kind (see tlcore.ray_dispatcher), and a "done" carries the job function's return value, whatever it is.
Payload = Any
Message = tuple[str, Payload]


class DispatcherSettings(TypedDict):
    """What the dispatcher is started with (its "init" message)."""

    address: str  # LOCAL, "auto" or a cluster's address
    cpus: int  # a local Ray's CPUs
    object_store_bytes: int
    isolated: bool  # whether it runs in a loopback-only network namespace (it brings `lo` up)


# --- Ray: the app's side of the dispatcher ------------------------------------------------------------


@dataclass
class _Call:
    """A job function running on the cluster, as this process follows it."""

    report: ProgressFn
    stop: StopFlag
    inbox: queue.Queue[Message] = field(default_factory=queue.Queue)
    stop_sent: bool = False


def _loopback_namespace_command() -> list[str]:
    """A command prefix running a child in a network namespace of its own, only loopback in it ([] if not possible).

    A local Ray runs in it where Linux allows, because Ray's servers listen on every interface.
    """
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return []
    prefix = [unshare, "--net"] + (["--map-root-user"] if os.geteuid() != 0 else [])
    try:  # user namespaces may be forbidden (containers, sysctl): try once
        ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return prefix if ok else []


class RayBackend:
    """Jobs run as Ray actors, one per job, each asking for its CPUs (and a GPU where the cluster has them).

    The Ray driver is a child process (`python -m tlcore.ray_dispatcher`) started on first use,
    talking to this process over two pipes; not the web server itself, because Ray ends a driver
    whose cluster has gone away and the lab must keep serving. When it ends, the jobs it
    followed fail with one clear message and the next job starts a new one.

    Runs are written by the workers, so the run store must be on storage every node sees:
    `connect` checks it (a worker writes a probe file, this process reads it) and refuses
    with a clear message when it is not.
    """

    name = "ray"
    parallel = True

    def __init__(self, address: str, cpus: int | None = None, cpus_per_job: int | None = None) -> None:
        self.address = address
        self.cpus = cpus
        self.cpus_per_job = cpus_per_job or environment.whole_number(RAY_CPUS_PER_JOB_ENV, 1)
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._to_dispatcher: Connection | None = None
        self._owner_pid = os.getpid()  # the process whose child the dispatcher is
        self._swap_lock = threading.Lock()  # taking the dispatcher away is one step
        self._send_lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count(1)
        self._resources: dict[str, float] = {}
        self._ray_missing_error = "" if importlib.util.find_spec("ray") else self._ray_missing()
        self._storage_error = ""  # set while the run store is found not shared with the workers
        self.isolated = False  # whether the local Ray runs in a loopback-only network namespace
        self.storage_root: str | None = None

    def _ray_missing(self) -> str:
        return (
            f"{RAY_ADDRESS_ENV} is set ({self.address!r}), but Ray is not installed. Install it with "
            f"`pip install -r {RAY_REQUIREMENTS}` (or the project's `ray` extra), or unset {RAY_ADDRESS_ENV} "
            f"to train on this machine."
        )

    # -- connecting --

    def connect(self, storage_root: str | os.PathLike[str] | None = None) -> None:
        """Start the dispatcher, and check the run store is shared (each once per connection).

        Raises:
            ClusterError: Ray is missing, the cluster cannot be reached, or the storage is not shared.
        """
        with self._lock:
            if self._ray_missing_error:
                raise ClusterError(self._ray_missing_error)
            if self._process is None or self._process.poll() is not None:
                self.storage_root = None  # a new connection may reach other workers: check again
                self._start_dispatcher()
        if storage_root is not None and self.storage_root != str(storage_root):
            self.check_storage(str(storage_root))

    def _start_dispatcher(self) -> None:
        """Start `tlcore.ray_dispatcher` and wait for it to be connected (caller holds the lock)."""
        app_in, dispatcher_out = os.pipe()
        dispatcher_in, app_out = os.pipe()
        local = self.address == LOCAL
        prefix = _loopback_namespace_command() if local else []
        self.isolated = bool(prefix)
        command = [*prefix, sys.executable, "-m", "tlcore.ray_dispatcher", str(dispatcher_in), str(dispatcher_out)]
        self._owner_pid = os.getpid()
        self._process = subprocess.Popen(
            command,
            pass_fds=(dispatcher_in, dispatcher_out),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "RAY_gcs_rpc_server_reconnect_timeout_s": str(GCS_RECONNECT_TIMEOUT_S)},
        )
        os.close(dispatcher_in)
        os.close(dispatcher_out)
        self._to_dispatcher = Connection(app_out, readable=False)
        from_dispatcher = Connection(app_in, writable=False)
        settings = DispatcherSettings(
            address=self.address,
            cpus=self.cpus or environment.whole_number(RAY_CPUS_ENV, os.cpu_count() or 1),
            object_store_bytes=OBJECT_STORE_BYTES,
            isolated=self.isolated,
        )
        self._send(("init", settings))
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            if not from_dispatcher.poll(max(0.0, deadline - time.monotonic())):
                self._end_dispatcher()
                raise ClusterGone(f"The Ray cluster {self._where()} did not answer within {CONNECT_TIMEOUT_S:.0f} s.")
            try:
                kind, payload = from_dispatcher.recv()
            except (EOFError, OSError):
                self._end_dispatcher()
                raise ClusterGone(f"The lab's Ray driver ended while connecting to {self._where()}.") from None
            if kind == "ready":
                self._resources = dict(payload)
                break
            if kind == "fatal":
                self._end_dispatcher()
                raise ClusterError(str(payload))
        threading.Thread(
            target=self._read, args=(from_dispatcher, self._process), name="tlcore-ray-reader", daemon=True
        ).start()
        atexit.register(self.close)

    def _where(self) -> str:
        return "started on this machine" if self.address == LOCAL else f"at {self.address}"

    def check_storage(self, root: str, writer: Callable[..., ProbeWriter] = write_storage_probe) -> None:
        """A worker writes a probe under `root`; this process must read it (see check_storage_probe).

        Raises:
            StorageNotShared: with the message pages show; every later job is refused with it too.
        """
        token = secrets.token_hex(8)
        Path(root).mkdir(parents=True, exist_ok=True)
        where = self.call(writer, (str(Path(root).resolve()), token), lambda _e: None, threading.Event(), cpus=0)
        try:
            check_storage_probe(str(Path(root).resolve()), token, where)
        except StorageNotShared as err:
            self._storage_error = str(err)
            raise
        self._storage_error = ""
        self.storage_root = str(root)

    # -- running jobs --

    def slots(self) -> int:
        cpus = self._resources.get("CPU", 0.0)
        if not cpus:
            return 1  # not connected yet: the first job connects
        slots = int(cpus // self.cpus_per_job)
        gpus = self._resources.get("GPU", 0.0)
        if gpus:
            slots = min(slots, int(gpus))
        return max(1, slots)

    def call(
        self, fn: Callable[..., R], args: JobArgs, report: ProgressFn, stop: StopFlag, cpus: float | None = None
    ) -> R:
        """Run fn on a worker; its events reach `report` in order; `stop` is passed on within POLL_S.

        Raises:
            WorkerLost: the worker died mid-run.
            ClusterGone: the cluster went away or cannot be reached.
            Whatever fn raised, as it raised it.
        """
        self.connect()
        call_id = next(self._ids)
        call = _Call(report, stop)
        self._calls[call_id] = call
        resources = self.job_resources() if cpus is None else {"num_cpus": cpus}
        try:
            self._send(("call", (call_id, fn, tuple(args), resources)))
            while True:
                try:
                    kind, payload = call.inbox.get(timeout=POLL_S)
                except queue.Empty:
                    kind, payload = "", None
                if stop.is_set() and not call.stop_sent:
                    call.stop_sent = True
                    self._send(("stop", call_id))
                if kind == "event":
                    report(payload)
                elif kind == "done":
                    return payload
                elif kind == "failed":
                    raise payload
                elif kind == "lost":
                    raise WorkerLost(payload)
                elif kind == "gone":  # the dispatcher lost the cluster (it keeps running; the next job reconnects)
                    raise ClusterGone(payload)
                elif kind == "ended":  # the dispatcher itself ended
                    raise ClusterGone(self._gone(*payload))
        finally:
            self._calls.pop(call_id, None)

    def job_resources(self) -> dict[str, float]:
        """What each job asks Ray for: its CPUs, and one GPU when the cluster has any."""
        resources: dict[str, float] = {"num_cpus": self.cpus_per_job}
        if self._resources.get("GPU"):
            resources["num_gpus"] = 1
        return resources

    def _send(self, message: Message) -> None:
        with self._send_lock:
            connection = self._to_dispatcher
            try:
                if connection is None:
                    raise OSError("not connected")
                connection.send(message)
            except (OSError, ValueError) as err:
                raise ClusterGone(f"The lab's Ray driver is gone ({err}); the next job starts a new one.") from None

    def _read(self, connection: Connection, process: subprocess.Popen[bytes]) -> None:
        """Route the dispatcher's messages to the calls waiting for them; on its end, fail them all."""
        while True:
            try:
                kind, payload = connection.recv()
            except (EOFError, OSError):
                break
            if kind == "resources":
                self._resources = dict(payload)
                continue
            call_id, body = payload
            call = self._calls.get(call_id)
            if call is not None:
                call.inbox.put((kind, body))
        code = process.wait()
        message = (
            f"The Ray cluster {self._where()} went away (the lab's Ray driver ended with exit code {code}). "
            "Finished epochs are kept in the run store; the next job reconnects."
        )
        for call in list(self._calls.values()):
            call.inbox.put(("ended", (process, message)))

    def _gone(self, process: subprocess.Popen[bytes], message: str) -> str:
        """A dispatcher ended: forget it if it is still the current one (a newer one is left running)."""
        self._end_dispatcher(only=process)
        return message

    def _end_dispatcher(self, only: subprocess.Popen[bytes] | None = None) -> None:
        """End the current dispatcher (only when it is `only`, when given), from the process that started it.

        A stale "gone" must not end the fresh dispatcher a later job started, and a forked child (which
        inherits this object and its exit handler) must not end its parent's.
        """
        with self._swap_lock:
            if (only is not None and self._process is not only) or os.getpid() != self._owner_pid:
                return
            process, self._process = self._process, None
            connection, self._to_dispatcher = self._to_dispatcher, None
        if connection is not None:
            connection.close()
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def close(self) -> None:
        """Shut the dispatcher down (it shuts a local Ray down with it); only its own process may."""
        if os.getpid() != self._owner_pid:
            return
        if self._process is not None and self._process.poll() is None:
            try:
                self._send(("close", None))
                self._process.wait(timeout=30)
            except (ClusterGone, subprocess.TimeoutExpired):
                pass
        self._end_dispatcher()

    # -- describing --

    @property
    def dispatcher_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def resources(self) -> dict[str, float]:
        """The cluster's resources as Ray reported them last ({} before connecting)."""
        return dict(self._resources)

    def describe(self) -> str:
        if self.problem():
            return f"Ray ({self.address}): not usable"
        cpus, gpus, nodes = (self._resources.get(k, 0.0) for k in ("CPU", "GPU", "nodes"))
        if not cpus:
            return f"Ray cluster ({self.address}), connecting on the first job"
        gpu = f", {gpus:g} GPU{'s' if gpus != 1 else ''}" if gpus else ""
        where = "a local Ray" if self.address == LOCAL else f"the Ray cluster at {self.address}"
        return (
            f"{where}: {nodes:g} node{'s' if nodes != 1 else ''}, {cpus:g} CPUs{gpu}; "
            f"{self.slots()} job{'s' if self.slots() != 1 else ''} at a time"
        )

    def problem(self) -> str:
        return self._ray_missing_error or self._storage_error


def backend_from_env() -> Backend:
    """Ray when TLLAB_RAY_ADDRESS is set, else threads of this process.

    TLLAB_RAY_ADDRESS is "auto" (the cluster this node belongs to), a cluster address
    ("ray://head:10001" or "head:6379"), or "local" (a Ray of TLLAB_RAY_CPUS workers on this
    machine, started by the lab).
    """
    address = environment.text(RAY_ADDRESS_ENV).strip()
    if not address:
        return InProcessBackend()
    cpus = environment.whole_number(RAY_CPUS_ENV, os.cpu_count() or 1) if environment.text(RAY_CPUS_ENV) else None
    return RayBackend(address, cpus=cpus)
