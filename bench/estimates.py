"""How close the time estimate comes to the time a run takes, when the speed comes from runs of other settings.

Three settings, as a class runs them: head only at 128 px, block 5 in two phases (head, then block 5 + head)
at 96 px and from scratch at 96 px, each "cold" (an empty feature store) and "stored" (the features kept by
the cold run), `--reps` times, on the bundled sample with the ImageNet weights file (from scratch: random
weights). A first round runs each setting once so that every setting has runs of the others to be estimated
from. Each run is then estimated, before it starts, from the speed (`tlcore.speed.measure`) of the last runs
of the *other* settings only, and beside it the arithmetic estimate (a NumPy matmul x a constant) the lab
used before; the error is estimate / actual - 1, where actual is the run's whole wall time
(`train_and_record`: building the model to saving it). Goal: every estimate from measured speed within
±30 %.

    python -m bench.estimates [--reps 3] [--data sample_data]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import SAMPLE_DATA, default_weights, emit, load_average, note, rounded, run_facts, setup

GOAL = 0.30  # |estimate / actual - 1|
RECENT = 10  # the runs the speed is measured on, as tlcore.speed.RECENT_RUNS


@dataclass(frozen=True)
class Setting:
    name: str
    options: dict[str, Any]


def settings(weights: str) -> list[Setting]:
    from tlcore.config import FineTuneConfig

    return [
        Setting("head only, 128 px", {"image_size": 128, "freeze_at": 18, "weights": weights}),
        Setting(
            "block 5 two-phase, 96 px",
            {"image_size": 96, "freeze_at": 18, "weights": weights, "fine_tune": FineTuneConfig(freeze_at=14)},
        ),
        Setting("from scratch, 96 px", {"image_size": 96, "freeze_at": 0, "weights": "none"}),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--data", type=Path, default=SAMPLE_DATA)
    return parser.parse_args(argv)


def error(estimated: float, actual: float) -> float:
    """estimate / actual - 1: +0.2 is 20 % too long, -0.2 20 % too short."""
    return estimated / actual - 1.0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    setup()
    load_before = load_average()
    from tlcore.config import TrainConfig
    from tlcore.data import scan
    from tlcore.estimate import estimate, machine_gflops
    from tlcore.feature_store import FeatureStore, features_stored
    from tlcore.runs import RunStore
    from tlcore.speed import Speed, measure
    from tlcore.tf.training import train_and_record

    info = scan(args.data)
    n_train, n_val = info.num_images("train"), info.num_images("validation")
    arithmetic = Speed.arithmetic(machine_gflops())
    work = Path(tempfile.mkdtemp(prefix="tllab-bench-estimates-"))
    store = RunStore(work / "runs")
    done: list[tuple[str, Any]] = []  # (setting name, record), oldest first
    rows: list[dict[str, Any]] = []

    def run(setting: Setting, condition: str, features: FeatureStore, measured: bool) -> None:
        config = TrainConfig(**setting.options)
        others = [record for name, record in done if name != setting.name][-RECENT:]
        speed = measure(others, arithmetic)
        stored = features_stored(features, config, info.fingerprint())  # what the run will find
        guess = estimate(config, n_train, n_val, speed, stored=stored).total_seconds
        old_guess = estimate(config, n_train, n_val, arithmetic, stored=stored).total_seconds
        t0 = time.perf_counter()
        _, recorded = train_and_record(config, info, store, features=features)
        wall = time.perf_counter() - t0
        record = store.load(recorded.run_id)
        done.append((setting.name, record))
        note(f"{setting.name}, {condition}: {wall:.1f} s (estimated {guess:.1f} s from {speed.runs} other runs)")
        if measured:
            rows.append(
                {
                    "setting": setting.name,
                    "condition": condition,
                    "actual_s": round(record.seconds or wall, 2),
                    "estimate_s": round(guess, 2),
                    "error": rounded(error(guess, record.seconds or wall), 3),
                    "arithmetic_estimate_s": round(old_guess, 2),
                    "arithmetic_error": rounded(error(old_guess, record.seconds or wall), 3),
                    "speed_from_runs": speed.runs,
                    "speed": speed.describe(),
                }
            )

    all_settings = settings(default_weights())
    note(f"warm-up: each setting once, {n_train} training and {n_val} validation images")
    for setting in all_settings:
        run(setting, "cold", FeatureStore(work / "features-warm-up"), measured=False)
    for rep in range(args.reps):
        for setting in all_settings:
            features = FeatureStore(work / f"features-{rep}-{setting.name}")
            for condition in ("cold", "stored"):
                run(setting, condition, features, measured=True)

    worst = max(abs(r["error"]) for r in rows)
    result = {
        "benchmark": "estimates",
        "images": {"train": n_train, "validation": n_val},
        "reps": args.reps,
        "runs": rows,
        "per_setting": _per_setting(rows),
        "worst_error": round(worst, 3),
        "worst_arithmetic_error": round(max(abs(r["arithmetic_error"]) for r in rows), 3),
        "goal": {"within": GOAL, "met": worst <= GOAL},
        **run_facts(load_before),
    }
    emit(result)
    return result


def _per_setting(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per setting and condition: mean actual and estimated seconds, and the errors of each repetition."""
    out = []
    for key in dict.fromkeys((r["setting"], r["condition"]) for r in rows):
        mine = [r for r in rows if (r["setting"], r["condition"]) == key]
        out.append(
            {
                "setting": key[0],
                "condition": key[1],
                "actual_s_mean": round(sum(r["actual_s"] for r in mine) / len(mine), 2),
                "estimate_s_mean": round(sum(r["estimate_s"] for r in mine) / len(mine), 2),
                "errors": [r["error"] for r in mine],
                "arithmetic_errors": [r["arithmetic_error"] for r in mine],
            }
        )
    return out


if __name__ == "__main__":
    main()
