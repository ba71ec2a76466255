"""The job registry: a thread per job, its snapshot, and the queue for the backend's slots.

The UI starts a job here, keeps its id and polls `job.snapshot()`; the registry is process-wide, so a
reloaded tab finds a running job again. Jobs of different owners queue, first come first served, for the
slots of the backend that runs them (tlcore.cluster); a waiting job shows its place and starts by itself.
"""

from __future__ import annotations

import copy
import math
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Generic, TypeVar

from tlcore import background
from tlcore.access import Actor
from tlcore.backend import Backend, ClusterError
from tlcore.cluster import backend_from_env
from tlcore.config import TrainConfig
from tlcore.estimate import human_seconds
from tlcore.jobs.snapshot import Snapshot, SweepPointDone, apply_event, show_point
from tlcore.process_memory import TRACING
from tlcore.progress import ProgressFn
from tlcore.records import COMPLETED, FAILED, RUNNING, STOPPED
from tlcore.runs import RunStore
from tlcore.sweep import SweepPointStart

QUEUED = "queued"  # a stage: the job is running but waits for a free slot
FINISHED_JOBS_KEPT = 20  # other sessions' finished jobs, for their reloaded tabs
WAITS_FRESH_S = 2.0  # how long the queue's estimated waits are reused before they are worked out again

R = TypeVar("R")  # what a job's work returns


class JobBusy(Exception):
    """The owner already has a job running; the message says which."""


class NotStarted(Exception):
    """The job was stopped while it waited for a slot: there is no result to wait for."""


class Job(Generic[R]):
    """One background job. `on_progress` is fed by the job thread; UIs call `snapshot()`."""

    def __init__(
        self,
        owner: str,
        kind: str,
        epochs_total: int = 0,
        config: TrainConfig | None = None,
        dataset: tuple[str, int, int] = ("", 0, 0),
        listener: ProgressFn | None = None,
    ):
        self.id = secrets.token_hex(6)
        # Gets every event the snapshot is built from, as it comes (the command line prints them).
        self.listener = listener
        # What the job was started with (a sweep's base config): a reloaded page describes
        # the job from these, not from its own session's current settings.
        self.config = config
        self.dataset_root, self.train_images, self.validation_images = dataset
        self.stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._state = Snapshot(job_id=self.id, owner=owner, kind=kind, epochs_total=epochs_total)
        self.thread: threading.Thread | None = None
        self.result: R | None = None  # the job function's return value, once done
        self.exception: BaseException | None = None  # what it raised, when it failed
        # The trained model as .keras bytes, kept only when it could not be saved to disk.
        self.model_bytes: bytes | None = None

    def snapshot(self) -> Snapshot:
        with self._lock:
            return copy.deepcopy(self._state)

    def update(self, **fields: Any) -> None:
        with self._lock:
            for key, value in fields.items():
                setattr(self._state, key, value)

    @contextmanager
    def editing(self) -> Iterator[Snapshot]:
        """The live snapshot under the job's lock, to change several fields at once (typed, unlike update)."""
        with self._lock:
            yield self._state

    def stop(self) -> None:
        self.stop_flag.set()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def on_progress(self, event: object) -> None:
        """Take in a training progress event (tlcore.progress), then hand it to the listener."""
        with self._lock:
            apply_event(self._state, event)
        if self.listener is not None:
            self.listener(event)

    def show(self, point: Snapshot) -> None:
        """Show a sweep point's own progress, kept apart while another point was shown (tlcore.jobs.sweep_jobs)."""
        with self._lock:
            show_point(point, self._state)

    def tell(self, event: SweepPointStart | SweepPointDone) -> None:
        """Hand a sweep's own event to the listener, if any: the snapshot shows the sweep otherwise."""
        if self.listener is not None:
            self.listener(event)


class JobRegistry:
    """Process-wide jobs by id. One running job per owner (a UI session or user).

    At most `max_active` jobs run at once (the backend's slots unless given); later ones wait in
    order (stage "queued", with their place in the message) and start by themselves.
    """

    def __init__(self, max_active: int | None = None, backend: Backend | None = None) -> None:
        self._jobs: dict[str, Job] = {}  # of every kind: their results differ
        self._lock = threading.RLock()  # start() asks running_for() while it holds it
        self.backend: Backend = backend or backend_from_env()
        self._max_active = max_active
        self._slots = threading.Condition()
        self._waiting: list[str] = []  # job ids, first come first served
        self._active: set[str] = set()
        self._borrowed: dict[str, int] = {}  # extra slots a job holds (a sweep's points side by side)
        self._connecting: threading.Thread | None = None
        # The whole queue's waits, worked out once for every waiting job that asks within WAITS_FRESH_S.
        self._waits: tuple[float, dict[str, float]] = (-math.inf, {})

    @property
    def max_active(self) -> int:
        return self._max_active or self.backend.slots()

    @property
    def places(self) -> str:
        """Where jobs run, in plain words ("this machine, 1 job at a time")."""
        return self.backend.describe()

    def connect_in_background(self, store: RunStore | None = None) -> None:
        """Connect the backend and check the run store now, off the caller's thread (once; a UI calls it freely).

        A failure is the backend's problem() until a later connect succeeds; jobs meet it as a ClusterError.
        """
        with self._lock:
            if self._connecting is not None:
                return
            root = (store or RunStore()).root
            self._connecting = threading.Thread(
                target=self._connect_quietly, args=(root,), name="tlcore-connect", daemon=True
            )
            self._connecting.start()

    def _connect_quietly(self, root: Path) -> None:
        with suppress(ClusterError):  # kept as the backend's problem() and shown where jobs are started
            self.backend.connect(root)

    def start(
        self,
        owner: str,
        kind: str,
        work: Callable[[Job[R]], R],
        epochs_total: int = 0,
        config: TrainConfig | None = None,
        dataset: tuple[str, int, int] = ("", 0, 0),
        listener: ProgressFn | None = None,
    ) -> Job[R]:
        """Run work(job) in a daemon thread. Raises JobBusy if owner has a job running.

        The owner's earlier finished jobs are forgotten, so their models can be freed.
        """
        if self.backend.problem():
            raise ClusterError(self.backend.problem())
        with self._lock:
            busy = self.running_for(owner)
            if busy is not None:
                raise JobBusy(
                    f"A {busy.snapshot().kind} job is already running (started "
                    f"{time.time() - busy.snapshot().started:.0f} s ago). Stop it or wait for it to finish."
                )
            self._forget_finished(owner, keep_others=FINISHED_JOBS_KEPT)
            job: Job[R] = Job(owner, kind, epochs_total, config, dataset, listener)
            self._jobs[job.id] = job
            with self._slots:
                self._waiting.append(job.id)
            job.thread = background.start(self._run, (job, work), f"tlcore-job-{job.id}", on_exit=job.stop)
        return job

    def _wait_for_slot(self, job: Job) -> bool:
        """Block until the job may start (True) or was stopped while waiting (False)."""
        while True:
            with self._slots:
                if job.stop_flag.is_set():
                    self._waiting.remove(job.id)
                    self._slots.notify_all()
                    return False
                place = self._waiting.index(job.id)
                if place == 0 and self._in_use() < self.max_active:
                    self._waiting.pop(0)
                    self._active.add(job.id)
                    self._slots.notify_all()
                    return True
                ahead = len(self._active) + place
            # Outside the slots lock: the estimate reads the registry, whose lock start() takes first.
            wait = self.wait_seconds(job)
            about = f", about {human_seconds(wait)} to wait" if wait else ""
            job.update(
                stage=QUEUED,
                message=(
                    f"Waiting for {ahead} run{'s' if ahead != 1 else ''} from other sessions to finish "
                    f"(place {place + 1} in the queue{about}): {self.places}. It starts by itself."
                ),
            )
            with self._slots:
                self._slots.wait(timeout=0.5)

    def wait_seconds(self, job: Job) -> float | None:
        """The estimated seconds until a waiting job starts (None when it does not wait).

        Thirty waiting jobs each ask twice a second: the queue's waits are worked out once per WAITS_FRESH_S.
        """
        from tlcore.speed import machine_speed
        from tlcore.waits import waits

        made, known = self._waits
        if time.monotonic() - made > WAITS_FRESH_S or job.id not in known:
            known = waits(self, machine_speed())
            self._waits = (time.monotonic(), known)
        return known.get(job.id)

    def _in_use(self) -> int:
        return len(self._active) + sum(self._borrowed.values())

    def borrow_slot(self, job: Job) -> bool:
        """One more slot for a running job, only when it is free and nobody waits for it (True if given)."""
        with self._slots:
            if self._waiting or self._in_use() >= self.max_active:
                return False
            self._borrowed[job.id] = self._borrowed.get(job.id, 0) + 1
            return True

    def return_slot(self, job: Job) -> None:
        """Give back a slot taken with borrow_slot."""
        with self._slots:
            if self._borrowed.get(job.id):
                self._borrowed[job.id] -= 1
            self._slots.notify_all()

    def _release_slot(self, job: Job) -> None:
        with self._slots:
            self._active.discard(job.id)
            self._borrowed.pop(job.id, None)
            self._slots.notify_all()

    def _run(self, job: Job[R], work: Callable[[Job[R]], R]) -> None:
        if not self._wait_for_slot(job):
            job.update(
                status=STOPPED, stage="done", message="", reason="Stopped before it started.", finished=time.time()
            )
            return
        job.update(stage="starting", message="", started=time.time())
        try:
            with TRACING.inside():  # the last tracing work to end frees what the traces left
                job.result = work(job)
        except Exception as err:  # the job's error must reach the UI, not kill the process
            job.exception = err
            # tlcore's own errors are written for people; anything else needs its type to make sense.
            error = str(err) if type(err).__module__.startswith("tlcore.") else f"{type(err).__name__}: {err}"
            job.update(status=FAILED, stage="done", error=error, finished=time.time())
            return
        finally:
            self._release_slot(job)
        snap = job.snapshot()
        if snap.status == RUNNING:
            job.update(status=COMPLETED, stage="done", finished=time.time())

    def get(self, job_id: str | None, actor: Actor) -> Job | None:
        """The job with this id, if `actor` may follow and stop it (None for another's job, as for none)."""
        job = self._jobs.get(job_id) if job_id else None
        return job if job is not None and actor.may_use(job._state.owner) else None

    def queue(self) -> list[Job]:
        """The jobs waiting for a slot, first come first served (the teacher's view of the queue)."""
        with self._slots:
            waiting = list(self._waiting)
        return [job for job_id in waiting if (job := self._jobs.get(job_id)) is not None]

    def running_for(self, owner: str, kind: str | None = None) -> Job | None:
        """The owner's running job (of this kind, when given), if any."""
        return next((j for j in self.running() if j._state.owner == owner and kind in (None, j._state.kind)), None)

    def running(self) -> list[Job]:
        """The jobs running or waiting now (read under the lock: other sessions add and drop jobs meanwhile)."""
        with self._lock:
            return [j for j in self._jobs.values() if j.running]

    def _forget_finished(self, owner: str, keep_others: int) -> None:
        """Drop the owner's finished jobs, and other owners' beyond the newest `keep_others` (caller holds the lock).

        Sessions that never come back would otherwise keep their last job
        (and a model held in memory after a failed save) for ever.
        """
        finished = sorted((j for j in self._jobs.values() if not j.running), key=lambda j: j._state.started)
        mine = [j for j in finished if j._state.owner == owner]
        others = [j for j in finished if j._state.owner != owner]
        for job in mine + others[: max(0, len(others) - keep_others)]:
            del self._jobs[job.id]


JOBS = JobRegistry()


def wait(job: Job[R]) -> R:
    """Wait for a job to end and return its result; Ctrl-C stops it (within one batch) and waits on.

    Raises:
        What the job raised (the command line turns it into its message and exit code), or NotStarted
        when it was stopped before a slot was free.
    """
    on_main = threading.current_thread() is threading.main_thread()  # only the main thread may take signals
    previous = signal.signal(signal.SIGINT, lambda *_: job.stop()) if on_main else None
    try:
        while job.thread is not None and job.thread.is_alive():
            job.thread.join(timeout=0.2)
    finally:
        if on_main:
            signal.signal(signal.SIGINT, previous)
    if job.exception is not None:
        raise job.exception
    if job.result is None:
        raise NotStarted(job.snapshot().reason or "The job ended without a result.")
    return job.result
