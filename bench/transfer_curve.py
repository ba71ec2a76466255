"""The transfer curve at its defaults (96 px, 5 epochs, points 0..18): how long, how much memory, what it found.

Each variant runs `python -m tlcore transfer-curve --json` in a process of its own, on a fresh runs folder
(so every frozen prefix is extracted, as for a student's first curve), one after another, and is printed
side by side: wall time, the estimate the Runs page shows before it starts, the process's peak RSS, and
each condition's mean (min-max) at each freeze point. A variant is PRECISION:REPEATS; "fastest" is what the
page and the command choose (mixed bfloat16 on a CPU with bfloat16 instructions, else float32).

    python -m bench.transfer_curve [--variants fastest:3,float32:1] [--data sample_data]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _common

_common.setup()

from bench._common import SAMPLE_DATA, cpu_info, default_weights, emit, load_average, note, run_facts  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="fastest:3,float32:1", help="PRECISION:REPEATS, comma-separated")
    parser.add_argument("--data", type=Path, default=SAMPLE_DATA)
    parser.add_argument("--weights", default=default_weights(), help="weights file, 'imagenet' or 'none'")
    return parser.parse_args(argv)


def page_estimate(precision: str, repeats: int, data: Path) -> float:
    """The seconds the Runs page would show before the curve starts (this machine's arithmetic speed)."""
    from tlcore.config import TrainConfig
    from tlcore.data import TRAIN, VALIDATION, scan
    from tlcore.devices import report_without_tensorflow
    from tlcore.estimate import estimate_many
    from tlcore.speed import machine_speed
    from tlcore.transfer_curve import DEFAULT_EPOCHS, DEFAULT_IMAGE_SIZE, DEFAULT_POINTS, FASTEST, planned_runs

    chosen = report_without_tensorflow().fastest_precision() if precision == FASTEST else precision
    base = TrainConfig(image_size=DEFAULT_IMAGE_SIZE, epochs=DEFAULT_EPOCHS, precision=chosen)
    info = scan(data)
    with tempfile.TemporaryDirectory(prefix="tllab-bench-") as empty:  # no recent runs: the arithmetic speed
        speed = machine_speed(empty)
    configs = [config for *_, config in planned_runs(base, DEFAULT_POINTS, repeats)]
    return estimate_many(configs, info.num_images(TRAIN), info.num_images(VALIDATION), speed)


def run_variant(precision: str, repeats: int, args: argparse.Namespace) -> dict[str, Any]:
    """One curve in a process of its own: its JSON, wall time and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="tllab-bench-curve-") as runs:
        command = [sys.executable, "-m", "tlcore", "transfer-curve", "--data", str(args.data)]
        command += ["--weights", args.weights, "--repeats", str(repeats), "--precision", precision]
        command += ["--runs-dir", runs, "--json"]
        started = time.perf_counter()
        with tempfile.TemporaryFile() as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - started
            out.seek(0)
            text = out.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"{precision}:{repeats} exited {process.returncode}")
    curve = json.loads(text)
    return {
        "precision": curve["precision"],
        "repeats": repeats,
        "wall_s": round(wall, 1),
        "estimate_s": round(page_estimate(precision, repeats, args.data), 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "boundaries": curve["boundaries"],
        "summary": curve["summary"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    cpu = cpu_info()
    note(f"CPU: {cpu['model_name']} ({cpu['affinity']} cores; bfloat16 instructions: {cpu['bfloat16']})")
    load_before = load_average()
    variants = []
    for item in args.variants.split(","):
        precision, _, repeats = item.partition(":")
        result = run_variant(precision.strip(), int(repeats or 3), args)
        note(
            f"{result['precision']}, {result['repeats']} repeat(s): {result['wall_s'] / 60:.1f} min "
            f"(page estimate {result['estimate_s'] / 60:.1f} min), peak RSS {result['peak_rss_mb']} MB"
        )
        variants.append(result)
    note("\nvalidation accuracy, mean (min-max): " + " | ".join(f"{v['precision']} x{v['repeats']}" for v in variants))
    conditions = ("kept", "reinitialised", "fine_tuned", "random")
    for i, boundary in enumerate(variants[0]["boundaries"]):
        for condition in conditions:
            cells = []
            for v in variants:
                b = v["boundaries"][i][condition]
                cells.append(f"{b['mean']:.2f} ({b['min']:.2f}-{b['max']:.2f})")
            note(f"  n={boundary['freeze_at']:>2} {condition:<14} " + "   ".join(cells))
    result = {"cpu": cpu, "variants": variants, **run_facts(load_before)}
    emit(result)
    return result


if __name__ == "__main__":
    main()
