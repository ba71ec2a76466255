"""Training jobs: `train_job`, the plain function a thread or a cluster's worker runs, and `start_training`.

The job function is the same wherever it runs and reports the same events (tlcore.progress); what it
hands back is its RunResult without the live model. The helpers below are shared with
the sweep jobs (tlcore.jobs.sweep_jobs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tlcore.backend import WorkerLost
from tlcore.config import TrainConfig
from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.jobs.registry import JOBS, Job, JobRegistry
from tlcore.progress import ProgressFn, RunCreated, StopFlag
from tlcore.recording import Run
from tlcore.records import INTERRUPTED
from tlcore.run_folder import mark_interrupted
from tlcore.run_result import RunResult
from tlcore.runs import RunStore


def announce_run(report: ProgressFn) -> Callable[[Run], None]:
    """on_run_created for a job function: the new run's folder and device, as an event."""
    return lambda run: report(RunCreated(str(run.run_dir), run.record.device or ""))


def train_job(
    config: TrainConfig, info: DatasetInfo, store: RunStore | None, *, report: ProgressFn, stop: StopFlag
) -> RunResult:
    """Train and record one run (tlcore.tf.training.train_and_record); its folder is announced by RunCreated.

    The result comes back without its live model; with the model's bytes only when the run store could not save it.
    """
    # The boundary: the job's thread or worker is where training starts, so the TensorFlow side is imported here.
    from tlcore.tf.model import model_to_bytes
    from tlcore.tf.training import train_and_record

    result, _ = train_and_record(config, info, store, progress=report, stop=stop, on_run_created=announce_run(report))
    unsaved = result.model if result.save_error else None
    return result.without_model(model_to_bytes(unsaved, result.class_names) if unsaved is not None else None)


def absolute_store(store: RunStore | None) -> RunStore:
    """This process's run store by its absolute path: a worker elsewhere has another working folder and environment."""
    store = store or RunStore()
    return RunStore(store.root.resolve(), store.actor)  # the runs it makes keep their owner


def interrupted_message(job: Job, err: WorkerLost) -> str:
    """Mark the lost worker's run interrupted in the run store; the message the session shows."""
    snap = job.snapshot()
    epochs = sum(1 for row in snap.history if not row.partial)
    if snap.run_dir:
        mark_interrupted(Path(snap.run_dir), str(err))
    kept = f" The run keeps its {epochs} finished epoch{'s' if epochs != 1 else ''} and reads {INTERRUPTED}."
    return f"{err}{kept if snap.run_dir else ''}"


def dataset_of(info: DatasetInfo) -> tuple[str, int, int]:
    """(folder, training images, validation images) of a scanned dataset, for describing its job."""
    return str(info.root), info.num_images(TRAIN), info.num_images(VALIDATION)


def start_training(
    owner: str,
    config: TrainConfig,
    info: DatasetInfo,
    store: RunStore | None = None,
    registry: JobRegistry = JOBS,
    listener: ProgressFn | None = None,
) -> Job[RunResult]:
    """Start a training job (train_job) on the registry's backend; returns the job at once.

    `listener` gets each progress event as the job's snapshot takes it in.
    """
    store = absolute_store(store)

    def work(job: Job[RunResult]) -> RunResult:
        registry.backend.connect(store.root)  # checks the run store is shared, once per connection
        try:
            outcome: RunResult = registry.backend.call(train_job, (config, info, store), job.on_progress, job.stop_flag)
        except WorkerLost as err:
            raise WorkerLost(interrupted_message(job, err)) from None
        # The registry outlives the run: only a model that could not be saved is kept, as bytes.
        job.model_bytes, outcome.model_bytes = outcome.model_bytes, None
        with job.editing() as s:
            # The lost model matters most: it goes before early stopping's note.
            s.status, s.reason, s.final = outcome.status, outcome.save_error or outcome.reason, outcome.final
            s.kept_epoch, s.run_dir, s.stage, s.finished = outcome.kept_epoch, outcome.run_dir, "done", time.time()
        return outcome

    return registry.start(
        owner,
        "training",
        work,
        epochs_total=config.total_epochs(),
        config=config,
        dataset=dataset_of(info),
        listener=listener,
    )
