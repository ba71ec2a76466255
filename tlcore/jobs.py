"""Background training jobs: a thread per job, a thread-safe progress snapshot, a registry.

The UI never trains in its own thread: it starts a job here, keeps the job's
id, and polls `job.snapshot()`. The registry is process-wide, so a reloaded
browser tab (a new UI session) finds a running job again by its id. The job
thread never touches any UI library.

Jobs of different owners (browser sessions) queue, first come first served,
for the slots of the backend that runs them (tlcore.cluster): threads of this
process (TLLAB_MAX_JOBS, default 1: on a small shared machine two VGG16 runs
side by side each take twice as long and need twice the memory), or the
workers of a Ray cluster (TLLAB_RAY_ADDRESS). A waiting job shows its place
and starts by itself. The same job functions (`train_job`, `sweep_job`, ...)
run on either backend and report the same events.
"""

from __future__ import annotations

import copy
import math
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlcore import background
from tlcore.access import Actor
from tlcore.cluster import Backend, ClusterError, WorkerLost, backend_from_env
from tlcore.data import TRAIN, VALIDATION
from tlcore.estimate import human_seconds
from tlcore.progress import (
    BatchEnd,
    EpochEnd,
    FeaturesReused,
    PhaseStart,
    Planned,
    ProgressFn,
    RunCreated,
    StepProgress,
    StopFlag,
    WorkerStarted,
)
from tlcore.records import COMPLETED, FAILED, INTERRUPTED, RUNNING, STOPPED, History
from tlcore.runs import RunStore, mark_interrupted
from tlcore.schedule import Schedule
from tlcore.sweep import DEFAULT_POINTS, SweepPoint, SweepPointStart, SweepResult, new_sweep_id, plan
from tlcore.traced import TRACING

QUEUED = "queued"  # a stage: the job is running but waits for a free slot
FINISHED_JOBS_KEPT = 20  # other sessions' finished jobs, for their reloaded tabs
WAITS_FRESH_S = 2.0  # how long the queue's estimated waits are reused before they are worked out again


class JobBusy(Exception):
    """The owner already has a job running; the message says which."""


@dataclass
class Snapshot:
    """What a UI draws: a consistent copy of a job's progress at one moment."""

    job_id: str
    owner: str
    kind: str
    status: str = RUNNING
    stage: str = "starting"  # starting | decode | extract | train | done
    message: str = ""
    phase: int = 0
    route: str = ""  # cached | end_to_end
    route_reason: str = ""
    epoch: int = 0
    epochs_total: int = 0
    batch: int = 0
    batches: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    run_dir: str = ""
    reason: str = ""
    error: str = ""
    final: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # Each stage's own progress, in the order the stages began, never moving back:
    # "decode", "extract" (phase 1's frozen features), "extract-2" (phase 2's).
    stages: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Phases whose frozen features came from the feature store: {phase: when they were computed}.
    features_reused: dict[int, str] = field(default_factory=dict)
    worker: str = ""  # "host (pid N)" when a cluster's worker runs it; "" in this process
    device: str = ""  # what trains it, in words ("CPU: AMD EPYC ...", "GPU: NVIDIA H200 ...")
    schedule: Schedule | None = None  # how long it trains on its data, once training has planned it
    class_names: tuple[str, ...] = ()  # and its classes and validation images per class (tlcore.baselines)
    validation_per_class: tuple[int, ...] = ()
    batch_loss: float = math.nan  # the running epoch's loss and accuracy so far (the curves' last stretch)
    batch_accuracy: float = math.nan
    kept_epoch: int | None = None  # once done: the epoch early stopping restored (its metrics are `final`)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def done(self) -> bool:
        return self.status != RUNNING

    def fraction(self) -> float:
        """Progress through the training epochs, 0..1 (batches included)."""
        if not self.epochs_total:
            return 0.0
        within = self.batch / self.batches if self.batches else 0.0
        return min(1.0, (max(self.epoch - 1, 0) + within) / self.epochs_total)

    def seconds_left(self) -> float | None:
        """Time left from the pace of this phase's epochs so far (None until there is one: a phase that trains
        convolutions runs at another pace than the head before it)."""
        phase = self.phase or max((r["phase"] for r in self.history), default=0)
        per_epoch = History.of([r for r in self.history if r["phase"] == phase]).mean_epoch_seconds
        if self.done or per_epoch is None:
            return None
        remaining = self.epochs_total - self.epoch + (1 - self.batch / self.batches if self.batches else 1)
        return max(0.0, per_epoch * max(remaining, 0))


class Job:
    """One background job. `progress` is fed by the job thread; UIs call `snapshot()`."""

    def __init__(
        self,
        owner: str,
        kind: str,
        epochs_total: int = 0,
        config: Any = None,
        dataset: tuple[str, int, int] = ("", 0, 0),
        listener: ProgressFn | None = None,
    ):
        self.id = secrets.token_hex(6)
        # Gets every event the snapshot is built from, as it comes (the command line prints them).
        self.listener = listener
        # What the job was started with (a TrainConfig for training and sweeps): a reloaded
        # page describes the job from these, not from its own session's current settings.
        self.config = config
        self.dataset_root, self.train_images, self.validation_images = dataset
        self.stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._state = Snapshot(job_id=self.id, owner=owner, kind=kind, epochs_total=epochs_total)
        self.thread: threading.Thread | None = None
        self.result: Any = None  # the job function's return value, once done
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

    def stop(self) -> None:
        self.stop_flag.set()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def on_progress(self, event: object) -> None:
        """Turn a training progress event (tlcore.progress) into snapshot fields."""
        with self._lock:
            s = self._state
            if isinstance(event, StepProgress):
                s.stage = event.stage
                key = event.stage if event.stage == "decode" or s.phase <= 1 else f"{event.stage}-{s.phase}"
                done_before, _ = s.stages.get(key, (0, event.total))
                s.stages = {**s.stages, key: (max(done_before, event.done), event.total)}
            elif isinstance(event, PhaseStart):
                s.phase, s.route, s.route_reason = event.phase, event.route, event.route_reason
                if event.phase > 1:  # the phase before may have ended early: count from the epochs it ran
                    s.epochs_total = len(s.history) + event.epochs
                s.stage = "train" if event.route != "cached" else "extract"
            elif isinstance(event, FeaturesReused):
                s.features_reused = {**s.features_reused, event.phase: event.created}
            elif isinstance(event, Planned):
                s.schedule, s.epochs_total = event.schedule, event.schedule.total_epochs
                s.class_names, s.validation_per_class = event.class_names, event.validation_per_class
            elif isinstance(event, BatchEnd):
                s.stage, s.epoch, s.batch, s.batches = "train", event.epoch, event.batch, event.batches
                s.batch_loss, s.batch_accuracy = event.loss, event.accuracy
            elif isinstance(event, EpochEnd):
                s.history = s.history + [dict(event.row)]
            elif isinstance(event, RunCreated):
                s.run_dir, s.device = event.run_dir, event.device
            elif isinstance(event, WorkerStarted):
                s.worker = f"{event.host} (pid {event.pid})"
        if self.listener is not None:
            self.listener(event)


class JobRegistry:
    """Process-wide jobs by id. One running job per owner (a UI session or user).

    At most `max_active` jobs run at once (the backend's slots unless given); later ones wait in
    order (stage "queued", with their place in the message) and start by themselves.
    """

    def __init__(self, max_active: int | None = None, backend: Backend | None = None) -> None:
        self._jobs: dict[str, Job] = {}
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
        try:
            self.backend.connect(root)
        except ClusterError:
            pass  # kept as the backend's problem() and shown where jobs are started

    def start(
        self,
        owner: str,
        kind: str,
        work: Callable[[Job], Any],
        epochs_total: int = 0,
        config: Any = None,
        dataset: tuple[str, int, int] = ("", 0, 0),
        listener: ProgressFn | None = None,
    ) -> Job:
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
            job = Job(owner, kind, epochs_total, config, dataset, listener)
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

    def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
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


def _dataset_of(info: Any) -> tuple[str, int, int]:
    """(folder, training images, validation images) of a scanned dataset, for describing its job."""
    return str(info.root), info.num_images(TRAIN), info.num_images(VALIDATION)


# --- what a job runs: plain functions, the same in a thread or on a cluster's worker ----------------


@dataclass
class TrainingOutcome:
    """What a training job hands back wherever it ran: its result without the live model."""

    run_dir: str
    status: str
    reason: str
    class_names: list[str]
    history: list[dict[str, Any]]
    final: dict[str, float]
    paths: list[str]
    features: list[dict[str, Any]]
    seconds: float
    extract_seconds: float
    save_error: str
    model_bytes: bytes | None = None  # the trained model, only when the run store could not save it
    kept_epoch: int | None = None  # early stopping restored this epoch's weights (TrainResult.kept_epoch)


def _created(report: ProgressFn) -> Callable[[Any], None]:
    """on_run_created for a job function: the new run's folder and device, as an event."""
    return lambda run: report(RunCreated(str(run.run_dir), run.record.device or ""))


def train_job(config: Any, info: Any, store: RunStore | None, *, report: ProgressFn, stop: StopFlag) -> TrainingOutcome:
    """Train and record one run (tlcore.tf.training.train_and_record); its folder is announced by RunCreated."""
    # The boundary: the job's thread or worker is where training starts, so the TensorFlow side is imported here.
    from tlcore.tf.model import model_to_bytes
    from tlcore.tf.training import train_and_record

    result, run = train_and_record(config, info, store, progress=report, stop=stop, on_run_created=_created(report))
    return TrainingOutcome(
        run_dir=str(run.run_dir),
        status=result.status,
        reason=result.reason,
        class_names=list(result.class_names),
        history=list(result.history),
        final=result.final,
        paths=list(result.paths),
        features=list(result.features),
        seconds=result.seconds,
        extract_seconds=result.extract_seconds,
        save_error=result.save_error,
        model_bytes=model_to_bytes(result.model, result.class_names) if result.save_error else None,
        kept_epoch=result.kept_epoch,
    )


def sweep_job(
    base_config: Any,
    info: Any,
    points: Any,
    scratch: bool,
    store: RunStore | None,
    sweep_id: str,
    *,
    report: ProgressFn,
    stop: StopFlag,
) -> SweepResult:
    """A whole sweep, point after point (tlcore.tf.sweep.run_sweep); each finished point reported as SweepPointDone."""
    from tlcore.tf.sweep import run_sweep  # the boundary: the job's thread or worker starts TensorFlow work

    return run_sweep(
        base_config,
        info,
        points,
        scratch,
        store,
        progress=report,
        stop=stop,
        sweep_id=sweep_id,
        on_point=lambda point: report(SweepPointDone(point)),
        on_run_created=_created(report),
    )


def sweep_prepare_job(
    base_config: Any,
    info: Any,
    points: Any,
    scratch: bool,
    store: RunStore | None,
    *,
    report: ProgressFn,
    stop: StopFlag,
) -> SweepResult:
    """What a sweep's points share, done once before they spread over the workers: decoding, the shared features."""
    from tlcore.tf.sweep import prepare_sweep

    return prepare_sweep(base_config, info, points, scratch, store, report, stop)[2]


def sweep_point_job(
    label: str, config: Any, info: Any, store: RunStore | None, sweep_id: str, *, report: ProgressFn, stop: StopFlag
) -> SweepPoint:
    """One point of a sweep on its own (it decodes the images itself; its features come from the store)."""
    from tlcore.tf.sweep import run_point

    return run_point(label, config, info, store or RunStore(), None, sweep_id, report, stop, _created(report))


@dataclass(frozen=True)
class SweepPointDone:
    """A point of a sweep finished (or stopped): its row of the sweep's table."""

    point: SweepPoint


def wait(job: Job) -> Any:
    """Wait for a job to end and return its result; Ctrl-C stops it (within one batch) and waits on.

    Raises:
        What the job raised (the command line turns it into its message and exit code).
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
    return job.result


def _absolute(store: RunStore | None) -> RunStore:
    """This process's run store by its absolute path: a worker elsewhere has another working folder and environment."""
    store = store or RunStore()
    return RunStore(store.root.resolve(), store.actor)  # the runs it makes keep their owner


def _interrupted(job: Job, store: RunStore | None, err: WorkerLost) -> str:
    """Mark the lost worker's run interrupted in the run store; the message the session shows."""
    snap = job.snapshot()
    epochs = sum(1 for row in snap.history if not row.get("partial"))
    if snap.run_dir:
        mark_interrupted(Path(snap.run_dir), str(err))
    kept = f" The run keeps its {epochs} finished epoch{'s' if epochs != 1 else ''} and reads {INTERRUPTED}."
    return f"{err}{kept if snap.run_dir else ''}"


def start_training(
    owner: str,
    config: Any,
    info: Any,
    store: Any = None,
    registry: JobRegistry = JOBS,
    listener: ProgressFn | None = None,
) -> Job:
    """Start a training job (train_job) on the registry's backend; returns the job at once.

    `listener` gets each progress event as the job's snapshot takes it in.
    """
    store = _absolute(store)

    def work(job: Job) -> Any:
        registry.backend.connect(store.root)  # checks the run store is shared, once per connection
        try:
            outcome: TrainingOutcome = registry.backend.call(
                train_job, (config, info, store), job.on_progress, job.stop_flag
            )
        except WorkerLost as err:
            raise WorkerLost(_interrupted(job, store, err)) from None
        # The registry outlives the run: only a model that could not be saved is kept, as bytes.
        job.model_bytes, outcome.model_bytes = outcome.model_bytes, None
        job.update(
            status=outcome.status,
            reason=outcome.reason or outcome.save_error,
            final=outcome.final,
            kept_epoch=outcome.kept_epoch,
            run_dir=outcome.run_dir,
            stage="done",
            finished=time.time(),
            extra={
                "paths": outcome.paths,
                "extract_seconds": outcome.extract_seconds,
                "save_error": outcome.save_error,
                "class_names": outcome.class_names,
            },
        )
        return outcome

    return registry.start(
        owner,
        "training",
        work,
        epochs_total=config.total_epochs(),
        config=config,
        dataset=_dataset_of(info),
        listener=listener,
    )


class _SweepView:
    """The sweep's snapshot follows one point at a time, as if its points ran one after another.

    Points running side by side (on a cluster) report at once; the snapshot shows the
    first of them and keeps the others' events, replaying them when it moves on.
    """

    def __init__(self, job: Job, registry: JobRegistry) -> None:
        self.job, self.registry = job, registry
        self._lock = threading.Lock()
        self._followed: int | None = None
        self._pending: dict[int, list[object]] = {}  # running points not followed: their events so far
        self.finished: list[SweepPoint] = []

    def extra(self, **changes: Any) -> dict[str, Any]:
        return {**self.job.snapshot().extra, **changes}

    def report(self, index: int, event: object) -> None:
        """An event of point `index` (0: the work before any point, decoding and the shared features)."""
        with self._lock:
            if index == 0:
                self._apply(event)
                return
            if isinstance(event, SweepPointStart) and self._followed is None:
                self._followed = index
            if index == self._followed:
                self._apply(event)
            else:
                self._pending.setdefault(index, []).append(event)

    def done(self, index: int, point: SweepPoint) -> None:
        with self._lock:
            if self.job.listener is not None:
                self.job.listener(SweepPointDone(point))
            self.finished.append(point)
            self.job.update(extra=self.extra(points=[p.to_dict() for p in self.finished]))
            self._pending.pop(index, None)
            if index == self._followed:
                self._followed = min(self._pending, default=None)
                for event in self._pending.pop(self._followed, []) if self._followed is not None else []:
                    self._apply(event)

    def _apply(self, event: object) -> None:
        if isinstance(event, SweepPointStart):
            TRACING.between()  # the last point's model can go, unless other work is tracing
            self.job.update(
                stage="starting",
                message=f"point {event.index}/{event.total}: {event.label}",
                phase=0,
                route="",
                route_reason="",
                epoch=0,
                batch=0,
                batches=0,
                history=[],
                stages={},
                features_reused={},
                schedule=None,
                extra=self.extra(current={"index": event.index, "label": event.label, "freeze_at": event.freeze_at}),
            )
            if self.job.listener is not None:
                self.job.listener(event)
        elif isinstance(event, SweepPointDone):
            pass  # the caller records finished points (done)
        else:
            self.job.on_progress(event)


def start_sweep(
    owner: str,
    base_config: Any,
    info: Any,
    points: Any = DEFAULT_POINTS,
    scratch: bool = True,
    store: Any = None,
    registry: JobRegistry = JOBS,
    listener: ProgressFn | None = None,
) -> Job:
    """Start a freeze sweep on the registry's backend; returns the job at once.

    In this process the points run one after another (tlcore.tf.sweep.run_sweep); on a cluster
    the shared work is done once, then the points run side by side, each on a worker, as slots
    are free and nobody else waits. A sweep is its owner's one job: starting it while a training
    job (or another sweep) runs raises JobBusy. Bad points raise ValueError at once. The
    snapshot follows the point being trained (its history, epochs, batches); `extra` holds the
    sweep: {"sweep_id", "total_points", "current": {index, label, freeze_at} or None,
    "points": [finished points as dicts], "skipped": [labels]}.
    """
    planned = plan(base_config, points, scratch)
    store = _absolute(store)

    def work(job: Job) -> Any:
        registry.backend.connect(store.root)  # checks the run store is shared, once per connection
        sweep_id = new_sweep_id()
        view = _SweepView(job, registry)
        job.update(
            extra={"sweep_id": sweep_id, "total_points": len(planned), "current": None, "points": [], "skipped": []}
        )
        try:
            request = _SweepRequest(base_config, info, points, scratch, store, sweep_id)
            run = _sweep_side_by_side if registry.backend.parallel else _sweep_in_turn
            result = run(view, request)
        except WorkerLost as err:
            raise WorkerLost(_interrupted(job, store, err)) from None
        job.update(
            status=result.status,
            stage="done",
            finished=time.time(),
            reason="" if result.status == COMPLETED else f"stopped; skipped {', '.join(result.skipped) or 'nothing'}",
            extra=view.extra(
                current=None,
                points=[p.to_dict() for p in result.points],
                skipped=list(result.skipped),
                seconds=result.seconds,
                decode_seconds=result.decode_seconds,
            ),
        )
        return result

    return registry.start(
        owner,
        "sweep",
        work,
        epochs_total=base_config.epochs,
        config=base_config,
        dataset=_dataset_of(info),
        listener=listener,
    )


@dataclass(frozen=True)
class _SweepRequest:
    """What a sweep job runs: the arguments of its job functions, passed on together."""

    base_config: Any
    info: Any
    points: Any
    scratch: bool
    store: RunStore
    sweep_id: str


def _sweep_in_turn(view: _SweepView, request: _SweepRequest) -> SweepResult:
    """The whole sweep as one job: point after point."""
    r = request
    index = [0]

    def report(event: object) -> None:
        if isinstance(event, SweepPointStart):
            index[0] = event.index
        if isinstance(event, SweepPointDone):
            view.done(index[0], event.point)
        else:
            view.report(index[0], event)

    result: SweepResult = view.registry.backend.call(
        sweep_job, (r.base_config, r.info, r.points, r.scratch, r.store, r.sweep_id), report, view.job.stop_flag
    )
    return result


def _sweep_side_by_side(view: _SweepView, request: _SweepRequest) -> SweepResult:
    """The shared work once (decoding, the shared features), then each point as its own task.

    The job's own slot runs one point; more run at once only on slots that are free while
    nobody waits, so a sweep never jumps the queue of other sessions' jobs.
    """
    job, registry, r = view.job, view.registry, request
    started = time.perf_counter()
    planned = plan(r.base_config, r.points, r.scratch)
    result: SweepResult = registry.backend.call(
        sweep_prepare_job, (r.base_config, r.info, r.points, r.scratch, r.store), job.on_progress, job.stop_flag
    )
    result.sweep_id = r.sweep_id
    outcomes: dict[int, SweepPoint | BaseException] = {}
    running: dict[int, threading.Thread] = {}
    waiting = list(enumerate(planned, start=1))
    done = threading.Condition()

    def run(index: int, label: str, config: Any) -> None:
        view.report(index, SweepPointStart(index, len(planned), label, config.freeze_at, config.weights))
        try:
            with TRACING.inside():  # points side by side: one's start must not free another's traces
                point = registry.backend.call(
                    sweep_point_job,
                    (label, config, r.info, r.store, r.sweep_id),
                    lambda event: view.report(index, event),
                    job.stop_flag,
                )
            view.done(index, point)
            outcome: SweepPoint | BaseException = point
        except BaseException as err:  # noqa: BLE001 - handed to the sweep's thread, which raises it
            outcome = err
        with done:
            outcomes[index] = outcome
            done.notify_all()

    with done:
        while waiting or running:
            stopped = job.stop_flag.is_set() or any(
                isinstance(o, BaseException) or o.status == STOPPED for o in outcomes.values()
            )
            if not stopped:
                while waiting and (not running or registry.borrow_slot(job)):
                    index, (label, config) = waiting.pop(0)
                    running[index] = threading.Thread(target=run, args=(index, label, config), daemon=True)
                    running[index].start()
            for index in [i for i in running if i in outcomes]:
                running.pop(index).join()
                if running:  # two or more were running: all but the job's own slot were borrowed
                    registry.return_slot(job)
            if stopped and not running:
                break
            done.wait(timeout=0.5)
    errors = [o for o in outcomes.values() if isinstance(o, BaseException)]
    if errors:
        raise errors[0]
    result.points = [o for _, o in sorted(outcomes.items()) if isinstance(o, SweepPoint)]
    result.skipped = [label for _, (label, _) in waiting]
    result.status = STOPPED if result.skipped or any(p.status == STOPPED for p in result.points) else COMPLETED
    result.seconds = time.perf_counter() - started
    return result
