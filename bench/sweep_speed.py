"""The default freeze sweep, the code before the feature-store issue against today's, side by side.

Both sides run `tlcore.tf.sweep.run_sweep` on the sample data at 96 px, points
18, 14, 10, 6, 3, 0 and the from-scratch baseline, 5 epochs each, in a fresh
runs folder (an empty feature store), each in its own process: the earlier
commit from a temporary git worktree of it, today's from this checkout. Per
point: its seconds, the seconds it spent extracting frozen features, its
epoch times and route; today's side also the one pass that extracts every
cached point's features at once.

Goal (issue "Never compute the same features twice"): today's sweep in
<= 0.7x the time of the commit before the issue.

    python -m bench.sweep_speed [--before COMMIT] [--image-size 96] [--epochs 5] [--points 18,14,10,6,3,0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__:  # python -m bench.sweep_speed: the comparison
    from bench import _common
else:  # run by path as a worker, with the code to measure first on PYTHONPATH
    sys.path.append(str(Path(__file__).resolve().parent.parent))
    from bench import _common

_common.setup()

BEFORE = "08a5a9b37bd315eb53bba8fb01851d0c95a4c65a"  # main before the feature-store issue's first commit
GOAL = 0.7


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--points", default="18,14,10,6,3,0")
    parser.add_argument("--weights", default=_common.default_weights())
    parser.add_argument("--worker", action="store_true", help="(internal) run one sweep and print its JSON")
    return parser.parse_args(argv)


def one_sweep(args: argparse.Namespace) -> dict[str, Any]:
    """The sweep with whichever tlcore is first on the import path."""
    import keras  # noqa: F401  (import cost kept out of the timing)

    import tlcore
    from tlcore.config import TrainConfig
    from tlcore.data import scan
    from tlcore.runs import RunStore
    from tlcore.tf.sweep import run_sweep

    info = scan(_common.SAMPLE_DATA)
    config = TrainConfig(weights=args.weights, image_size=args.image_size, epochs=args.epochs)
    store = RunStore(Path(tempfile.mkdtemp(prefix="tllab-bench-sweep-")) / "runs")
    points = [int(k) for k in args.points.split(",")]
    t0 = time.perf_counter()
    result = run_sweep(config, info, points, scratch=True, store=store)
    return {
        "code": str(Path(tlcore.__file__).resolve().parent.parent),
        "seconds": time.perf_counter() - t0,
        "decode_seconds": result.decode_seconds,
        "shared_points": getattr(result, "shared_points", []),
        "shared_extract_seconds": getattr(result, "shared_extract_seconds", 0.0),
        "points": [
            {
                "point": p.label,
                "seconds": round(p.seconds, 2),
                "extract_seconds": round(p.extract_seconds, 2),
                "epoch_seconds": None if p.epoch_seconds is None else round(p.epoch_seconds, 3),
                "path": p.route,
                "best_val_accuracy": p.best_val_accuracy,
            }
            for p in result.points
        ],
        "load_average_after": _common.load_average(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    passed = [f"--image-size={args.image_size}", f"--epochs={args.epochs}", f"--points={args.points}"]
    passed += [f"--weights={args.weights}", "--worker"]
    sides: dict[str, dict[str, Any]] = {}
    with _common.code_at(args.before) as before_root:
        for label, root in (("before", before_root), ("today", _common.REPO_ROOT)):
            _common.note(f"{label}: the default sweep with the code in {root}")
            sides[label] = {"load_average_before": _common.load_average()}
            sides[label].update(_common.run_worker(root, Path(__file__).resolve(), passed))
            _common.note(f"{label}: {sides[label]['seconds']:.1f} s")
    ratio = sides["today"]["seconds"] / sides["before"]["seconds"]
    by_point = [
        {"point": old["point"], "before_s": old["seconds"], "today_s": new["seconds"],
         "before_extract_s": old["extract_seconds"], "today_extract_s": new["extract_seconds"],
         "epoch_s_before": old["epoch_seconds"], "epoch_s_today": new["epoch_seconds"], "path": new["path"]}
        for old, new in zip(sides["before"]["points"], sides["today"]["points"])
    ]  # fmt: skip
    return {
        "benchmark": "sweep_speed",
        "before": args.before,
        "today": _common.git_commit(),
        "image_size": args.image_size,
        "epochs": args.epochs,
        "points": args.points,
        "weights": Path(args.weights).name,
        "seconds_before": round(sides["before"]["seconds"], 1),
        "seconds_today": round(sides["today"]["seconds"], 1),
        "today_over_before": round(ratio, 3),
        "goal": GOAL,
        "meets_goal": ratio <= GOAL,
        "today_one_pass": {
            "points": sides["today"]["shared_points"],
            "seconds": round(sides["today"]["shared_extract_seconds"], 2),
        },
        "by_point": by_point,
        "sides": sides,
        "cpu": _common.cpu_info(),
    }


if __name__ == "__main__":
    arguments = parse_args()
    print(json.dumps(one_sweep(arguments)) if arguments.worker else json.dumps(main(), indent=2))
