"""What a training run tells its caller as it goes, and how the caller asks it to stop (no TensorFlow).

`tlcore.tf.training` sends these events to a plain callable; a job (tlcore.jobs), the command line and
a notebook read them without importing TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tlcore.history import EpochRow
from tlcore.schedule import Schedule


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class StepProgress:
    """Progress through decoding images or extracting features."""

    stage: str  # "decode" | "extract"
    done: int
    total: int


@dataclass(frozen=True)
class PhaseStart:
    phase: int
    freeze_at: int
    epochs: int
    learning_rate: float
    route: str  # cached | end_to_end (tlcore.route); "path" in history.csv, a run.json "routes" entry
    route_reason: str
    trainable_params: int
    frozen_params: int


@dataclass(frozen=True)
class FeaturesReused:
    """A cached phase found its frozen features in the feature store: no extraction this time."""

    phase: int
    freeze_at: int
    created: str  # local time the features were computed, "YYYY-MM-DD HH:MM:SS"


@dataclass(frozen=True)
class BatchEnd:
    phase: int
    epoch: int  # 1-based, counted over all phases
    batch: int  # 1-based
    batches: int
    loss: float  # the epoch's mean loss so far (as Keras' progress bar shows it)
    accuracy: float = math.nan  # the epoch's training accuracy so far


@dataclass(frozen=True)
class EpochEnd:
    row: EpochRow  # the epoch as history.csv keeps it


@dataclass(frozen=True)
class Planned:
    """Before the first epoch: how long the run trains on its data (batch size, epochs, early stopping), and
    the validation split its accuracy is read on (`tlcore.baselines`)."""

    schedule: Schedule
    class_names: tuple[str, ...] = ()
    validation_per_class: tuple[int, ...] = ()


@dataclass(frozen=True)
class RunCreated:
    """The run's folder exists and holds its record: from here on the run store lists it."""

    run_dir: str
    device: str = ""  # what trains it, in words (tlcore.devices.training_device)


@dataclass(frozen=True)
class WorkerStarted:
    """A job began in a worker process of a cluster (tlcore.cluster): where it runs."""

    host: str
    pid: int


ProgressFn = Callable[[object], None]
