"""Background training jobs: a thread per job, a thread-safe progress snapshot, a registry.

The UI never trains in its own thread: it starts a job here, keeps the job's
id, and polls `job.snapshot()`. The registry is process-wide, so a reloaded
browser tab (a new UI session) finds a running job again by its id. The job
thread never touches any UI library.

Jobs of different owners (browser sessions) queue for a limited number of
training slots (TLLAB_MAX_JOBS, default 1): on a small shared machine two
VGG16 runs side by side each take twice as long and need twice the memory,
so the second waits, first come first served, and starts by itself.
"""

from __future__ import annotations

import copy
import gc
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tlcore.data import TRAIN, VALIDATION
from tlcore.progress import BatchEnd, EpochEnd, FeaturesReused, PhaseStart, StepProgress
from tlcore.records import COMPLETED, FAILED, RUNNING, STOPPED, History
from tlcore.sweep import DEFAULT_POINTS, SweepPointStart, new_sweep_id, plan

QUEUED = "queued"  # a stage: the job is running but waits for a free slot
MAX_JOBS_ENV = "TLLAB_MAX_JOBS"
FINISHED_JOBS_KEPT = 20  # other sessions' finished jobs, for their reloaded tabs


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
        """Time left from the pace of the epochs so far (None until there is one)."""
        per_epoch = History.of(self.history).mean_epoch_seconds
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
    ):
        self.id = secrets.token_hex(6)
        # What the job was started with (a TrainConfig for training and sweeps): a reloaded
        # page describes the job from these, not from its own session's current settings.
        self.config = config
        self.dataset_root, self.train_images, self.validation_images = dataset
        self.stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._state = Snapshot(job_id=self.id, owner=owner, kind=kind, epochs_total=epochs_total)
        self.thread: threading.Thread | None = None
        self.result: Any = None  # the job function's return value, once done
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
                s.stage = "train" if event.route != "cached" else "extract"
            elif isinstance(event, FeaturesReused):
                s.features_reused = {**s.features_reused, event.phase: event.created}
            elif isinstance(event, BatchEnd):
                s.stage, s.epoch, s.batch, s.batches = "train", event.epoch, event.batch, event.batches
            elif isinstance(event, EpochEnd):
                s.history = s.history + [dict(event.row)]


def _max_jobs_from_env() -> int:
    try:
        return max(1, int(os.environ.get(MAX_JOBS_ENV, "1")))
    except ValueError:
        return 1


class JobRegistry:
    """Process-wide jobs by id. One running job per owner (a UI session or user).

    At most `max_active` jobs train at once; later ones wait in order (stage
    "queued", with their place in the message) and start by themselves.
    """

    def __init__(self, max_active: int | None = None) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.max_active = max_active or _max_jobs_from_env()
        self._slots = threading.Condition()
        self._waiting: list[str] = []  # job ids, first come first served
        self._active: set[str] = set()

    def start(
        self,
        owner: str,
        kind: str,
        work: Callable[[Job], Any],
        epochs_total: int = 0,
        config: Any = None,
        dataset: tuple[str, int, int] = ("", 0, 0),
    ) -> Job:
        """Run work(job) in a daemon thread. Raises JobBusy if owner has a job running.

        The owner's earlier finished jobs are forgotten, so their models can be freed.
        """
        with self._lock:
            busy = self.running_for(owner)
            if busy is not None:
                raise JobBusy(
                    f"A {busy.snapshot().kind} job is already running (started "
                    f"{time.time() - busy.snapshot().started:.0f} s ago). Stop it or wait for it to finish."
                )
            self._forget_finished(owner, keep_others=FINISHED_JOBS_KEPT)
            job = Job(owner, kind, epochs_total, config, dataset)
            self._jobs[job.id] = job
            with self._slots:
                self._waiting.append(job.id)
            job.thread = threading.Thread(target=self._run, args=(job, work), name=f"tlcore-job-{job.id}", daemon=True)
            job.thread.start()
        return job

    def _wait_for_slot(self, job: Job) -> bool:
        """Block until the job may start (True) or was stopped while waiting (False)."""
        with self._slots:
            while True:
                if job.stop_flag.is_set():
                    self._waiting.remove(job.id)
                    self._slots.notify_all()
                    return False
                place = self._waiting.index(job.id)
                if place == 0 and len(self._active) < self.max_active:
                    self._waiting.pop(0)
                    self._active.add(job.id)
                    self._slots.notify_all()
                    return True
                ahead = len(self._active) + place
                job.update(
                    stage=QUEUED,
                    message=(
                        f"Waiting for {ahead} run{'s' if ahead != 1 else ''} from other sessions to finish: "
                        f"this machine trains {self.max_active} at a time. It starts by itself."
                    ),
                )
                self._slots.wait(timeout=0.5)

    def _release_slot(self, job: Job) -> None:
        with self._slots:
            self._active.discard(job.id)
            self.forget_traced_gradients(alone=job)
            self._slots.notify_all()

    def forget_traced_gradients(self, alone: Job) -> int:
        """Free what finished training steps left in TensorFlow, unless another job may be tracing."""
        with self._slots:
            if self._active - {alone.id}:
                return 0  # another job may be mid-trace: it needs its entry until its gradients exist
            return forget_traced_gradients()

    def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
        if not self._wait_for_slot(job):
            job.update(
                status=STOPPED, stage="done", message="", reason="Stopped before it started.", finished=time.time()
            )
            return
        job.update(stage="starting", message="", started=time.time())
        try:
            job.result = work(job)
        except Exception as err:  # the job's error must reach the UI, not kill the process
            # tlcore's own errors are written for people; anything else needs its type to make sense.
            error = str(err) if type(err).__module__.startswith("tlcore.") else f"{type(err).__name__}: {err}"
            job.update(status=FAILED, stage="done", error=error, finished=time.time())
            return
        finally:
            self._release_slot(job)
        snap = job.snapshot()
        if snap.status == RUNNING:
            job.update(status=COMPLETED, stage="done", finished=time.time())

    def get(self, job_id: str | None) -> Job | None:
        return self._jobs.get(job_id) if job_id else None

    def running_for(self, owner: str, kind: str | None = None) -> Job | None:
        """The owner's running job (of this kind, when given), if any."""
        return next(
            (j for j in self._jobs.values() if j.running and j._state.owner == owner and kind in (None, j._state.kind)),
            None,
        )

    def running(self) -> list[Job]:
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


def forget_traced_gradients() -> int:
    """Drop the custom gradients TensorFlow registered while tracing; returns how many.

    TensorFlow 2.21 keeps every custom gradient registered in graph mode for
    ever (tensorflow/tensorflow#97697). Keras' optimizer registers one in each
    trace of a training step, and it holds that trace's graph, which captures
    every variable of the model: each finished run would keep its whole model
    in memory (about 100 MB per tiny run, measured by bench/repeated_runs.py).
    An entry is needed only while its trace computes its gradients.
    """
    ops = sys.modules.get("tensorflow.python.framework.ops")  # no TensorFlow loaded: nothing to free
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if not isinstance(registry, dict):
        return 0
    stale = [name for name in list(registry) if name.startswith("CustomGradient-")]
    for name in stale:
        registry.pop(name, None)
    # Now the run's model is only garbage in reference cycles (layers, traced functions), which only a full
    # collection frees; with TensorFlow's millions of long-lived objects Python hardly ever runs one by itself,
    # and Streamlit's after each script run is off (.streamlit/config.toml). Without this every run in the
    # app kept about 200 MB (bench/classroom_load.py).
    gc.collect()
    return len(stale)


def _dataset_of(info: Any) -> tuple[str, int, int]:
    """(folder, training images, validation images) of a scanned dataset, for describing its job."""
    return str(info.root), info.num_images(TRAIN), info.num_images(VALIDATION)


def start_training(owner: str, config: Any, info: Any, store: Any = None, registry: JobRegistry = JOBS) -> Job:
    """Start tlcore.tf.training.train_and_record in the background; returns the job at once."""

    def work(job: Job) -> Any:
        # The boundary: the job's thread is where training starts, so the TensorFlow side is imported here.
        from tlcore.tf.model import model_to_bytes
        from tlcore.tf.training import train_and_record

        result, run = train_and_record(
            config,
            info,
            store,
            progress=job.on_progress,
            stop=job.stop_flag,
            on_run_created=lambda created: job.update(run_dir=str(created.run_dir)),
        )
        if result.save_error:
            job.model_bytes = model_to_bytes(result.model)
        # The registry outlives the run: holding the live model here would keep
        # every model a session ever trained in memory.
        result.model = None
        job.update(
            status=result.status,
            reason=result.reason or result.save_error,
            final=result.final,
            run_dir=str(run.run_dir),
            stage="done",
            finished=time.time(),
            extra={
                "paths": result.paths,
                "extract_seconds": result.extract_seconds,
                "save_error": result.save_error,
                "class_names": result.class_names,
            },
        )
        return result

    return registry.start(
        owner, "training", work, epochs_total=config.total_epochs(), config=config, dataset=_dataset_of(info)
    )


def start_sweep(
    owner: str,
    base_config: Any,
    info: Any,
    points: Any = DEFAULT_POINTS,
    scratch: bool = True,
    store: Any = None,
    registry: JobRegistry = JOBS,
) -> Job:
    """Start tlcore.tf.sweep.run_sweep in the background; returns the job at once.

    A sweep is its owner's one job: starting it while a training job (or
    another sweep) runs raises JobBusy. Bad points raise ValueError at once. The snapshot follows the point being
    trained (its history, epochs, batches); `extra` holds the sweep:
    {"sweep_id", "total_points", "current": {index, label, freeze_at} or None,
    "points": [finished points as dicts], "skipped": [labels]}.
    """
    total = len(plan(base_config, points, scratch))

    def work(job: Job) -> Any:
        from tlcore.tf.sweep import run_sweep  # the boundary: the job's thread starts TensorFlow work

        sweep_id = new_sweep_id()
        finished: list[dict[str, Any]] = []
        job.update(extra={"sweep_id": sweep_id, "total_points": total, "current": None, "points": [], "skipped": []})

        def extra(**changes: Any) -> dict[str, Any]:
            return {**job.snapshot().extra, **changes}

        def progress(event: object) -> None:
            if isinstance(event, SweepPointStart):
                registry.forget_traced_gradients(alone=job)  # the last point's model can go
                job.update(
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
                    extra=extra(current={"index": event.index, "label": event.label, "freeze_at": event.freeze_at}),
                )
            else:
                job.on_progress(event)

        def on_point(point: Any) -> None:
            finished.append(point.to_dict())
            job.update(extra=extra(points=list(finished)))

        result = run_sweep(
            base_config,
            info,
            points,
            scratch,
            store,
            progress=progress,
            stop=job.stop_flag,
            sweep_id=sweep_id,
            on_point=on_point,
            on_run_created=lambda created: job.update(run_dir=str(created.run_dir)),
        )
        job.update(
            status=result.status,
            stage="done",
            finished=time.time(),
            reason="" if result.status == COMPLETED else f"stopped; skipped {', '.join(result.skipped) or 'nothing'}",
            extra=extra(
                current=None,
                points=list(finished),
                skipped=list(result.skipped),
                seconds=result.seconds,
                decode_seconds=result.decode_seconds,
            ),
        )
        return result

    return registry.start(
        owner, "sweep", work, epochs_total=base_config.epochs, config=base_config, dataset=_dataset_of(info)
    )
