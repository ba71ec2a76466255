"""Memory across repeated runs in one process: RSS after each of N consecutive tiny runs.

Each run goes the app's way: `tlcore.jobs.start_training` in a background
thread of one process-wide registry, one after another for the same owner
(a user pressing Start again and again). After each run (and a gc.collect)
the process's current RSS (`VmRSS`), the number of trained models still
alive (weak references) and the jobs the registry keeps are recorded.

Two processes run side by side in one invocation, the same runs in each:
- `released`: the product as it is.
- `held`: the same, but every trained model is kept alive by the benchmark,
  which is what the registry used to do (a control: it shows how much one
  more model costs, so a flat `released` line means something).

    python -m bench.repeated_runs [--runs 5] [--image-size 64] [--epochs 2] [--freeze-at 14]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import _common

_common.setup()

from bench._common import SAMPLE_DATA, cpu_info, default_weights, emit, note  # noqa: E402

if TYPE_CHECKING:  # for an annotation: measure() imports TensorFlow when it runs
    import keras


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--freeze-at", type=int, default=14, help="below 18 the runs train conv layers (optimizer state too)"
    )
    parser.add_argument("--mode", choices=("released", "held"), help=argparse.SUPPRESS)  # one child process
    return parser.parse_args(argv)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The runs in this process; returns the figures after each."""
    import tlcore.tf.training as training
    from tlcore.config import TrainConfig
    from tlcore.data import scan
    from tlcore.jobs import JobRegistry, start_training
    from tlcore.runs import RunStore

    models: list[weakref.ref] = []
    held: list[Any] = []
    real_build_for = training.build_for

    def watched_build_for(config: TrainConfig, num_classes: int) -> keras.Model:
        model = real_build_for(config, num_classes)
        models.append(weakref.ref(model))
        if args.mode == "held":
            held.append(model)
        return model

    training.build_for = watched_build_for
    info = scan(SAMPLE_DATA)
    config = TrainConfig(
        weights=default_weights(), image_size=args.image_size, epochs=args.epochs, freeze_at=args.freeze_at
    )
    registry = JobRegistry(max_active=1)
    gc.collect()
    before = rss_mb()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tllab-bench-runs-") as runs_dir:
        for index in range(1, args.runs + 1):
            started = time.perf_counter()
            job = start_training("bench", config, info, RunStore(runs_dir), registry=registry)
            assert job.thread is not None  # start_training returns a started job
            job.thread.join()
            snap = job.snapshot()
            if snap.status != "completed":
                raise RuntimeError(f"run {index} ended {snap.status}: {snap.error or snap.reason}")
            gc.collect()
            rows.append(
                {
                    "run": index,
                    "rss_mb": round(rss_mb(), 1),
                    "models_alive": sum(ref() is not None for ref in models),
                    "jobs_kept": len(registry._jobs),
                    "seconds": round(time.perf_counter() - started, 1),
                    "val_accuracy": round(snap.final.get("val_accuracy", float("nan")), 3),
                }
            )
            note(f"{args.mode}: run {index}: {rows[-1]}")
    return {"mode": args.mode, "rss_before_runs_mb": round(before, 1), "runs": rows}


def main() -> None:
    args = parse_args()
    if args.mode:
        print(json.dumps(measure(args)))
        return
    results = {}
    for mode in ("released", "held"):
        note(f"{mode}: {args.runs} runs in a fresh process")
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.repeated_runs",
                "--mode",
                mode,
                "--runs",
                str(args.runs),
                "--image-size",
                str(args.image_size),
                "--epochs",
                str(args.epochs),
                "--freeze-at",
                str(args.freeze_at),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[mode] = json.loads(child.stdout.strip().splitlines()[-1])
    released, held = results["released"]["runs"], results["held"]["runs"]
    side_by_side = [
        {
            "run": r["run"],
            "released_rss_mb": r["rss_mb"],
            "held_rss_mb": h["rss_mb"],
            "released_models_alive": r["models_alive"],
            "held_models_alive": h["models_alive"],
        }
        for r, h in zip(released, held)
    ]
    growth = {
        mode: round(rows[-1]["rss_mb"] - rows[0]["rss_mb"], 1)
        for mode, rows in (("released", released), ("held", held))
    }
    emit(
        {
            "benchmark": "repeated_runs",
            "date": _common.BENCH_DATE,
            "config": {
                "runs": args.runs,
                "image_size": args.image_size,
                "epochs": args.epochs,
                "freeze_at": args.freeze_at,
                "weights": default_weights(),
            },
            "cpu": cpu_info(),
            "side_by_side": side_by_side,
            "rss_growth_run1_to_last_mb": growth,
            "growth_per_extra_run_mb": {mode: round(g / max(1, args.runs - 1), 1) for mode, g in growth.items()},
            "details": results,
        }
    )


if __name__ == "__main__":
    main()
