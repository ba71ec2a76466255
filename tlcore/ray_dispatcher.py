"""The lab's Ray driver: a child process of the app that hands jobs to Ray actors (see tlcore.cluster).

Run as `python -m tlcore.ray_dispatcher IN_FD OUT_FD` by `tlcore.cluster.RayBackend`, never by hand.
It calls `ray.init` once, then for each job starts one actor with the job's resources, runs the
job function in it, and forwards the actor's progress events, its result or what went wrong. The
app sends ("init", settings), ("call", (id, fn, args, resources)), ("stop", id) and ("close", None);
this process answers ("ready", resources) or ("fatal", message), then per call ("event" | "done" |
"failed" | "lost" | "gone", (id, payload)), and ("resources", ...) now and then.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayError, RayTaskError

from tlcore.backend import JobArgs
from tlcore.cluster import LOCAL, POLL_S, DispatcherSettings, Payload
from tlcore.progress import WorkerStarted

RESOURCES_EVERY_S = 10.0
IDLE_WORKERS_KEPT = 2  # per shape of resources: enough for a class's next jobs, not a node's memory
# A worker that cannot hand over its events for this long is out of reach. Not sooner: a worker training
# on a loaded machine answered late now and then (tests/test_ray.py under a load of 5 on 2 cores).
EVENTS_TIMEOUT_S = 15.0
EVENTS_TRIES = 4

R = TypeVar("R")  # what a job function returns
# A JobActor's handle. Loosely typed: Ray types an actor's methods only where they are declared with
# @ray.method, and an ActorHandle's other attributes read as Never (mypy would skip the code after them).
WorkerHandle = Any


class JobWorker:
    """A worker process running jobs one at a time: keeps each job's events until collected, takes its Stop.

    Kept for the next job with the same resources once one ends well, so that job
    starts at once instead of starting a process and importing TensorFlow again.
    """

    def __init__(self, cpus: float) -> None:
        self._events: list[object] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if cpus >= 1:  # TensorFlow would otherwise size its thread pools to the whole node, not the job's CPUs
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(int(cpus))

    def _report(self, event: object) -> None:
        with self._lock:
            self._events.append(event)

    def run(self, fn: Callable[..., R], args: JobArgs) -> R:
        with self._lock:
            self._events, self._stop = [], threading.Event()
        self._report(WorkerStarted(socket.gethostname(), os.getpid()))
        try:
            return fn(*args, report=self._report, stop=self._stop)
        finally:
            from tlcore.process_memory import forget_traced_gradients

            forget_traced_gradients()  # this job's models can go before the next job comes

    def events_since(self, cursor: int) -> list[object]:
        with self._lock:
            return self._events[cursor:]

    def stop(self) -> None:
        self._stop.set()


JobActor = ray.remote(JobWorker)


class Dispatcher:
    def __init__(self, inbox: Connection, outbox: Connection) -> None:
        self.inbox, self.outbox = inbox, outbox
        self._send_lock = threading.Lock()
        self._stops: dict[int, threading.Event] = {}
        self._idle: dict[tuple[tuple[str, float], ...], list[WorkerHandle]] = {}
        self._idle_lock = threading.Lock()

    def _take_worker(self, resources: dict[str, float]) -> WorkerHandle:
        """An idle worker with these resources, or a new one."""
        with self._idle_lock:
            idle = self._idle.get(tuple(sorted(resources.items())), [])
            if idle:
                return idle.pop()
        # Threaded, so its events and Stop are served while a job runs; never restarted: a lost job is reported.
        return JobActor.options(max_concurrency=4, max_restarts=0, **resources).remote(resources.get("num_cpus", 0))

    def _keep_worker(self, resources: dict[str, float], actor: WorkerHandle) -> None:
        with self._idle_lock:
            idle = self._idle.setdefault(tuple(sorted(resources.items())), [])
            if len(idle) < IDLE_WORKERS_KEPT:
                idle.append(actor)
                return
        ray.kill(actor)

    def send(self, kind: str, payload: Payload) -> None:
        with self._send_lock:
            try:
                self.outbox.send((kind, payload))
            except (OSError, ValueError):
                os._exit(0)  # the app is gone: nobody to report to

    def resources(self) -> dict[str, float]:
        totals = {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
        totals["nodes"] = float(sum(1 for node in ray.nodes() if node.get("Alive")))
        return totals

    def serve(self) -> None:
        kind, settings = self.inbox.recv()
        if kind != "init":
            return
        try:
            connect(settings)
        except Exception as err:  # whatever Ray says is the message the app shows
            self.send("fatal", f"Could not start or reach the Ray cluster ({settings['address']}): {err}")
            return
        self.send("ready", self.resources())
        threading.Thread(target=self._report_resources, daemon=True).start()
        if settings["address"] == LOCAL:
            threading.Thread(target=_end_with_the_local_ray, daemon=True).start()
        while True:
            try:
                kind, payload = self.inbox.recv()
            except (EOFError, OSError):
                return  # the app ended
            if kind == "call":
                call_id = payload[0]
                self._stops[call_id] = threading.Event()
                threading.Thread(target=self._run, args=payload, name=f"call-{call_id}", daemon=True).start()
            elif kind == "stop" and payload in self._stops:
                self._stops[payload].set()
            elif kind == "close":
                return

    def _report_resources(self) -> None:
        while True:
            time.sleep(RESOURCES_EVERY_S)
            try:
                self.send("resources", self.resources())
            except RayError:
                return

    def _run(self, call_id: int, fn: Callable[..., Payload], args: JobArgs, resources: dict[str, float]) -> None:
        stop = self._stops[call_id]
        worker: WorkerStarted | None = None
        actor = self._take_worker(resources)
        healthy = False  # kept for the next job only when this one ended without the worker or cluster failing
        try:
            result = actor.run.remote(fn, args)
            cursor, stop_sent = 0, False
            while True:
                ready, _ = ray.wait([result], timeout=POLL_S)
                for attempt in range(1, EVENTS_TRIES + 1):  # late is not gone: asked again, EVENTS_TRIES times
                    try:
                        events = ray.get(actor.events_since.remote(cursor), timeout=EVENTS_TIMEOUT_S)
                        break
                    except GetTimeoutError:
                        if attempt == EVENTS_TRIES:
                            raise
                cursor += len(events)
                for event in events:
                    if isinstance(event, WorkerStarted):
                        worker = event
                    self.send("event", (call_id, event))
                if stop.is_set() and not stop_sent:
                    stop_sent = True
                    actor.stop.remote()
                if ready:
                    break
            value = ray.get(result)
            healthy = True
            self.send("done", (call_id, value))
        except RayTaskError as err:  # the job function raised: hand its own exception on
            healthy = True
            self.send("failed", (call_id, _portable(err.cause if isinstance(err.cause, BaseException) else err)))
        except ActorDiedError as err:
            where = f"pid {worker.pid} on {worker.host}" if worker else "before it started"
            self.send("lost", (call_id, f"The Ray worker running this job ({where}) died mid-run: {_first_line(err)}"))
        except (RayError, ConnectionError, TimeoutError) as err:
            self.send("gone", (call_id, f"The Ray cluster went away mid-run: {_first_line(err)}"))
        finally:
            self._stops.pop(call_id, None)
            with contextlib.suppress(RayError, ConnectionError):
                self._keep_worker(resources, actor) if healthy else ray.kill(actor)


def _end_with_the_local_ray() -> None:
    """End this process as soon as the local Ray's own servers die, instead of after Ray's reconnect timeout.

    The app then fails the jobs it followed with one message at once. Reads Ray's record of
    the processes it started (a private attribute: without it, Ray's timeout still applies).
    """
    node = getattr(ray._private.worker, "_global_node", None)  # Ray's private, untyped node object
    if node is None:
        return
    servers = [
        info.process
        for name, infos in (getattr(node, "all_processes", None) or {}).items()
        if name in ("gcs_server", "raylet")
        for info in infos
    ]
    while servers:
        if any(process.poll() is not None for process in servers):
            print("tlcore.ray_dispatcher: the local Ray's servers ended", file=sys.stderr, flush=True)
            try:  # what is left of it (its monitor, log monitor, agents) goes with it
                node.kill_all_processes(check_alive=False, allow_graceful=False)
            finally:
                os._exit(3)
        time.sleep(0.5)


def _portable(err: BaseException) -> BaseException:
    """The exception itself when the app can unpickle it, else a RuntimeError with its type and message."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # any failure to round-trip means: send plain text
        return RuntimeError(f"{type(err).__name__}: {err}")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _loopback_up() -> None:
    """Bring up `lo` in a fresh network namespace (SIOCSIFFLAGS, as `ip link set lo up` does)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s.fileno(), siocgifflags, request))[1]
        fcntl.ioctl(s.fileno(), siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))


def connect(settings: DispatcherSettings) -> None:
    """ray.init once: start a local Ray or join a cluster; no dashboard, a modest object store."""
    if settings["address"] == LOCAL:
        if settings.get("isolated"):
            _loopback_up()
        ray.init(
            num_cpus=settings["cpus"],
            include_dashboard=False,
            object_store_memory=settings["object_store_bytes"],
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
        )
    else:
        ray.init(address=settings["address"], log_to_driver=False)


def main(argv: list[str]) -> int:
    inbox = Connection(int(argv[0]), writable=False)
    outbox = Connection(int(argv[1]), readable=False)
    try:
        Dispatcher(inbox, outbox).serve()
    finally:
        if ray.is_initialized():
            ray.shutdown()
    return 0


if __name__ == "__main__":
    # Run the importable module's main, so the actor class is pickled by reference to tlcore.ray_dispatcher.
    from tlcore.ray_dispatcher import main as module_main

    sys.exit(module_main(sys.argv[1:]))
