"""How long "explained by examples" and CKA take to appear, on the bundled sample with the ImageNet weights.

Trains one head-only run at 128 px (the lab's defaults) into a temporary runs folder, then, in this process
as the Inference page does with its model loaded: the first view of an image's five nearest training images
(every training image through VGG16 once, kept in the run's folder), a later view in a fresh process state
(the kept vectors read back), and the next images. Goal: first view <= 10 s, later ones <= 2 s.

Then what the Runs page's "What fine-tuning changed" computes with its CKA box ticked (`weight_changes(...,
cka=True)`, the starting model rebuilt, both models through the 50 validation images layer by layer), for
two more runs at 128 px, as the Model page's "Block 5 + head" and "Everything" buttons set them with
pretrained weights: the head first (5 epochs), then block 5, or every layer, at 1e-5 for 3: the seconds,
and each conv layer's CKA.

    python -m bench.examples_views [--image-size 128] [--images 5] [--no-cka]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._common import SAMPLE_DATA, default_weights, emit, load_average, note, rounded, run_facts, setup

if TYPE_CHECKING:
    from tlcore.data import DatasetInfo

FIRST_GOAL_S, LATER_GOAL_S = 10.0, 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=5, help="validation images asked about after the first")
    parser.add_argument("--no-cka", action="store_true", help="skip the two fine-tuned runs and their CKA")
    args = parser.parse_args()
    setup()
    load_before = load_average()
    from tlcore.config import TrainConfig
    from tlcore.data import scan
    from tlcore.run_folder import load_record
    from tlcore.runs import RunStore
    from tlcore.tf.model import load_run_model
    from tlcore.tf.neighbours import Examples
    from tlcore.tf.training import train_and_record

    info = scan(SAMPLE_DATA)
    queries = [str(p) for p in info.items("validation")[0]][: args.images + 1]
    with tempfile.TemporaryDirectory(prefix="tllab-bench-examples-") as tmp:
        config = TrainConfig(weights=default_weights(), image_size=args.image_size)
        result, run = train_and_record(config, info, RunStore(Path(tmp)))
        note(f"trained {run.run_dir.name}: {result.status}, val_accuracy {result.final.get('val_accuracy')}")
        record, model = load_record(run.run_dir), load_run_model(run.run_dir)

        started = time.perf_counter()
        first = Examples.of(run.run_dir, record, model)
        first.nearest(queries[0])
        first_s = time.perf_counter() - started
        note(f"first view: {first_s:.2f} s ({len(record.train_files or ())} training images through VGG16)")

        started = time.perf_counter()
        again = Examples.of(run.run_dir, record, model)  # what a new session (or a restarted server) does
        again.nearest(queries[1])
        later_s = time.perf_counter() - started
        next_images = []
        for query in queries[2:]:
            started = time.perf_counter()
            again.nearest(query)
            next_images.append(time.perf_counter() - started)
        note(f"later view: {later_s:.2f} s; each next image {max(next_images, default=0):.2f} s at most")
        cka = {} if args.no_cka else cka_views(info, Path(tmp), args.image_size)
    emit(
        {
            "benchmark": "examples_views",
            **run_facts(load_before),
            "image_size": args.image_size,
            "training_images": len(record.train_files or ()),
            "first_view_s": rounded(first_s, 3),
            "later_view_s": rounded(later_s, 3),
            "next_image_max_s": rounded(max(next_images, default=0.0), 3),
            "cka": cka,
            "goal": {
                "first_under_s": FIRST_GOAL_S,
                "later_under_s": LATER_GOAL_S,
                "met": first_s <= FIRST_GOAL_S and later_s <= LATER_GOAL_S,
            },
        }
    )


def cka_views(info: DatasetInfo, runs_dir: Path, image_size: int) -> dict[str, Any]:
    """Train the block-5 and the everything run; time weight_changes with CKA on each (first call in this
    process: the page's first view of it) and read each conv layer's CKA."""
    from tlcore.backbone_facts import BLOCK5, EVERYTHING
    from tlcore.config import FineTuneConfig, TrainConfig
    from tlcore.runs import RunStore
    from tlcore.tf.training import train_and_record
    from tlcore.tf.weight_changes import weight_changes

    head_first = TrainConfig(weights=default_weights(), image_size=image_size)
    recipes = {
        "block 5 + head": head_first.replace(fine_tune=FineTuneConfig(freeze_at=BLOCK5)),
        "everything": head_first.replace(fine_tune=FineTuneConfig(freeze_at=EVERYTHING)),
    }
    measured: dict[str, Any] = {}
    for name, config in recipes.items():
        result, run = train_and_record(config, info, RunStore(runs_dir))
        started = time.perf_counter()
        changes = weight_changes(run.run_dir, cka=True)
        seconds = time.perf_counter() - started
        assert changes.representations is not None
        note(f"{name}: val_accuracy {result.final.get('val_accuracy')}, CKA in {seconds:.1f} s")
        measured[name] = {
            "val_accuracy": result.final.get("val_accuracy"),
            "cka_view_s": rounded(seconds, 2),
            "cka": {layer: round(value, 6) for layer, value in changes.representations.by_layer().items()},
            "summary": changes.representations.summary,
        }
    return measured


if __name__ == "__main__":
    main()
