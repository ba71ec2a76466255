"""This machine's speed as its own runs measured it: what the time estimates and the class's queue use.

Before the first run, the speed is the arithmetic one (`tlcore.estimate.machine_gflops`: one NumPy matrix
product x a constant). After runs, it comes from what they recorded (run.json and history.csv): the frozen
features' extraction gives GFLOP/s of forward passes, the epochs that train convolutions give GFLOP/s of
training, the head-only epochs what an epoch costs beyond its arithmetic, and each run's wall time less
its extraction and epochs what a run costs beyond them (building the model, decoding the images, saving
the model). A machine under load (a class browsing while it trains) measures slower, and its estimates
follow. No TensorFlow: a page can read the speed at once.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tlcore.architecture import layer_flops
from tlcore.history import EpochRow
from tlcore.records import COMPLETED, RunRecord
from tlcore.route import CACHED, END_TO_END

TRAIN_COST = 3.0  # training a layer ~ 3 forward passes (forward, gradient for the inputs, for the weights)
RUN_OVERHEAD_S = 3.0  # arithmetic fallback: building the model, compiling, first-call tracing, saving
# Arithmetic fallback for what an epoch costs beyond its convolutions: end to end, fit's per-batch calls and
# validation; cached, the head's compiled calls (bench/feature_cache.py: ~0.004 s for 256 images at 128 px).
EPOCH_OVERHEAD_S = {END_TO_END: 0.05, CACHED: 0.005}
RECENT_RUNS = 10  # the speed follows the machine as it is now: its last runs only
# Epochs whose trainable layers cost under this share of their time are "overhead" epochs (head only).
MIN_WORK_SHARE = 0.2


@dataclass(frozen=True)
class Speed:
    """How fast this machine runs each part of a run."""

    extract_gflops: float  # forward passes through frozen layers
    train_gflops: float  # training convolutions (counted as TRAIN_COST forward passes per training image)
    epoch_overhead_s: Mapping[str, float] = field(default_factory=lambda: dict(EPOCH_OVERHEAD_S))  # per route
    run_overhead_s: float = RUN_OVERHEAD_S
    runs: int = 0  # how many runs it was measured on; 0: the arithmetic estimate

    @classmethod
    def arithmetic(cls, gflops: float) -> Speed:
        """The speed before any run: one measured GFLOP/s for everything, fixed overheads."""
        return cls(gflops, gflops)

    def describe(self) -> str:
        """Where the figures come from, in words."""
        if not self.runs:
            return f"about {self.extract_gflops:.0f} GFLOP/s, from arithmetic (no run on this machine yet)"
        return (
            f"measured on the last {self.runs} run(s): {self.extract_gflops:.0f} GFLOP/s extracting features, "
            f"{self.train_gflops:.0f} GFLOP/s training, {self.run_overhead_s:.1f} s a run beyond that"
        )


def as_speed(speed: Speed | float) -> Speed:
    """A Speed from a Speed or a bare GFLOP/s (the arithmetic estimate)."""
    return speed if isinstance(speed, Speed) else Speed.arithmetic(float(speed))


@dataclass(frozen=True)
class EpochWork:
    """The arithmetic of one epoch: FLOPs through frozen layers (forward only) and through trainable ones."""

    frozen_flops: float
    train_flops: float


def epoch_work(image_size: int, freeze_at: int, route: str, n_train: int, n_val: int) -> EpochWork:
    """An epoch's FLOPs: training images count TRAIN_COST forward passes through trainable layers."""
    flops = layer_flops(image_size)
    frozen, trainable = sum(flops[:freeze_at]), sum(flops[freeze_at:])
    return EpochWork(
        frozen_flops=0.0 if route == CACHED else (n_train + n_val) * frozen,
        train_flops=(n_train * TRAIN_COST + n_val) * trainable,
    )


def extraction_flops(image_size: int, freeze_at: int, images: int) -> float:
    """FLOPs of computing the frozen features at `freeze_at` for `images` images once."""
    return images * sum(layer_flops(image_size)[:freeze_at])


def _images(record: RunRecord) -> tuple[int, int]:
    counts = record.dataset.counts if record.dataset else {}
    return sum(counts.get("train", {}).values()), sum(counts.get("validation", {}).values())


def measure(records: Iterable[RunRecord], fallback: Speed) -> Speed:
    """The speed the recorded runs show; each part the runs cannot tell keeps `fallback`'s figure.

    Only completed runs with timings count (a stopped run's wall time is not a run's).
    """
    extract_flops = extract_s = 0.0
    overhead_epochs: dict[str, list[float]] = {CACHED: [], END_TO_END: []}
    work_epochs: list[tuple[EpochWork, float, str]] = []
    run_overheads: list[float] = []
    used = 0
    for record in records:
        config = record.config
        if record.status != COMPLETED or config is None or not record.seconds or record.extract_seconds is None:
            continue
        n_train, n_val = _images(record)
        if not n_train:
            continue
        used += 1
        # The depths whose features this run computed (not reused from the feature store).
        made = [at for f in record.features or [] if not f.get("reused") and isinstance(at := f.get("freeze_at"), int)]
        if made and record.extract_seconds > 0:
            extract_flops += sum(extraction_flops(config.image_size, at, n_train + n_val) for at in made)
            extract_s += record.extract_seconds
        rows: list[EpochRow] = [row for row in record.history.rows if not row.partial]
        for row in rows:
            work = epoch_work(config.image_size, row.freeze_at, row.route, n_train, n_val)
            if work.train_flops + work.frozen_flops == 0.0:
                overhead_epochs[row.route].append(row.seconds)
            else:
                work_epochs.append((work, row.seconds, row.route))
        train_s = (
            record.train_seconds if record.train_seconds is not None else sum(r.seconds for r in record.history.rows)
        )
        run_overheads.append(max(0.0, record.seconds - record.extract_seconds - train_s))
    if not used:
        return fallback
    extract_gflops = extract_flops / extract_s / 1e9 if extract_s > 0 else fallback.extract_gflops
    epoch_overhead = {
        route: statistics.median(seconds) if seconds else fallback.epoch_overhead_s[route]
        for route, seconds in overhead_epochs.items()
    }
    # Training speed: what is left of each epoch's time once its overhead and its frozen forward passes are
    # taken off, over the FLOPs it trained. Epochs that are mostly overhead say nothing about it.
    trained_flops = trained_s = 0.0
    for work, seconds, route in work_epochs:
        left = seconds - epoch_overhead[route] - work.frozen_flops / (extract_gflops * 1e9)
        if left > MIN_WORK_SHARE * seconds:
            trained_flops += work.train_flops
            trained_s += left
    if trained_s > 0:
        train_gflops = trained_flops / trained_s / 1e9
    else:  # no run trained convolutions: they run about as fast per FLOP as the forward passes measured
        train_gflops = extract_gflops * fallback.train_gflops / fallback.extract_gflops
    return Speed(extract_gflops, train_gflops, epoch_overhead, statistics.median(run_overheads), used)


# --- the runs folder's speed, re-measured when a run finishes --------------------------------------------------

_LOCK = threading.Lock()
_parsed: dict[Path, tuple[float, RunRecord | None]] = {}  # run.json -> (its mtime, its finished record or None)
_measured: dict[Path, tuple[tuple[str, ...], Speed]] = {}  # root -> (the runs it measured, their speed)


def _finished_record(path: Path) -> RunRecord | None:
    """The run's record once it has finished (None while it runs, or unreadable); parsed once per version."""
    from tlcore.run_folder import load_record

    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    kept = _parsed.get(path)
    if kept is not None and kept[0] == mtime:
        return kept[1]
    try:
        record: RunRecord | None = load_record(path.parent)
    except (OSError, ValueError):
        record = None
    if record is not None and not record.finished:
        record = None
    _parsed[path] = (mtime, record)
    return record


def recent_runs(root: Path, host: str) -> list[RunRecord]:
    """The newest RECENT_RUNS finished runs recorded on `host` (run folders are named by their start time)."""
    from tlcore.run_folder import RUN_FILE

    try:
        names = sorted((e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")), reverse=True)
    except OSError:
        return []
    found = []
    for name in names[: 4 * RECENT_RUNS]:  # running, failed and other hosts' runs are skipped, within reason
        record = _finished_record(root / name / RUN_FILE)
        if record is not None and record.host == host:
            found.append(record)
            if len(found) == RECENT_RUNS:
                break
    return found


def machine_speed(root: str | os.PathLike | None = None) -> Speed:
    """This machine's speed from the last runs in the runs folder `root` (default: the lab's), or the arithmetic
    one before any. Costs a directory listing and a stat per recent run folder; measured again only when the
    set of finished runs changed."""
    from tlcore.estimate import machine_gflops
    from tlcore.runs import default_runs_dir

    root = Path(root) if root is not None else default_runs_dir()
    fallback = Speed.arithmetic(machine_gflops())
    with _LOCK:
        records = recent_runs(root, socket.gethostname())
        which = tuple(r.run_id for r in records)
        kept = _measured.get(root)
        if kept is not None and kept[0] == which:
            return kept[1]
        speed = measure(records, fallback)
        _measured[root] = (which, speed)
        return speed
