"""Background jobs: training runs, freeze sweeps and transfer curves, a thread each, queued for the backend's slots.

The UI never trains in its own thread: it starts a job here (`start_training`, `start_sweep`,
`start_transfer_curve`), keeps the job's id and polls `job.snapshot()`. The registry (`JOBS`) is
process-wide; the same job functions run in a thread of this process or on a Ray cluster's worker
(tlcore.cluster) and report the same events.
"""

from tlcore.jobs.curve_jobs import CURVE_JOB, curve_unit_job, start_transfer_curve
from tlcore.jobs.registry import (
    FINISHED_JOBS_KEPT,
    JOBS,
    QUEUED,
    WAITS_FRESH_S,
    Job,
    JobBusy,
    JobRegistry,
    NotStarted,
    wait,
)
from tlcore.jobs.snapshot import Snapshot, SweepPointDone, SweepProgress
from tlcore.jobs.sweep_jobs import start_sweep, sweep_job, sweep_point_job, sweep_prepare_job
from tlcore.jobs.training_jobs import start_training, train_job
from tlcore.records import COMPLETED, FAILED, INTERRUPTED, RUNNING, STOPPED

__all__ = [
    "COMPLETED",
    "CURVE_JOB",
    "FAILED",
    "FINISHED_JOBS_KEPT",
    "INTERRUPTED",
    "JOBS",
    "QUEUED",
    "RUNNING",
    "STOPPED",
    "WAITS_FRESH_S",
    "Job",
    "JobBusy",
    "JobRegistry",
    "NotStarted",
    "Snapshot",
    "SweepPointDone",
    "SweepProgress",
    "curve_unit_job",
    "start_sweep",
    "start_training",
    "start_transfer_curve",
    "sweep_job",
    "sweep_point_job",
    "sweep_prepare_job",
    "train_job",
    "wait",
]
