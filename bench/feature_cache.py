"""Epoch time with cached features: against the frozen base recomputed every epoch, and against the code before.

Every side runs the product's own training, `tlcore.tf.training.train`, on
the same decoded images, freeze point, head, optimizer and batch size:

* cached (`cache_features=True`): the frozen prefix runs once over train +
  validation (`RunResult.extract_seconds`), then every epoch trains the
  layers above on the features: since issue 14 as compiled calls of several
  batches (`tlcore.tf.compiled_epochs`);
* recompute (`cache_features=False`, "the seeds' way"): every epoch pushes
  the images through the whole model, frozen base included;
* cached before issue 14 (`--baseline`, default the commit before it): the
  same cached measurement on that commit's code, where a cached epoch ran
  through Keras `fit` one batch per call. The commit is exported with
  `git archive` into a temporary folder; both cached sides then run as
  subprocesses of this same measurement (`--side cached`) with PYTHONPATH on
  their own tree, in alternating order (`--rounds`), so load drift on a
  shared machine hits both alike. Each side reports which `tlcore` it ran.

An epoch's time is the product's own `history[i]["seconds"]` (from the
epoch's start to its end: training batches and validation, timed by its
callback). Epoch 1 carries one-off tracing, so every figure uses the median
of the epochs after the first; the first epochs are reported too.

    python -m bench.feature_cache [--images 256] [--epochs 10] [--recompute-epochs 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _common

_common.setup()

from bench._common import (  # noqa: E402
    REPO_ROOT,
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
BASELINE = "08a5a9b37bd315eb53bba8fb01851d0c95a4c65a"  # the commit before issue 14 (compiled head epochs)
RECOMPUTE_SPEEDUP_GOAL = 500  # cached epoch against a recomputed one
COMPILED_SPEEDUP_GOAL = 5  # cached epoch now against the baseline's


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="training images (sample images repeated)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--freeze-at", type=int, default=18, help="frozen backbone layers (18 = whole VGG16 base)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs on each cached side")
    parser.add_argument("--recompute-epochs", type=int, default=2, help="epochs on the recompute side (slow)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weights", default=default_weights(), help="weights file, 'imagenet' or 'none'")
    parser.add_argument("--data", type=Path, default=_common.SAMPLE_DATA)
    parser.add_argument("--baseline", default=BASELINE, help="commit whose cached epochs to measure alongside")
    parser.add_argument("--rounds", type=int, default=2, help="cached runs per side, alternating")
    parser.add_argument("--side", choices=("all", "cached"), default="all", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.recompute_epochs < 2:
        parser.error("both sides need at least 2 epochs: the speedup uses the epochs after the first")
    return args


class EpochClock:
    """Per-epoch CPU share, compiled calls and the time after the last one, from the training loop's events.

    The CPU share (process CPU seconds / (wall seconds * cores)) tells how
    much of the machine the epoch had: other processes here make it noisy.
    """

    def __init__(self) -> None:
        self.last_batch_at = 0.0
        self.after_last_call_seconds: list[float] = []
        self.calls: list[int] = []
        self.cpu_share: list[float] = []
        self.cpu_seconds: list[float] = []
        self._calls = 0
        self._mark = (time.perf_counter(), time.process_time())

    def __call__(self, event: object) -> None:
        from tlcore.progress import BatchEnd, EpochEnd, PhaseStart, StepProgress

        now = time.perf_counter()
        if isinstance(event, (PhaseStart, StepProgress)):
            # The next epoch starts once the phase has started and extraction is done.
            self._mark = (now, time.process_time())
        elif isinstance(event, BatchEnd):
            self.last_batch_at = now
            self._calls += 1
        elif isinstance(event, EpochEnd):
            self.after_last_call_seconds.append(now - self.last_batch_at)
            self.calls.append(self._calls)
            self._calls = 0
            wall, cpu = now - self._mark[0], time.process_time() - self._mark[1]
            self.cpu_share.append(cpu / (wall * (os.cpu_count() or 1)))
            self.cpu_seconds.append(cpu)
            self._mark = (now, time.process_time())


def run_side(label: str, config: Any, data: Any) -> dict[str, Any]:
    """Train once with the product's loop and summarise its timings."""
    import tlcore
    from tlcore.tf.training import train

    note(f"{label}: training {config.epochs} epoch(s), cache_features={config.cache_features}")
    clock = EpochClock()
    result = train(config, data, progress=clock)
    if result.status != "completed":
        raise RuntimeError(f"{label} run ended {result.status}: {result.reason}")
    epochs = [row.seconds for row in result.history]
    note(
        f"{label}: path={result.routes}, extract {result.extract_seconds:.2f} s, epochs "
        + ", ".join(f"{s:.4f}" for s in epochs)
        + " s"
    )
    return {
        "tlcore": str(Path(tlcore.__file__).parent),
        "path": result.routes[0],
        "extract_seconds": result.extract_seconds,
        "epoch_seconds": epochs,
        "after_last_call_seconds": clock.after_last_call_seconds,
        "calls_per_epoch": clock.calls,
        "cpu_share": clock.cpu_share,
        "cpu_seconds": clock.cpu_seconds,
    }


def prepare(args: argparse.Namespace) -> tuple[Any, Any]:
    """(the decoded data, the base config) every side trains with."""
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
    config = TrainConfig(
        weights=args.weights,
        image_size=args.image_size,
        batch_size=args.batch_size,
        freeze_at=args.freeze_at,
        epochs=args.epochs,
    )
    return data, config


def cached_side(args: argparse.Namespace) -> dict[str, Any]:
    """The cached measurement alone, with whichever `tlcore` is on the import path (`--side cached`)."""
    data, config = prepare(args)
    side = run_side("cached", config.replace(cache_features=True), data)
    side["validation_images"] = len(data.validation)
    return side


def export_tree(commit: str, into: Path) -> Path:
    """This repository's files at `commit` (git archive), in `into`/tree."""
    tree = into / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit], capture_output=True)
    if archive.returncode:
        raise RuntimeError(f"git archive {commit} failed: {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))  # type: ignore[arg-type]
    return tree


def cached_side_of(tree: Path, runner: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run `--side cached` in a subprocess whose `tlcore` is `tree`'s; this benchmark's code comes from `runner`."""
    options = {
        "--images": args.images,
        "--image-size": args.image_size,
        "--freeze-at": args.freeze_at,
        "--epochs": args.epochs,
        "--batch-size": args.batch_size,
        "--weights": args.weights,
        "--data": args.data.resolve(),
        "--side": "cached",
    }
    command = [sys.executable, "-m", "bench.feature_cache", *(str(x) for item in options.items() for x in item)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, cwd=runner, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"the cached side on {tree} failed (exit {done.returncode}); its log is above")
    return json.loads(done.stdout)


def later_median(side: dict[str, Any]) -> float:
    """A side's epoch time: the median of its epochs after the first."""
    value = median(side["epoch_seconds"][1:])
    assert value is not None
    return value


def compare_cached(args: argparse.Namespace) -> dict[str, Any]:
    """The cached side now and at the baseline commit, `args.rounds` times each, alternating."""
    with tempfile.TemporaryDirectory(prefix="tllab-bench-") as tmp:
        folder = Path(tmp)
        baseline = export_tree(args.baseline, folder)
        runner = folder / "runner"
        runner.mkdir()
        (runner / "bench").symlink_to(REPO_ROOT / "bench", target_is_directory=True)
        trees = {"now": REPO_ROOT, "baseline": baseline}
        rounds: dict[str, list[dict[str, Any]]] = {"now": [], "baseline": []}
        for i in range(args.rounds):
            for name in ("now", "baseline") if i % 2 == 0 else ("baseline", "now"):
                note(f"round {i + 1}/{args.rounds}: cached side, {name} ({trees[name]})")
                rounds[name].append(cached_side_of(trees[name], runner, args))
    now = [later_median(side) for side in rounds["now"]]
    before = [later_median(side) for side in rounds["baseline"]]
    speedup = median(before) / median(now)  # type: ignore[operator]
    return {
        "sides": rounds,
        "now_epoch_seconds": [rounded(s, 5) for s in now],
        "baseline_epoch_seconds": [rounded(s, 5) for s in before],
        "speedup": rounded(speedup, 2),
        "speedup_per_round": [rounded(b / n, 2) for b, n in zip(before, now)],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.side == "cached":
        return cached_side(args)
    started = time.perf_counter()
    load_before = load_average()
    import keras  # noqa: F401  (import cost kept out of the timings below)

    compared = compare_cached(args)
    data, config = prepare(args)
    recompute = run_side("recompute", config.replace(cache_features=False, epochs=args.recompute_epochs), data)
    cached_side_now = compared["sides"]["now"][-1]
    if cached_side_now["path"] != "cached":
        raise RuntimeError(f"the cached side took the {cached_side_now['path']} path; lower --images or --image-size")

    cached_later = median(compared["now_epoch_seconds"])
    before_later = median(compared["baseline_epoch_seconds"])
    assert cached_later is not None and before_later is not None
    recompute_later = later_median(recompute)
    # Totals over the epochs both sides ran, so no epoch time is extrapolated.
    common = min(args.epochs, args.recompute_epochs)
    cached_total = cached_side_now["extract_seconds"] + sum(cached_side_now["epoch_seconds"][:common])
    recompute_total = sum(recompute["epoch_seconds"][:common])
    # The recompute side is compute-bound on all cores; when other processes took part of
    # the CPU, its CPU seconds spread over all cores estimate the epoch on a quiet machine.
    cores = os.cpu_count() or 1
    recompute_share = min(recompute["cpu_share"][1:])
    recompute_quiet = (median(recompute["cpu_seconds"][1:]) or 0.0) / cores
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
        "validation_images": cached_side_now["validation_images"],
        "freeze_at": args.freeze_at,
        "batch_size": args.batch_size,
        "weights": os.path.basename(args.weights),
        "epochs": args.epochs,
        "recompute_epochs": args.recompute_epochs,
        "extraction_seconds": rounded(cached_side_now["extract_seconds"]),
        "extraction_images": args.images + cached_side_now["validation_images"],
        "cached_epoch_seconds": rounded(cached_later, 5),
        "cached_epoch_seconds_before": rounded(before_later, 5),
        "compiled_epochs_speedup": compared["speedup"],
        "compiled_epochs_speedup_per_round": compared["speedup_per_round"],
        "compiled_epochs_speedup_goal": COMPILED_SPEEDUP_GOAL,
        "compiled_epochs_speedup_meets_goal": compared["speedup"] >= COMPILED_SPEEDUP_GOAL,
        "baseline": {
            "commit": args.baseline,
            "epoch_seconds_per_round": compared["baseline_epoch_seconds"],
            "calls_per_epoch": compared["sides"]["baseline"][-1]["calls_per_epoch"],
            "tlcore": compared["sides"]["baseline"][-1]["tlcore"],
        },
        "now": {
            "epoch_seconds_per_round": compared["now_epoch_seconds"],
            "calls_per_epoch": cached_side_now["calls_per_epoch"],
            "tlcore": cached_side_now["tlcore"],
        },
        "recompute_epoch_seconds": rounded(recompute_later),
        "speedup": rounded(recompute_later / cached_later, 1),
        "speedup_goal": RECOMPUTE_SPEEDUP_GOAL,
        "speedup_meets_goal": recompute_later / cached_later >= RECOMPUTE_SPEEDUP_GOAL,
        "contended": contended,
        "recompute_epoch_seconds_quiet_estimate": rounded(recompute_quiet),
        "speedup_quiet_estimate": rounded(recompute_quiet / cached_later, 1),
        "cached_first_epoch_seconds": rounded(cached_side_now["epoch_seconds"][0]),
        "cached_first_epoch_seconds_before": rounded(compared["sides"]["baseline"][-1]["epoch_seconds"][0]),
        "recompute_first_epoch_seconds": rounded(recompute["epoch_seconds"][0]),
        "speedup_including_extraction": rounded(recompute_total / cached_total, 2),
        "speedup_including_extraction_over_epochs": common,
        "cached": _rounded_lists(cached_side_now),
        "cached_before": _rounded_lists(compared["sides"]["baseline"][-1]),
        "recompute": _rounded_lists(recompute),
        "notes": (
            "epoch seconds = tlcore.tf.training.train history 'seconds' (training batches + validation); "
            "every epoch figure is the median of the epochs after the first (cached sides: the median over "
            "rounds of that); compiled_epochs_speedup = cached epoch at the baseline commit / now, both "
            "measured here in alternating subprocesses; calls_per_epoch = BatchEnd events per epoch (one per "
            "batch before, one per compiled call now); after_last_call_seconds = validation before, ~0 now "
            "(the epoch's last call validates); speedup_including_extraction = recompute total / (extraction "
            f"+ cached total) over the first {common} epochs; cpu_share = process CPU seconds / (wall seconds "
            "* cores), under 0.9 on the recompute side when other processes shared the CPU (contended); "
            "*_quiet_estimate = recompute CPU seconds / cores"
        ),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "cpu": cpu_info(),
        "versions": library_versions(),
        "total_seconds": rounded(time.perf_counter() - started, 1),
    }


def _rounded_lists(side: dict[str, Any]) -> dict[str, list[float | None]]:
    return {k: [rounded(s, 5) for s in v] for k, v in side.items() if isinstance(v, list)}


if __name__ == "__main__":
    emit(main())
