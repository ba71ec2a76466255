"""A first try on a small photo set: five draws of 20 images a class, at the defaults, now and before.

Each draw (seeds 0-4) takes `--per-class` images of each class from `sample_data/train` into one flat
folder of class folders, so the lab makes its own train/validation split, as it does for a student's
photos. Each draw trains at the defaults (128 px, the ImageNet weights file) and its model is scored on
all 50 `sample_data/validation` images, which neither training nor early stopping sees. Beside it: the
loss before the first update (mean of 5 seeds at freeze points 18, 14 and 10, pretrained and random
weights) against ln(classes). Both run on this code and on `--baseline` (the commit before issue 20),
alternating, each side a subprocess (`bench/training_side.py`).

    python -m bench.small_data [--per-class 20] [--draws 5] [--image-size 128] [--baseline COMMIT]
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
from pathlib import Path
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

BASELINE = "f77cc4b21d2da40d9e3c6b56060beece71a98e46"  # the commit before issue 20 (defaults that learn on small data)
SIDE = REPO_ROOT / "bench" / "training_side.py"
ACCURACY_GOAL = 0.90  # every draw's model on the 50 held-out images
FIRST_LOSS_GOAL = (0.5, 1.5)  # the loss before the first update, as a multiple of ln(classes)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--weights", default=default_weights())
    parser.add_argument("--baseline", default=BASELINE, help="the commit to measure alongside")
    return parser.parse_args(argv)


def make_draw(seed: int, per_class: int, into: Path) -> Path:
    """`per_class` images of each sample class, drawn with `seed`, in one flat folder of class folders."""
    folder = into / f"draw-{seed}"
    for class_dir in sorted((SAMPLE_DATA / "train").iterdir()):
        files = sorted(p for p in class_dir.iterdir() if p.is_file())
        (folder / class_dir.name).mkdir(parents=True)
        for path in random.Random(seed).sample(files, per_class):
            shutil.copy2(path, folder / class_dir.name / path.name)
    return folder


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_before = load_average()
    common = ["--weights", args.weights, "--image-size", str(args.image_size)]
    draws: list[dict[str, Any]] = []
    first_loss: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tllab-small-") as tmp, code_at(args.baseline) as before:
        trees = {"now": REPO_ROOT, "before": before}
        for seed in range(args.draws):
            folder = make_draw(seed, args.per_class, Path(tmp))
            row: dict[str, Any] = {"draw": seed}
            for side in ("now", "before") if seed % 2 == 0 else ("before", "now"):
                note(f"draw {seed}: {side}")
                options = [*common, "--data", str(folder), "--score-on", str(SAMPLE_DATA)]
                out = run_worker(trees[side], SIDE, ["head", *options])
                row[side] = {key: out[key] for key in ("score", "epochs", "seconds", "reason")}
            draws.append(row)
        for side, tree in trees.items():
            note(f"loss before the first update: {side}")
            first_loss[side] = run_worker(tree, SIDE, ["first-loss", *common, "--data", str(Path(tmp) / "draw-0")])
    low, high = FIRST_LOSS_GOAL
    return {
        "benchmark": "small_data",
        "draws": draws,
        "accuracy_now": [d["now"]["score"] for d in draws],
        "accuracy_before": [d["before"]["score"] for d in draws],
        "accuracy_goal_met": all(d["now"]["score"] >= ACCURACY_GOAL for d in draws),
        "first_loss": first_loss,
        "first_loss_goal_met": all(low <= r["ratio_to_ln_classes"] <= high for r in first_loss["now"]["rows"]),
        "settings": {**vars(args), "validation_images_scored": 50},
        **run_facts(load_before),
    }


if __name__ == "__main__":
    emit(main())
