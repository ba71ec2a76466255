"""How long a queued job waits, and how long a job has left: the numbers a class's queue shows.

A running job's time left comes from its own epochs so far (Snapshot.seconds_left) or, before its first
epoch, from the estimate of its settings at this machine's speed (tlcore.speed) less the time it has run. A waiting
job starts when a slot frees: the slots are filled in queue order with each job's estimated time.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Mapping, Sequence

from tlcore import background
from tlcore.config import TrainConfig
from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.estimate import estimate, estimate_many
from tlcore.jobs import QUEUED, Job, JobRegistry
from tlcore.jsontypes import JSONValue
from tlcore.runs import RunStore
from tlcore.speed import Speed, machine_speed


def estimated_seconds(job: Job, speed: Speed | float) -> float:
    """A job's whole estimated time from its settings and dataset (0 when it holds no TrainConfig)."""
    if not isinstance(job.config, TrainConfig) or not job.train_images:
        return 0.0
    return estimate(job.config, job.train_images, job.validation_images, speed).total_seconds


def seconds_left(job: Job, speed: Speed | float) -> float:
    """What a running job has left; a waiting job's whole estimate."""
    snap = job.snapshot()
    if snap.done:
        return 0.0
    whole = estimated_seconds(job, speed)
    if snap.stage == QUEUED:
        return whole
    if (left := snap.seconds_left()) is not None:
        return left
    return max(0.0, whole - snap.elapsed)


def waits(registry: JobRegistry, speed: Speed | float) -> dict[str, float]:
    """{job id: estimated seconds until it starts} for every waiting job, in queue order."""
    queued = registry.queue()
    waiting_ids = {job.id for job in queued}
    running = [job for job in registry.running() if job.id not in waiting_ids]
    free_at = [seconds_left(job, speed) for job in running][: registry.max_active]
    free_at += [0.0] * (registry.max_active - len(free_at))
    heapq.heapify(free_at)
    out = {}
    for job in queued:
        start = heapq.heappop(free_at)
        out[job.id] = start
        heapq.heappush(free_at, start + estimated_seconds(job, speed))
    return out


# --- the class's limits -------------------------------------------------------------------------------

OVERRUN = 1.5  # a run stops at this multiple of the class's time cap, keeping what it learned


def limit_problem(
    config: TrainConfig, n_train: int, n_val: int, limits: Mapping[str, JSONValue], speed: Speed | float
) -> str | None:
    """Which of the teacher's limits these settings break, in words for the student (None: within them).

    limits: "max_image_size" (px), "max_epochs" (both phases), "max_minutes" (the estimated time); a
    missing or 0 limit is none, and so is one that is not a number.
    """
    if (size := _limit(limits, "max_image_size")) and config.image_size > size:
        return f"The class's largest image size is {size} px; these settings use {config.image_size} px."
    if (epochs := _limit(limits, "max_epochs")) and config.total_epochs() > epochs:
        return f"The class's limit is {epochs} epochs; these settings train {config.total_epochs()}."
    if minutes := _limit(limits, "max_minutes"):
        guess = estimate(config, n_train, n_val, speed).total_seconds
        if guess > minutes * 60:
            return (
                f"These settings would take about {guess / 60:.1f} min, and the class's limit is {minutes:g} min: "
                "choose a smaller image size, fewer epochs or a higher freeze point."
            )
    return None


def runs_limit_problem(
    configs: Sequence[TrainConfig], n_train: int, n_val: int, limits: Mapping[str, JSONValue], speed: Speed | float
) -> str | None:
    """`limit_problem` for one job of several runs (a transfer curve): each run's image size and epochs, and the
    whole job's estimated time against the time limit (None: within them)."""
    per_run = {name: value for name, value in limits.items() if name != "max_minutes"}
    for config in configs:
        if problem := limit_problem(config, n_train, n_val, per_run, speed):
            return problem
    if minutes := _limit(limits, "max_minutes"):
        guess = estimate_many(configs, n_train, n_val, speed)
        if guess > minutes * 60:
            return (
                f"These {len(configs)} runs would take about {guess / 60:.1f} min, and the class's limit is "
                f"{minutes:g} min: choose fewer freeze points or repeats, or a smaller image size."
            )
    return None


def start_refusal(
    store: RunStore, configs: Sequence[TrainConfig], info: DatasetInfo, limits: Mapping[str, JSONValue], kept: int
) -> str | None:
    """Why a job of these runs may not start, in words for the student (None: it may): the run quota for the
    `kept` runs it keeps with their models, then the class's limits (`runs_limit_problem`)."""
    if kept and (problem := store.quota_problem(kept)):
        return problem
    n_train, n_val = info.num_images(TRAIN), info.num_images(VALIDATION)
    return runs_limit_problem(configs, n_train, n_val, limits, machine_speed(store.root))


def cap_job(job: Job, limits: Mapping[str, JSONValue]) -> None:
    """Stop `job` past OVERRUN x the class's time limit, when there is one (`stop_past_cap`)."""
    if minutes := _limit(limits, "max_minutes"):
        stop_past_cap(job, minutes * 60)


def _limit(limits: Mapping[str, JSONValue], name: str) -> float:
    """The limit as the settings file holds it (an int stays an int, for the message), or 0 when it is no number."""
    value = limits.get(name)
    return value if isinstance(value, (int, float)) else 0


def stop_past_cap(job: Job, cap_s: float, poll_s: float = 1.0) -> threading.Thread:
    """Stop `job` once it has trained OVERRUN x `cap_s` (time waiting in the queue does not count); its run
    keeps the epochs it finished and its model, as any Stop does."""

    def watch() -> None:
        while not job.snapshot().done:
            snap = job.snapshot()
            if snap.stage != QUEUED and snap.elapsed > OVERRUN * cap_s:
                job.update(message=f"Stopped at {OVERRUN:g} x the class's time cap of {cap_s / 60:g} min.")
                job.stop()
                return
            time.sleep(poll_s)

    return background.start(watch, (), f"tlcore-cap-{job.id}")
