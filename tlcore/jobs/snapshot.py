"""What a UI draws of a job: its snapshot, and how training's progress events (tlcore.progress) change it.

A sweep's snapshot follows one point at a time (the fields a training run's events set) and carries the
sweep as a whole in `Snapshot.sweep`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from tlcore.history import History
from tlcore.progress import (
    BatchEnd,
    EpochEnd,
    FeaturesReused,
    PhaseStart,
    Planned,
    RunCreated,
    StepProgress,
    WorkerStarted,
)
from tlcore.records import RUNNING
from tlcore.schedule import Schedule
from tlcore.sweep import SweepPoint, SweepPointStart


@dataclass(frozen=True)
class SweepPointDone:
    """An event: a point of a sweep finished (or stopped), with its row of the sweep's table."""

    point: SweepPoint


@dataclass
class SweepProgress:
    """A sweep job as a whole: the point its snapshot follows, the points finished, those skipped."""

    sweep_id: str
    total_points: int
    current: SweepPointStart | None = None  # None before the first point (decoding, shared features) and once done
    points: list[SweepPoint] = field(default_factory=list)  # as they finished; in sweep order once done
    skipped: list[str] = field(default_factory=list)  # labels of the points never started
    seconds: float = 0.0  # once done: the whole sweep
    decode_seconds: float = 0.0


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
    history: History = field(default_factory=History)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    run_dir: str = ""
    reason: str = ""
    error: str = ""
    final: dict[str, float] = field(default_factory=dict)
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
    sweep: SweepProgress | None = None  # a sweep job's points (None for other jobs, and before a sweep begins)

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
        phase = self.phase or max((r.phase for r in self.history), default=0)
        per_epoch = History.of(r for r in self.history if r.phase == phase).mean_epoch_seconds
        if self.done or per_epoch is None:
            return None
        remaining = self.epochs_total - self.epoch + (1 - self.batch / self.batches if self.batches else 1)
        return max(0.0, per_epoch * max(remaining, 0))


def apply_event(s: Snapshot, event: object) -> None:
    """Turn a training progress event (tlcore.progress) into snapshot fields; other events change nothing."""
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
        s.history = s.history.plus(event.row)
    elif isinstance(event, RunCreated):
        s.run_dir, s.device = event.run_dir, event.device
    elif isinstance(event, WorkerStarted):
        s.worker = f"{event.host} (pid {event.pid})"


def point_start(s: Snapshot, event: SweepPointStart) -> None:
    """A sweep's point begins: what the point before it showed of its training is cleared."""
    s.stage, s.message = "starting", f"point {event.index}/{event.total}: {event.label}"
    s.phase, s.route, s.route_reason = 0, "", ""
    s.epoch, s.batch, s.batches, s.history = 0, 0, 0, History()
    s.stages, s.features_reused, s.schedule = {}, {}, None


def show_point(point: Snapshot, into: Snapshot) -> None:
    """Show a sweep point's own progress in the sweep's snapshot: the fields point_start and apply_event set."""
    into.stage, into.message = point.stage, point.message
    into.phase, into.route, into.route_reason = point.phase, point.route, point.route_reason
    into.epoch, into.epochs_total = point.epoch, point.epochs_total
    into.batch, into.batches = point.batch, point.batches
    into.history, into.stages, into.features_reused = point.history, point.stages, point.features_reused
    into.schedule, into.class_names = point.schedule, point.class_names
    into.validation_per_class = point.validation_per_class
    into.batch_loss, into.batch_accuracy = point.batch_loss, point.batch_accuracy
    into.run_dir, into.device, into.worker = point.run_dir, point.device, point.worker
