"""No default got worse: the head-only default, each block shortcut, each preset and the default sweep, now
and before issue 20, back to back on one machine.

Each case trains on the bundled sample (its own validation folder: 50 images) with the ImageNet weights
file, `--seeds` times (presets `--preset-seeds`), alternating which side goes first; every run starts with
an empty feature store (`bench/training_side.py`). A case got worse when its mean validation accuracy
fell by more than one validation image (0.02) or its mean wall time rose by more than 25 %.

    python -m bench.defaults [--seeds 3] [--preset-seeds 1] [--cases head,block5,...] [--baseline COMMIT]
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from bench._common import (
    REPO_ROOT,
    SAMPLE_DATA,
    code_at,
    default_weights,
    emit,
    load_average,
    note,
    run_facts,
    run_worker,
)
from bench.small_data import BASELINE, SIDE

CASES = ("head", "block5", "blocks4-5", "everything", "preset:seed-004", "preset:seed-000", "sweep")
ONE_IMAGE = 1 / 50  # the sample's validation images
TIME_TOLERANCE = 1.25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--preset-seeds", type=int, default=1)
    parser.add_argument("--weights", default=default_weights())
    parser.add_argument("--baseline", default=BASELINE)
    return parser.parse_args(argv)


def verdict(now: list[dict[str, Any]], before: list[dict[str, Any]]) -> dict[str, Any]:
    """Means of score and time on each side, and whether `now` is worse by the rule above."""
    score_now, score_before = (statistics.mean(r["score"] for r in side) for side in (now, before))
    time_now, time_before = (statistics.mean(r["seconds"] for r in side) for side in (now, before))
    return {
        "accuracy_now": round(score_now, 4),
        "accuracy_before": round(score_before, 4),
        "seconds_now": round(time_now, 1),
        "seconds_before": round(time_before, 1),
        "time_ratio": round(time_now / time_before, 3),
        "worse": score_now < score_before - ONE_IMAGE - 1e-9 or time_now > TIME_TOLERANCE * time_before,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_before = load_average()
    results: dict[str, Any] = {}
    turn = 0
    with code_at(args.baseline) as before:
        trees = {"now": REPO_ROOT, "before": before}
        for case in args.cases.split(","):
            seeds = args.preset_seeds if case.startswith("preset:") else args.seeds
            sides: dict[str, list[dict[str, Any]]] = {"now": [], "before": []}
            for seed in range(seeds):
                for side in ("now", "before") if turn % 2 == 0 else ("before", "now"):
                    note(f"{case}, seed {seed}: {side}")
                    options = ["--weights", args.weights, "--seed", str(seed), "--data", str(SAMPLE_DATA)]
                    if case != "sweep":
                        options += ["--score-on", str(SAMPLE_DATA)]
                    sides[side].append(run_worker(trees[side], SIDE, [case, *options]))
                turn += 1
            results[case] = {**verdict(sides["now"], sides["before"]), "runs": sides}
    return {
        "benchmark": "defaults",
        "cases": results,
        "any_worse": any(r["worse"] for r in results.values()),
        "settings": vars(args),
        **run_facts(load_before),
    }


if __name__ == "__main__":
    emit(main())
