"""Epoch time with cached features vs the frozen base recomputed every epoch.

Both sides run the product's own training, `tlcore.tf.training.train` (Keras
`fit`, one call per phase), on the same
decoded images, freeze point, head, optimizer and batch size; only
`TrainConfig.cache_features` differs:

* cached (True): the frozen prefix runs once over train + validation
  (`TrainResult.extract_seconds`), then every epoch trains the suffix on
  the features;
* recompute (False, "the seeds' way"): every epoch pushes the images through
  the whole model, frozen base included.

An epoch's time is the product's own `history[i]["seconds"]` (training
batches plus validation, timed by its fit callback). Epoch 1 carries one-off
tracing and fit's setup, so the speedup is
taken over the epochs after the first; the first epochs are reported too.

    python -m bench.feature_cache [--images 256] [--epochs 3] [--recompute-epochs 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from bench import _common  # noqa: E402

_common.setup()

from bench._common import (  # noqa: E402
    cpu_info,
    default_weights,
    emit,
    library_versions,
    load_average,
    median,
    note,
    repeated_image_set,
    rounded,
)

CONTENDED_BELOW = 0.9  # cpu share of a recompute epoch that had every core to itself


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="training images (sample images repeated)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--freeze-at", type=int, default=18, help="frozen backbone layers (18 = whole VGG16 base)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs on the cached side")
    parser.add_argument("--recompute-epochs", type=int, default=2, help="epochs on the recompute side (slow)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weights", default=default_weights(), help="weights file, 'imagenet' or 'none'")
    parser.add_argument("--data", type=Path, default=_common.SAMPLE_DATA)
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.recompute_epochs < 2:
        parser.error("both sides need at least 2 epochs: the speedup uses the epochs after the first")
    return args


class EpochClock:
    """Per-epoch validation time and CPU share, from the training loop's progress events.

    The CPU share (process CPU seconds / (wall seconds * cores)) tells how
    much of the machine the epoch had: other processes here make it noisy.
    """

    def __init__(self) -> None:
        self.last_batch_at = 0.0
        self.validation_seconds: list[float] = []
        self.cpu_share: list[float] = []
        self.cpu_seconds: list[float] = []
        self._mark = (time.perf_counter(), time.process_time())

    def __call__(self, event: object) -> None:
        from tlcore.tf.training import BatchEnd, EpochEnd, PhaseStart, StepProgress

        now = time.perf_counter()
        if isinstance(event, (PhaseStart, StepProgress)):
            # The next epoch starts once the phase has started and extraction is done.
            self._mark = (now, time.process_time())
        elif isinstance(event, BatchEnd):
            self.last_batch_at = now
        elif isinstance(event, EpochEnd):
            self.validation_seconds.append(now - self.last_batch_at)
            wall, cpu = now - self._mark[0], time.process_time() - self._mark[1]
            self.cpu_share.append(cpu / (wall * (os.cpu_count() or 1)))
            self.cpu_seconds.append(cpu)
            self._mark = (now, time.process_time())


def run_side(label: str, config: Any, data: Any) -> dict[str, Any]:
    """Train once with the product's loop and summarise its timings."""
    from tlcore.tf.training import COMPLETED, train

    note(f"{label}: training {config.epochs} epoch(s), cache_features={config.cache_features}")
    clock = EpochClock()
    result = train(config, data, progress=clock)
    if result.status != COMPLETED:
        raise RuntimeError(f"{label} run ended {result.status}: {result.reason}")
    epochs = [row["seconds"] for row in result.history]
    train_only = [s - v for s, v in zip(epochs, clock.validation_seconds)]
    note(
        f"{label}: path={result.paths}, extract {result.extract_seconds:.2f} s, epochs "
        + ", ".join(f"{s:.3f}" for s in epochs)
        + " s"
    )
    return {
        "path": result.paths[0],
        "extract_seconds": result.extract_seconds,
        "epoch_seconds": epochs,
        "train_batches_seconds": train_only,
        "validation_seconds": clock.validation_seconds,
        "cpu_share": clock.cpu_share,
        "cpu_seconds": clock.cpu_seconds,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    load_before = load_average()
    import keras  # noqa: F401  (import cost kept out of the timings below)

    from tlcore.config import TrainConfig
    from tlcore.data import VALIDATION, scan
    from tlcore.tf.pipeline import load_split
    from tlcore.tf.training import PreparedData

    note(f"decoding {args.data} at {args.image_size} px, repeating the training images to {args.images}")
    info = scan(args.data)
    data = PreparedData(
        info,
        train=repeated_image_set(args.images, args.image_size, args.data),
        validation=load_split(info, VALIDATION, args.image_size),
    )
    base = TrainConfig(
        weights=args.weights,
        image_size=args.image_size,
        batch_size=args.batch_size,
        freeze_at=args.freeze_at,
        epochs=args.epochs,
    )
    cached = run_side("cached", base.replace(cache_features=True), data)
    recompute = run_side("recompute", base.replace(cache_features=False, epochs=args.recompute_epochs), data)
    if cached["path"] != "cached":
        raise RuntimeError(f"the cached side took the {cached['path']} path; lower --images or --image-size")

    cached_later = median(cached["epoch_seconds"][1:])
    recompute_later = median(recompute["epoch_seconds"][1:])
    # Totals over the epochs both sides ran, so no epoch time is extrapolated.
    common = min(args.epochs, args.recompute_epochs)
    cached_total = cached["extract_seconds"] + sum(cached["epoch_seconds"][:common])
    recompute_total = sum(recompute["epoch_seconds"][:common])
    # The recompute side is compute-bound on all cores; when other processes took part of
    # the CPU, its CPU seconds spread over all cores estimate the epoch on a quiet machine.
    cores = os.cpu_count() or 1
    recompute_share = min(recompute["cpu_share"][1:])
    recompute_quiet = median(recompute["cpu_seconds"][1:]) / cores
    contended = recompute_share < CONTENDED_BELOW
    if contended:
        note(
            f"other processes took CPU during the recompute epochs (cpu share {recompute_share:.2f}): "
            f"speedup_quiet_estimate uses {recompute_quiet:.1f} s instead of {recompute_later:.1f} s"
        )
    return {
        "benchmark": "feature_cache",
        "date": _common.BENCH_DATE,
        "image_size": args.image_size,
        "images": args.images,
        "validation_images": len(data.validation),
        "freeze_at": args.freeze_at,
        "batch_size": args.batch_size,
        "weights": os.path.basename(args.weights),
        "epochs": args.epochs,
        "recompute_epochs": args.recompute_epochs,
        "extraction_seconds": rounded(cached["extract_seconds"]),
        "extraction_images": args.images + len(data.validation),
        "cached_epoch_seconds": rounded(cached_later),
        "recompute_epoch_seconds": rounded(recompute_later),
        "speedup": rounded(recompute_later / cached_later, 1),
        "speedup_goal": 50,
        "speedup_meets_goal": recompute_later / cached_later >= 50,
        "contended": contended,
        "recompute_epoch_seconds_quiet_estimate": rounded(recompute_quiet),
        "speedup_quiet_estimate": rounded(recompute_quiet / cached_later, 1),
        "cached_first_epoch_seconds": rounded(cached["epoch_seconds"][0]),
        "recompute_first_epoch_seconds": rounded(recompute["epoch_seconds"][0]),
        "first_epoch_speedup": rounded(recompute["epoch_seconds"][0] / cached["epoch_seconds"][0], 1),
        "speedup_including_extraction": rounded(recompute_total / cached_total, 2),
        "speedup_including_extraction_over_epochs": common,
        "cached": {k: [rounded(s) for s in v] for k, v in cached.items() if isinstance(v, list)},
        "recompute": {k: [rounded(s) for s in v] for k, v in recompute.items() if isinstance(v, list)},
        "notes": (
            "epoch seconds = tlcore.tf.training.train history 'seconds' (training batches + validation); "
            "cached/recompute_epoch_seconds and speedup use the median of the epochs after the first; "
            "speedup_including_extraction = recompute total / (extraction + cached total) over the first "
            f"{common} epochs; "
            "cpu_share = process CPU seconds / (wall seconds * cores), under 0.9 on the recompute side when other "
            "processes shared the CPU (contended); *_quiet_estimate = recompute CPU seconds / cores"
        ),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "cpu": cpu_info(),
        "versions": library_versions(),
        "total_seconds": rounded(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    emit(main())
