"""Peak resident memory (RSS) of one training run on the sample data, in this fresh process.

The run is the product's: `tlcore.data.scan` -> `prepare_data` (decode) ->
`train_and_record` (build the model, extract features on the cached path,
train, save the model to a run store in a temporary folder). The peak is
this process's high-water mark (`getrusage(RUSAGE_SELF).ru_maxrss`, KiB on
Linux); current RSS (`VmRSS` in /proc/self/status) and the high-water mark
so far are sampled at each phase boundary, so the breakdown shows which
phase set the peak. Phase boundaries inside training come from its
progress events: PhaseStart (model built), the first batch (features
extracted), each epoch's end.

    python -m bench.memory [--path cached|end_to_end] [--image-size 128] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _common

_common.setup()

from bench._common import cpu_info, default_weights, emit, note, rounded  # noqa: E402

GOAL_MB = 3000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--path",
        choices=("cached", "end_to_end"),
        default="cached",
        help="cached: features computed once (cache_features=True); end_to_end: frozen base every epoch",
    )
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--weights", default=default_weights(), help="weights file, 'imagenet' or 'none'")
    parser.add_argument("--data", type=Path, default=_common.SAMPLE_DATA)
    return parser.parse_args(argv)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class MemoryLog:
    """Current RSS and the peak so far, recorded at named points."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.points: list[dict[str, Any]] = []

    def mark(self, phase: str) -> None:
        rss = _status_kib("VmRSS") / 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.points.append(
            {
                "phase": phase,
                "rss_mb": round(rss, 1),
                "peak_so_far_mb": round(peak, 1),
                "seconds": round(time.perf_counter() - self.started, 2),
            }
        )
        note(f"{phase}: rss {rss:.0f} MB, peak so far {peak:.0f} MB")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    log = MemoryLog()
    log.mark("start (before importing tensorflow)")
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    log.mark("after import tensorflow")

    from tlcore.config import TrainConfig
    from tlcore.data import scan
    from tlcore.environment import RUNS_ENV
    from tlcore.progress import BatchEnd, EpochEnd, PhaseStart
    from tlcore.runs import RunStore
    from tlcore.tf.pipeline import prepare_data
    from tlcore.tf.training import train_and_record

    info = scan(args.data)
    data = prepare_data(info, args.image_size)
    log.mark(f"after decode ({len(data.train)} + {len(data.validation)} images at {args.image_size} px)")

    first_batch_seen = False

    def on_event(event: object) -> None:
        nonlocal first_batch_seen
        if isinstance(event, PhaseStart):
            log.mark(f"after model build (phase {event.phase}, path {event.route})")
        elif isinstance(event, BatchEnd) and not first_batch_seen:
            first_batch_seen = True
            log.mark("after first training batch" + (" (features extracted)" if args.path == "cached" else ""))
        elif isinstance(event, EpochEnd):
            log.mark(f"after epoch {event.row.epoch}")

    config = TrainConfig(
        weights=args.weights, image_size=args.image_size, epochs=args.epochs, cache_features=args.path == "cached"
    )
    with tempfile.TemporaryDirectory(prefix="tllab-bench-runs-") as runs_dir:
        os.environ[RUNS_ENV] = runs_dir  # anything that looks the store up by itself lands here too
        note(f"training {args.epochs} epoch(s) on the {args.path} path; runs in {runs_dir}")
        result, _run = train_and_record(config, info, store=RunStore(runs_dir), progress=on_event, data=data)
        log.mark("after training (model saved)")

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "benchmark": "memory",
        "date": _common.BENCH_DATE,
        "path": args.path,
        "paths_taken": result.routes,
        "status": result.status,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "train_images": len(data.train),
        "validation_images": len(data.validation),
        "weights": os.path.basename(args.weights),
        "peak_rss_mb": round(peak_mb, 1),
        "vm_hwm_mb": round(_status_kib("VmHWM") / 1024, 1),
        "goal_mb": GOAL_MB,
        "meets_goal": peak_mb < GOAL_MB,
        "breakdown": log.points,
        "final_val_accuracy": rounded(result.final.get("val_accuracy")),
        "train_seconds": rounded(result.train_seconds, 2),
        "extract_seconds": rounded(result.extract_seconds, 2),
        "cpu": cpu_info(),
        "total_seconds": rounded(time.perf_counter() - log.started, 1),
    }


if __name__ == "__main__":
    emit(main())
