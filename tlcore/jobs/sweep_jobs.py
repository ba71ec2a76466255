"""Sweep jobs: the freeze sweep's job functions, and `start_sweep`, which runs its points in turn or side by side.

In this process the points run one after another in one job function (`sweep_job`); on a cluster the shared
work runs once (`sweep_prepare_job`), then each point is a task of its own (`sweep_point_job`). Each running
point keeps its own progress (`_Points`); the job's snapshot shows the first of them, as if they ran in turn.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tlcore.backend import WorkerLost
from tlcore.config import TrainConfig
from tlcore.data import DatasetInfo
from tlcore.jobs.registry import JOBS, Job, JobRegistry
from tlcore.jobs.snapshot import Snapshot, SweepPointDone, SweepProgress, apply_event, point_start
from tlcore.jobs.spread import spread
from tlcore.jobs.training_jobs import absolute_store, announce_run, dataset_of, interrupted_message
from tlcore.process_memory import TRACING
from tlcore.progress import ProgressFn, StopFlag
from tlcore.records import COMPLETED, STOPPED
from tlcore.runs import RunStore
from tlcore.sweep import DEFAULT_POINTS, SweepPoint, SweepPointStart, SweepResult, new_sweep_id, plan


def sweep_job(
    base_config: TrainConfig,
    info: DatasetInfo,
    points: Sequence[int],
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
        on_run_created=announce_run(report),
    )


def sweep_prepare_job(
    base_config: TrainConfig,
    info: DatasetInfo,
    points: Sequence[int],
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
    label: str,
    config: TrainConfig,
    info: DatasetInfo,
    store: RunStore | None,
    sweep_id: str,
    *,
    report: ProgressFn,
    stop: StopFlag,
) -> SweepPoint:
    """One point of a sweep on its own (it decodes the images itself; its features come from the store)."""
    from tlcore.tf.sweep import run_point

    return run_point(label, config, info, store or RunStore(), None, sweep_id, report, stop, announce_run(report))


class _Points:
    """A sweep's running points, each with its own progress; the job's snapshot shows the first of them.

    Points side by side (on a cluster) report at once. The point shown feeds the job's snapshot and its
    listener; each other point's events go straight into a snapshot of its own, which the job shows as it
    stands once the point before it ends. The listener then gets that point's start and its events from there on.
    """

    def __init__(self, job: Job[SweepResult], sweep: SweepProgress) -> None:
        self.job, self.sweep = job, sweep
        self._lock = threading.Lock()
        self._shown: int | None = None
        self._running: dict[int, tuple[SweepPointStart, Snapshot]] = {}  # each point's start and own progress
        self._publish()

    def report(self, index: int, event: object) -> None:
        """An event of point `index` (0: the work before any point, decoding and the shared features)."""
        with self._lock:
            if index == 0 or index == self._shown:
                self.job.on_progress(event)
            elif isinstance(event, SweepPointStart):
                progress = self.job.snapshot()
                point_start(progress, event)
                self._running[index] = (event, progress)
                if self._shown is None:
                    self._show(index)
            elif index in self._running:
                apply_event(self._running[index][1], event)

    def done(self, index: int, point: SweepPoint) -> None:
        """A point finished (or stopped): its row joins the table; the next running point is shown."""
        with self._lock:
            self.job.tell(SweepPointDone(point))
            self.sweep.points.append(point)
            self._running.pop(index, None)
            self._publish()
            if index == self._shown:
                self._shown = None
                if self._running:
                    self._show(min(self._running))

    def finish(self, result: SweepResult) -> None:
        """The sweep ended: its points in order, the skipped ones, its timings; the job is done."""
        with self._lock:
            self.sweep.current, self.sweep.points, self.sweep.skipped = None, list(result.points), list(result.skipped)
            self.sweep.seconds, self.sweep.decode_seconds = result.seconds, result.decode_seconds
            sweep = self._copy()
        skipped = ", ".join(result.skipped) or "nothing"
        with self.job.editing() as s:
            s.status, s.stage, s.finished, s.sweep = result.status, "done", time.time(), sweep
            s.reason = "" if result.status == COMPLETED else f"stopped; skipped {skipped}"

    def _show(self, index: int) -> None:
        start, progress = self._running[index]
        TRACING.between()  # the last point's model can go, unless other work is tracing
        self._shown, self.sweep.current = index, start
        self.job.show(progress)
        self._publish()
        self.job.tell(start)

    def _copy(self) -> SweepProgress:
        """The sweep for the job's snapshot: a copy, as the snapshot is read under the job's lock only."""
        return replace(self.sweep, points=list(self.sweep.points), skipped=list(self.sweep.skipped))

    def _publish(self) -> None:
        sweep = self._copy()
        with self.job.editing() as s:
            s.sweep = sweep


def start_sweep(
    owner: str,
    base_config: TrainConfig,
    info: DatasetInfo,
    points: Sequence[int] = DEFAULT_POINTS,
    scratch: bool = True,
    store: RunStore | None = None,
    registry: JobRegistry = JOBS,
    listener: ProgressFn | None = None,
) -> Job[SweepResult]:
    """Start a freeze sweep on the registry's backend; returns the job at once.

    In this process the points run one after another (tlcore.tf.sweep.run_sweep); on a cluster
    the shared work is done once, then the points run side by side, each on a worker, as slots
    are free and nobody else waits. A sweep is its owner's one job: starting it while a training
    job (or another sweep) runs raises JobBusy. Bad points raise ValueError at once. The
    snapshot follows the point being trained (its history, epochs, batches); `Snapshot.sweep`
    holds the sweep (SweepProgress: the point shown, the points finished, those skipped).
    """
    planned = plan(base_config, points, scratch)
    store = absolute_store(store)

    def work(job: Job[SweepResult]) -> SweepResult:
        registry.backend.connect(store.root)  # checks the run store is shared, once per connection
        sweep_id = new_sweep_id()
        view = _Points(job, SweepProgress(sweep_id, len(planned)))
        try:
            request = _SweepRequest(registry, base_config, info, points, scratch, store, sweep_id)
            run = _sweep_side_by_side if registry.backend.parallel else _sweep_in_turn
            result = run(view, request)
        except WorkerLost as err:
            raise WorkerLost(interrupted_message(job, err)) from None
        view.finish(result)
        return result

    return registry.start(
        owner,
        "sweep",
        work,
        epochs_total=base_config.epochs,
        config=base_config,
        dataset=dataset_of(info),
        listener=listener,
    )


@dataclass(frozen=True)
class _SweepRequest:
    """What a sweep job runs: the arguments of its job functions, passed on together, and where they run."""

    registry: JobRegistry
    base_config: TrainConfig
    info: DatasetInfo
    points: Sequence[int]
    scratch: bool
    store: RunStore
    sweep_id: str


def _sweep_in_turn(view: _Points, request: _SweepRequest) -> SweepResult:
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

    result: SweepResult = r.registry.backend.call(
        sweep_job, (r.base_config, r.info, r.points, r.scratch, r.store, r.sweep_id), report, view.job.stop_flag
    )
    return result


def _sweep_side_by_side(view: _Points, request: _SweepRequest) -> SweepResult:
    """The shared work once (decoding, the shared features), then each point as its own task (`spread`)."""
    job, r = view.job, request
    registry = r.registry
    started = time.perf_counter()
    planned = plan(r.base_config, r.points, r.scratch)
    result: SweepResult = registry.backend.call(
        sweep_prepare_job, (r.base_config, r.info, r.points, r.scratch, r.store), job.on_progress, job.stop_flag
    )
    result.sweep_id = r.sweep_id

    def point(index: int, label: str, config: TrainConfig) -> SweepPoint:
        view.report(index, SweepPointStart(index, len(planned), label, config.freeze_at, config.weights))
        done: SweepPoint = registry.backend.call(
            sweep_point_job,
            (label, config, r.info, r.store, r.sweep_id),
            lambda event: view.report(index, event),
            job.stop_flag,
        )
        view.done(index, done)
        return done

    outcomes, skipped = spread(
        registry,
        job,
        [functools.partial(point, index, label, config) for index, (label, config) in enumerate(planned, start=1)],
        halts=lambda p: p.status == STOPPED,
    )
    result.points = [outcomes[index] for index in sorted(outcomes)]
    result.skipped = [planned[index - 1][0] for index in skipped]
    result.status = STOPPED if result.skipped or any(p.status == STOPPED for p in result.points) else COMPLETED
    result.seconds = time.perf_counter() - started
    return result
