"""One measured training with whichever `tlcore` is on the import path: a side of a before/after benchmark.

`bench.small_data` and `bench.defaults` run this file as a subprocess, once with PYTHONPATH on this
repository and once on an older commit's tree (`bench._common.code_at`), so both sides run the same
measurement. It imports only the standard library and the `tlcore` API both versions share, and prints one
JSON object. Every run gets a fresh runs folder and feature store: nothing is reused between sides.

    python bench/training_side.py CASE --weights W [--seed S] [--image-size S] [--data DIR] [--score-on DIR]

CASE: a default to train (`head`, `block5`, `blocks4-5`, `everything`, `preset:NAME`, `sweep`), or
`first-loss` (the loss of fresh models before any update, at freeze points 18, 14 and 10, with the weights
given and with random weights).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHORTCUTS = {"head": 18, "block5": 14, "blocks4-5": 10, "everything": 0}
FIRST_LOSS_POINTS = (18, 14, 10)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--seeds", type=int, default=5, help="first-loss: models per freeze point and weights")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--data", type=Path, required=True, help="the dataset trained on")
    parser.add_argument("--score-on", type=Path, help="score the model on this folder's validation split too")
    return parser.parse_args(argv)


def _score(model: Any, folder: Path, class_names: list[str], image_size: int) -> float:
    """The model's accuracy on `folder`'s validation split (images neither training nor early stopping saw)."""
    from tlcore.data import VALIDATION, scan
    from tlcore.tf.inference import evaluate
    from tlcore.tf.pipeline import load_split

    info = scan(folder)
    if info.class_names != class_names:
        raise SystemExit(f"{folder} has classes {info.class_names}, the model {class_names}")
    return float(evaluate(model, load_split(info, VALIDATION, image_size), class_names).accuracy)


def _config(args: argparse.Namespace) -> Any:
    from tlcore.config import TrainConfig

    base = TrainConfig(weights=args.weights, image_size=args.image_size, seed=args.seed)
    if args.case in SHORTCUTS:
        from tlcore.advisor import train_down_to

        return train_down_to(base, SHORTCUTS[args.case])
    if args.case.startswith("preset:"):
        from tlcore.presets import apply_preset

        return apply_preset(args.case.split(":", 1)[1], weights=args.weights, seed=args.seed)
    raise SystemExit(f"unknown case {args.case!r}")


def train_case(args: argparse.Namespace, runs: Path) -> dict[str, Any]:
    """Train one default on the data; its wall time from scan to saved model, its validation accuracy."""
    from tlcore.data import scan
    from tlcore.runs import RunStore
    from tlcore.tf.training import train_and_record

    config = _config(args)
    started = time.perf_counter()
    info = scan(args.data)
    result, _run = train_and_record(config, info, RunStore(runs))
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "status": result.status,
        "epochs": len(result.history),
        "final": result.final,
        "reason": result.reason,
        "image_size": config.image_size,
    }
    if args.score_on is not None:
        out["score"] = _score(result.model, args.score_on, info.class_names, config.image_size)
    return out


def sweep_case(args: argparse.Namespace, runs: Path) -> dict[str, Any]:
    """The default sweep (`tlcore.sweep.sweep_config`'s settings, every default point and from scratch)."""
    from tlcore.data import scan
    from tlcore.runs import RunStore
    from tlcore.sweep import DEFAULT_IMAGE_SIZE, DEFAULT_POINTS, sweep_config
    from tlcore.tf.sweep import run_sweep

    started = time.perf_counter()
    base = sweep_config(args.weights, DEFAULT_IMAGE_SIZE, seed=args.seed)
    result = run_sweep(base, scan(args.data), list(DEFAULT_POINTS), store=RunStore(runs))
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "status": result.status,
        "points": {p.label: p.final_val_accuracy for p in result.points},
        "score": sum(p.final_val_accuracy or 0.0 for p in result.points) / max(1, len(result.points)),
    }


def first_loss(args: argparse.Namespace) -> dict[str, Any]:
    """Mean loss of `--seeds` fresh models on the training images, before any update (inference mode)."""
    import keras

    from tlcore.config import TrainConfig
    from tlcore.data import scan
    from tlcore.tf.pipeline import make_dataset
    from tlcore.tf.training import build_for, compile_for, prepare_data

    info = scan(args.data)
    data = prepare_data(info, args.image_size)
    chance = math.log(len(info.class_names))
    rows = []
    for weights in (args.weights, "none"):
        for freeze_at in FIRST_LOSS_POINTS:
            losses = []
            for seed in range(args.seeds):
                config = TrainConfig(weights=weights, image_size=args.image_size, freeze_at=freeze_at, seed=seed)
                model = build_for(config, len(info.class_names))
                compile_for(model, config, config.learning_rate)
                losses.append(float(model.evaluate(make_dataset(data.train, 32), verbose=0)[0]))
                keras.backend.clear_session()
            mean = sum(losses) / len(losses)
            rows.append(
                {
                    "weights": "random" if weights == "none" else "pretrained",
                    "freeze_at": freeze_at,
                    "losses": [round(v, 4) for v in losses],
                    "mean": round(mean, 4),
                    "ratio_to_ln_classes": round(mean / chance, 3),
                }
            )
    return {"ln_classes": round(chance, 4), "rows": rows}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.case == "first-loss":
        return first_loss(args)
    with tempfile.TemporaryDirectory(prefix="tllab-side-") as tmp:
        runs = Path(tmp) / "runs"
        os.environ["TLLAB_CACHE_DIR"] = str(Path(tmp) / "features")  # a fresh feature store for every run
        return sweep_case(args, runs) if args.case == "sweep" else train_case(args, runs)


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main()) + "\n")
