"""The learning-rate finder on the sample data: the head alone against k=14, and where 1e-4 and 1e-3 fall.

Four sweeps, each as the dashboard's button runs it (`find_learning_rate` on the
decoded sample data, the default caps): freeze 18, the head alone; phase 2 of
the "Train block 5 + head" shortcut (the head trained first as phase 1 says,
then k=14); a plain k=14 config (a new head and block 5 together); and the
same with feature caching off. Training's route rule caches the frozen
layers' output whenever augmentation is off, block 5 included at k=14, so only
the last sweep runs end to end. For each: the route, the suggested rate, the
minimum's rate / 10, where 1e-4 and 1e-3 fall on the curve, steps and
seconds (decoding, preparation and the sweep: how long the chart takes to appear).

Run: python -m bench.lr_finder [--image-size 128] [--max-seconds 60] [--max-steps 100]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench._common import SAMPLE_DATA, cpu_info, default_weights, emit, library_versions, load_average, note, setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--max-seconds", type=float, default=None, help="the sweep's time cap (default: the finder's)")
    parser.add_argument("--max-steps", type=int, default=None, help="the sweep's step cap (default: the finder's)")
    args = parser.parse_args()
    setup()
    from tlcore.advisor import train_down_to
    from tlcore.config import TrainConfig
    from tlcore.data import scan
    from tlcore.lr_finder import DEFAULT_MAX_SECONDS, DEFAULT_MAX_STEPS, format_rate
    from tlcore.tf.lr_finder import find_learning_rate
    from tlcore.tf.training import prepare_data

    weights = default_weights()
    base = TrainConfig(weights=weights, image_size=args.image_size)
    t0 = time.perf_counter()
    data = prepare_data(scan(SAMPLE_DATA), args.image_size)
    decode_seconds = time.perf_counter() - t0
    max_steps: int = args.max_steps or DEFAULT_MAX_STEPS
    max_seconds: float = args.max_seconds or DEFAULT_MAX_SECONDS
    caps = {"max_seconds": max_seconds, "max_steps": max_steps}
    sweeps = [
        ("head only (freeze 18)", base, 1),
        ("Train block 5 + head, phase 2 (k=14)", train_down_to(base, 14), 2),
        ("plain k=14 (new head and block 5 together)", base.replace(freeze_at=14), 1),
        ("plain k=14, feature caching off (end to end)", base.replace(freeze_at=14, cache_features=False), 1),
    ]
    results: list[dict[str, Any]] = []
    for label, config, phase in sweeps:
        note(f"{label}: {config.freeze_at=} {config.fine_tune=} phase {phase}")
        started = time.perf_counter()
        result = find_learning_rate(config, data, phase=phase, max_steps=max_steps, max_seconds=max_seconds)
        wall = time.perf_counter() - started
        suggested, minimum = result.suggested_rate, result.minimum_rate
        row = {
            "sweep": label,
            "route": result.route,
            "phase": result.phase,
            "freeze_at": result.freeze_at,
            "steps": result.steps,
            "planned_steps": result.planned_steps,
            "stop_reason": result.stop_reason,
            "suggested_rate": suggested and format_rate(suggested),
            "minimum_loss_rate_over_10": minimum and format_rate(minimum / 10),
            "minimum_smoothed_loss": result.minimum_loss and round(result.minimum_loss, 4),
            "first_smoothed_loss": round(result.smoothed[0], 4) if result.smoothed else None,
            "marked": [result.marked_text(r) for r in result.marked_rates],
            "sweep_seconds": round(result.seconds, 1),
            "prepare_seconds": round(result.prepare_seconds, 1),
            "seconds_to_appear": round(decode_seconds + wall, 1),
        }
        note(str(row))
        results.append(row)
    emit(
        {
            "benchmark": "lr_finder",
            "weights": weights,
            "image_size": args.image_size,
            "train_images": len(data.train),
            "decode_seconds": round(decode_seconds, 1),
            "caps": caps,
            "sweeps": results,
            "cpu": cpu_info(),
            "load_average": load_average(),
            "versions": library_versions(),
        }
    )


if __name__ == "__main__":
    main()
