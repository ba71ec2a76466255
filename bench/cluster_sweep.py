"""One freeze sweep, in this process and on a local Ray of two workers, side by side.

Both sides go the app's way, `tlcore.jobs.start_sweep`, on the sample data with the
same base settings and points, each in a fresh runs folder (an empty feature store):
in-process the points run one after another with both cores; on Ray the shared work
(decoding, the one pass of shared features) runs once on a worker, then the points run
two at a time, one core each, first in fresh worker processes and then again in the
workers kept from the first sweep. Printed per side: the wall time from start to the
sweep's result, the points' own seconds and accuracies, the workers that trained them.

    python -m bench.cluster_sweep [--image-size 96] [--epochs 3] [--points 18,14,10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _common
from bench._common import default_weights, emit, load_average, note, rounded, run_facts

_common.setup()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--points", default="18,14,10")
    parser.add_argument("--scratch", action="store_true", help="add the from-scratch baseline")
    parser.add_argument("--weights", default=default_weights())
    parser.add_argument("--data", default=str(_common.SAMPLE_DATA))
    return parser.parse_args(argv)


def one_sweep(name: str, registry: Any, args: argparse.Namespace) -> dict[str, Any]:
    from tlcore.data import scan
    from tlcore.jobs import start_sweep, wait
    from tlcore.run_folder import load_record
    from tlcore.runs import RunStore
    from tlcore.sweep import sweep_config

    base = sweep_config(args.weights, args.image_size, args.epochs)
    info = scan(args.data, validation_split=base.validation_split, seed=base.seed)
    store = RunStore(Path(tempfile.mkdtemp(prefix=f"tllab-bench-{name}-")) / "runs")
    points = [int(k) for k in args.points.split(",")]
    note(f"{name}: sweep of {points}{' + scratch' if args.scratch else ''}")
    t0 = time.perf_counter()
    result = wait(start_sweep(name, base, info, points, args.scratch, store, registry=registry))
    seconds = time.perf_counter() - t0
    workers = {p.label: load_record(Path(p.run_dir)).pid for p in result.points}
    note(f"{name}: {seconds:.1f} s")
    return {
        "seconds": rounded(seconds, 2),
        "status": result.status,
        "decode_seconds": rounded(result.decode_seconds, 2),
        "shared_points": result.shared_points,
        "shared_extract_seconds": rounded(result.shared_extract_seconds, 2),
        "points": [
            {
                "label": p.label,
                "seconds": rounded(p.seconds, 2),
                "best_val_accuracy": rounded(p.best_val_accuracy, 3),
                "path": p.route,
                "pid": workers[p.label],
            }
            for p in result.points
        ],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_before = load_average()
    import keras  # noqa: F401  (import cost kept out of the timings)

    from tlcore.backend import InProcessBackend
    from tlcore.cluster import LOCAL, RayBackend
    from tlcore.jobs import JobRegistry

    here = one_sweep("in-process", JobRegistry(backend=InProcessBackend()), args)
    ray_backend = RayBackend(LOCAL, cpus=2)
    t0 = time.perf_counter()
    ray_backend.connect()
    connect_seconds = time.perf_counter() - t0
    try:
        on_ray = one_sweep("ray", JobRegistry(backend=ray_backend), args)
        # The same sweep again, on the workers kept from the first (TensorFlow loaded): what a class's later jobs find.
        on_ray_warm = one_sweep("ray, warm workers", JobRegistry(backend=ray_backend), args)
    finally:
        ray_backend.close()
    return {
        "benchmark": "cluster_sweep",
        "image_size": args.image_size,
        "epochs": args.epochs,
        "points": args.points,
        "scratch": args.scratch,
        "weights": Path(args.weights).name,
        "in_process": here,
        "local_ray_2_workers": on_ray,
        "local_ray_2_workers_warm": on_ray_warm,
        "ray_connect_seconds": rounded(connect_seconds, 2),
        "ray_over_in_process": rounded(on_ray["seconds"] / here["seconds"], 3),
        "warm_ray_over_in_process": rounded(on_ray_warm["seconds"] / here["seconds"], 3),
        "notes": "seconds = start_sweep to its result; the Ray side's first jobs also start their worker "
        "processes and TensorFlow (connecting, timed apart, starts the local Ray itself)",
        **run_facts(load_before),
    }


if __name__ == "__main__":
    emit(main())
