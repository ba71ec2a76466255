"""The transfer curve as a job in the queue: `start_transfer_curve`, under the same limits as training."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tlcore.config import TrainConfig
from tlcore.data import DatasetInfo
from tlcore.feature_store import FeatureStore
from tlcore.jobs.registry import JOBS, Job, JobRegistry
from tlcore.jobs.training_jobs import absolute_store, dataset_of
from tlcore.progress import ProgressFn, StepProgress, StopFlag
from tlcore.records import COMPLETED, STOPPED
from tlcore.runs import RunStore
from tlcore.transfer_curve import CURVE_STAGE, TransferCurve, curve_base


def transfer_curve_job(
    base: TrainConfig,
    info: DatasetInfo,
    points: Sequence[int],
    repeats: int,
    store: RunStore,
    *,
    report: ProgressFn,
    stop: StopFlag,
) -> TransferCurve | None:
    """The whole curve (tlcore.tf.transfer_curve), each run reported as a step; None when stopped."""
    from tlcore.tf.transfer_curve import CurveStopped, run_transfer_curve  # the job's thread or worker trains

    try:
        return run_transfer_curve(
            base,
            info,
            FeatureStore.default(store.root),
            points,
            repeats,
            note=lambda done, total, _line: report(StepProgress(CURVE_STAGE, done, total)),
            stop=stop,
        )
    except CurveStopped:
        return None


def start_transfer_curve(
    owner: str,
    base: TrainConfig,
    info: DatasetInfo,
    points: Sequence[int],
    repeats: int,
    store: RunStore | None = None,
    registry: JobRegistry = JOBS,
) -> Job[TransferCurve | None]:
    """Queue the curve as one job of `owner`'s (one job at a time each, as for training); returns it at once."""
    store = absolute_store(store)

    def work(job: Job[TransferCurve | None]) -> TransferCurve | None:
        registry.backend.connect(store.root)
        curve = registry.backend.call(
            transfer_curve_job, (base, info, tuple(points), repeats, store), job.on_progress, job.stop_flag
        )
        with job.editing() as s:
            s.status, s.stage, s.finished = (COMPLETED if curve else STOPPED), "done", time.time()
            s.reason = "" if curve else "stopped: a curve needs every run"
        return curve

    return registry.start(owner, "transfer curve", work, config=curve_base(base), dataset=dataset_of(info))
