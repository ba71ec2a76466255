"""The feature store's goal: a second run with the same data and freeze point and another head.

Two runs through the product's own `train_and_record` on the same dataset,
image size, weights and freeze point, in a fresh runs folder: the first
extracts the frozen features (and keeps them in the store), the second
changes only the head (dropout, dense size) and reads them back. Printed side
by side: each run's total seconds and the seconds it spent extracting.

Goals (issue "Never compute the same features twice"): the second run spends
<= 5 % of the first's extraction time extracting, and finishes in <= 25 % of
the first's total time.

    python -m bench.feature_store [--image-size 128] [--epochs 5] [--freeze-at 18]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _common

_common.setup()

from bench._common import default_weights, emit, load_average, note, rounded, run_facts  # noqa: E402

EXTRACT_GOAL, TOTAL_GOAL = 0.05, 0.25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--freeze-at", type=int, default=18)
    parser.add_argument("--weights", default=default_weights(), help="weights file, 'imagenet' or 'none'")
    parser.add_argument("--data", type=Path, default=_common.SAMPLE_DATA)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_before = load_average()
    import keras  # noqa: F401  (import cost kept out of the timings)

    from tlcore.config import HeadConfig, TrainConfig
    from tlcore.data import scan
    from tlcore.runs import RunStore
    from tlcore.tf.training import train_and_record

    info = scan(args.data)
    store = RunStore(Path(tempfile.mkdtemp(prefix="tllab-bench-store-")) / "runs")
    first = TrainConfig(weights=args.weights, image_size=args.image_size, epochs=args.epochs, freeze_at=args.freeze_at)
    second = first.replace(head=HeadConfig(dense=(128,), dropout=0.2))
    runs: dict[str, dict[str, Any]] = {}
    for label, config in (("first", first), ("second", second)):
        note(f"{label} run: head {config.head}")
        t0 = time.perf_counter()
        result, _run = train_and_record(config, info, store)
        runs[label] = {
            "seconds": time.perf_counter() - t0,
            "extract_seconds": result.extract_seconds,
            "train_seconds": result.train_seconds,
            "features": result.features,
            "val_accuracy": result.final.get("val_accuracy"),
        }
        note(f"{label}: {runs[label]['seconds']:.1f} s, extracting {result.extract_seconds:.1f} s, {result.features}")
    extract_ratio = runs["second"]["extract_seconds"] / runs["first"]["extract_seconds"]
    total_ratio = runs["second"]["seconds"] / runs["first"]["seconds"]
    return {
        "benchmark": "feature_store",
        "image_size": args.image_size,
        "epochs": args.epochs,
        "freeze_at": args.freeze_at,
        "weights": Path(args.weights).name,
        "images": info.num_images(),
        "runs": {
            label: {k: rounded(v) if isinstance(v, float) else v for k, v in r.items()} for label, r in runs.items()
        },
        "second_extract_over_first": rounded(extract_ratio),
        "second_extract_goal": EXTRACT_GOAL,
        "second_total_over_first": rounded(total_ratio),
        "second_total_goal": TOTAL_GOAL,
        "meets_goals": extract_ratio <= EXTRACT_GOAL and total_ratio <= TOTAL_GOAL,
        "notes": "seconds = train_and_record wall time (building the model, decoding, extracting or reading "
        "the features, training, saving); the second run changes only the head",
        **run_facts(load_before),
    }


if __name__ == "__main__":
    emit(main())
