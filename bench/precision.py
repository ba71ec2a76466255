"""float32 against mixed_bfloat16 on this CPU, side by side: VGG16 feature extraction, a training epoch, accuracy.

For each precision (the config's `precision`, per-layer dtype policies, the
output and the loss in float32), through the product's own code:

- extraction: VGG16's conv base (freeze point 18) over `--images` in-memory
  sample images, batch 32, after one warm-up batch: images per second (best
  of `--repeats`);
- a head-only run on the sample data (ImageNet weights, cached features,
  `--epochs` epochs): its extraction and training seconds and final accuracy;
- one end-to-end epoch with block 5 training (freeze point 14, lr 1e-4) from
  a fresh model (ImageNet base, new head): its seconds and accuracy.

The two precisions alternate step by step, so a change in the machine's load
touches both. The CPU is printed first: bfloat16 runs natively only with
AVX-512 BF16 or AMX; without them TensorFlow emulates it (slower, said in the
output).

    python -m bench.precision [--image-size 128] [--images 128] [--epochs 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench import _common

_common.setup()

from bench._common import (  # noqa: E402
    SAMPLE_DATA,
    Stopwatch,
    cpu_info,
    default_weights,
    emit,
    load_average,
    note,
    repeated_image_set,
    rounded,
    run_facts,
)

PRECISIONS = ("float32", "mixed_bfloat16")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=128, help="images per extraction pass")
    parser.add_argument("--repeats", type=int, default=2, help="extraction passes; the best counts")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the head-only run")
    parser.add_argument("--weights", default=default_weights(), help="weights file, 'imagenet' or 'none'")
    parser.add_argument("--data", type=Path, default=SAMPLE_DATA)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    cpu = cpu_info()
    note(f"CPU: {cpu['model_name']} ({cpu['affinity']} cores, family/model {cpu['family_model']})")
    note(
        "bfloat16 instructions (AVX-512 BF16 / AMX): "
        + ("yes" if cpu["bfloat16"] else "NO: mixed_bfloat16 is emulated here, expect it slower than float32")
    )
    load_before = load_average()
    import keras  # noqa: F401  (import cost kept out of the timings)

    from tlcore.backbones import get_backbone
    from tlcore.config import TrainConfig
    from tlcore.data import scan
    from tlcore.tf.build import build_for
    from tlcore.tf.cached_route import cut, extract_features
    from tlcore.tf.devices import device_report
    from tlcore.tf.pipeline import prepare_data
    from tlcore.tf.training import train

    info = scan(args.data)
    data = prepare_data(info, args.image_size)
    images = repeated_image_set(args.images, args.image_size, args.data)
    base = TrainConfig(weights=args.weights, image_size=args.image_size, epochs=args.epochs)
    configs = {p: base.replace(precision=p) for p in PRECISIONS}
    out: dict[str, dict[str, Any]] = {p: {} for p in PRECISIONS}

    spec = get_backbone(base.backbone)
    prefixes = {p: cut(build_for(c, len(info.class_names)), 18, spec)[0] for p, c in configs.items()}
    assert images.images is not None  # repeated_image_set holds them in memory
    for prefix in prefixes.values():
        prefix.predict_on_batch(images.images[:32])  # warm-up: tracing and oneDNN's first-call setup
    for _ in range(args.repeats):
        for p, prefix in prefixes.items():
            with Stopwatch() as clock:
                extract_features(prefix, images, 32)
            rate = len(images) / clock.wall
            out[p]["extract_img_per_s"] = max(out[p].get("extract_img_per_s", 0.0), rate)
            out[p].setdefault("extract_cpu_share", []).append(rounded(clock.cpu_share, 2))
            note(f"{p}: extraction {rate:.1f} img/s (cpu share {clock.cpu_share:.2f})")

    for p, config in configs.items():
        with Stopwatch() as clock:
            head = train(config, data)
        out[p]["head_only"] = {
            "epochs": config.epochs,
            "extract_seconds": head.extract_seconds,
            "extract_img_per_s": (len(data.train) + len(data.validation)) / head.extract_seconds,
            "train_seconds": head.train_seconds,
            "seconds": clock.wall,
            "cpu_share": clock.cpu_share,
            "val_accuracy": head.final.get("val_accuracy"),
            "best_val_accuracy": head.final.get("best_val_accuracy"),
        }
        note(f"{p}: head only {out[p]['head_only']}")

    for p, config in configs.items():
        block5 = config.replace(freeze_at=14, epochs=1, learning_rate=1e-4, cache_features=False)
        with Stopwatch() as clock:
            tuned = train(block5, data)
        row = tuned.history[-1]
        out[p]["block5_epoch"] = {
            "seconds": row.seconds,
            "cpu_share": clock.cpu_share,
            "images_per_s": len(data.train) / row.seconds,
            "loss": row.loss,
            "val_accuracy": row.val_accuracy,
        }
        note(f"{p}: one end-to-end epoch, block 5 training: {out[p]['block5_epoch']}")

    for p in PRECISIONS:
        out[p] = json.loads(json.dumps(out[p]), parse_float=lambda text: round(float(text), 4))
    speedup = out["mixed_bfloat16"]["extract_img_per_s"] / out["float32"]["extract_img_per_s"]
    epoch_speedup = out["float32"]["block5_epoch"]["seconds"] / out["mixed_bfloat16"]["block5_epoch"]["seconds"]
    return {
        "benchmark": "precision",
        "image_size": args.image_size,
        "weights": Path(args.weights).name,
        "train_images": len(data.train),
        "validation_images": len(data.validation),
        "device": device_report().describe(),
        "results": out,
        "bfloat16_extraction_speedup": rounded(speedup, 2),
        "bfloat16_epoch_speedup": rounded(epoch_speedup, 2),
        "notes": "extract_img_per_s: best pass of the conv base (freeze point 18) over in-memory images, batch 32; "
        "head_only: the cached route (features extracted once, then the head trains); block5_epoch: one epoch "
        "end to end at freeze point 14 (training batches and validation)",
        **run_facts(load_before),
    }


if __name__ == "__main__":
    emit(main())
