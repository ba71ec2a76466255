"""Command line: python -m tlcore (or tllab) COMMAND ...: scan, layers, train, code, sweep, probe,
featuremaps, changes, cache, lr-find, predict.

Exit codes (EPILOG below, shown by --help): 0 ok, 1 bad data or an unwritable
runs folder, 2 bad arguments, 3 the Ray cluster cannot run the job, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tlcore.architecture import counts_at, layer_table, with_freeze_point
from tlcore.backbone_facts import VGG16_LAYERS, VGG16_MIN_IMAGE_SIZE
from tlcore.backbones import (
    IMAGENET,
    NO_WEIGHTS,
    WeightsError,
    check_weights_to_load,
    default_weights,
    get_backbone,
    normalize_weights,
)
from tlcore.cluster import ClusterError
from tlcore.codegen import DataFolder, training_script
from tlcore.config import AugmentConfig, FineTuneConfig, HeadConfig, TrainConfig
from tlcore.data import VALIDATION, DatasetError, scan
from tlcore.devices import PRECISIONS, PrecisionUnsupported
from tlcore.feature_store import MB, FeatureStore
from tlcore.featuremaps import DEFAULT_TOP, check_layer, default_layer, default_layer_note, mosaic, panels_figure
from tlcore.imageio import DEFAULT_MAX_PIXELS, ImageProblem, load_array
from tlcore.inside import compared_weightings
from tlcore.jobs import SweepPointDone
from tlcore.lr_finder import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_MAX_STEPS,
    SUGGESTION_METHOD,
    WARMUP_STEPS,
    FinderStart,
    FinderStep,
    LRFinderResult,
    format_rate,
    relevant_config,
)
from tlcore.modelfile import ModelLoadError, check_model_file
from tlcore.presets import PRESETS, apply_preset, get_preset
from tlcore.probe import PROBE_CLASSIFIER, format_accuracy
from tlcore.progress import BatchEnd, EpochEnd, FeaturesReused, PhaseStart, StepProgress
from tlcore.quiet import quiet_tensorflow
from tlcore.runs import MODEL_FILE, RUN_FILE, RunFolderError, RunStore, load_record
from tlcore.schedule import MIN_VALIDATION_PER_CLASS
from tlcore.sweep import DEFAULT_POINTS, SweepPointStart, plan, sweep_config
from tlcore.weight_changes import ChangesUnavailable, WeightChanges, measurable_record

EXIT_DATA, EXIT_USAGE, EXIT_CLUSTER = 1, 2, 3
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, what a shell reports for a command ended by Ctrl-C


class UsageError(Exception):
    pass


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


EPILOG = """exit codes:
  0    ok
  1    bad data: a missing folder, an unusable dataset or weights, a runs folder that cannot be written,
       a run whose changes cannot be measured
  2    bad arguments
  3    the Ray cluster (TLLAB_RAY_ADDRESS) cannot run the job: Ray missing, unreachable, gone mid-run,
       a run store the workers do not share, a worker lost
  130  interrupted (Ctrl-C); train and sweep keep what was learned

With --json, stdout holds JSON only; logs and progress go to stderr."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the epilog's layout and shows each option's default, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or isinstance(action, argparse._VersionAction):
            return action.help
        return super()._get_help_string(action)


def _prog() -> str:
    return "tllab" if Path(sys.argv[0]).name == "tllab" else "python -m tlcore"


def add_length_options(p: argparse.ArgumentParser) -> None:
    """How long training runs on the data (tlcore.schedule): train's, code's and sweep's."""
    d = TrainConfig()
    p.add_argument(
        "--min-steps",
        type=int,
        help="a head trained on cached features takes at least this many steps, and the batch shrinks to make "
        f"several steps an epoch (0: exactly --epochs and --batch-size; default {d.min_steps})",
    )
    p.add_argument(
        "--early-stopping",
        type=int,
        metavar="PATIENCE",
        help="end a phase after PATIENCE epochs without val_loss improvement, keeping the best epoch's weights, "
        f"when every class has {MIN_VALIDATION_PER_CLASS}+ validation images "
        f"(0: off; default {d.early_stopping_patience})",
    )


def length_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields `add_length_options` set, where given."""
    changes: dict[str, Any] = {}
    if args.min_steps is not None:
        changes["min_steps"] = args.min_steps
    if args.early_stopping is not None:
        changes["early_stopping_patience"] = args.early_stopping or None
    return changes


def add_config_options(p: argparse.ArgumentParser) -> None:
    """The options that make a TrainConfig (`config_from_args` reads them): train's, and code's, said once."""
    d = TrainConfig()  # the defaults an option falls back to, shown in its help
    p.add_argument("--config", help="a run folder or its run.json: reuse that run's configuration")
    p.add_argument(
        "--preset",
        help=f"start from a preset: {', '.join(sorted(PRESETS))} (explicit flags override it; the old names "
        f"{', '.join(sorted(p.alias for p in PRESETS.values()))} still work)",
    )
    p.add_argument("--freeze-at", type=int, help=f"VGG16 layers frozen, 0..{VGG16_LAYERS} (default {d.freeze_at})")
    p.add_argument("--epochs", type=int, help=f"epochs of the first phase (default {d.epochs})")
    p.add_argument("--image-size", type=int, help=f"square input size in pixels (default {d.image_size})")
    p.add_argument("--weights", help="imagenet | none | PATH (default: $TLLAB_WEIGHTS or imagenet)")
    p.add_argument("--batch-size", type=int, help=f"images per training step (default {d.batch_size})")
    p.add_argument("--learning-rate", type=float, help=f"first phase's learning rate (default {d.learning_rate:g})")
    p.add_argument("--optimizer", choices=["adam", "rmsprop", "sgd"], help=f"(default {d.optimizer})")
    p.add_argument(
        "--pooling",
        choices=["flatten", "avg", "max"],
        help=f"how the head turns feature maps into one vector (default {d.head.pooling})",
    )
    p.add_argument(
        "--dense",
        type=_int_list,
        help=f"hidden layer sizes, e.g. 1024,1024,512 (empty: none; default {','.join(map(str, d.head.dense))})",
    )
    p.add_argument("--dropout", type=float, help=f"dropout before each dense layer (default {d.head.dropout})")
    p.add_argument(
        "--output",
        choices=["softmax", "sigmoid"],
        help=f"the head's last activation; sigmoid for 2 classes only (default {d.head.output})",
    )
    p.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="layer-normalise the pooled features before the head's dense layers (default on)",
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random flips, rotations, zooms, shifts and contrast on training images (default off)",
    )
    p.add_argument("--fine-tune-at", type=int, help="second phase: unfreeze down to this freeze point")
    p.add_argument("--fine-tune-epochs", type=int, default=FineTuneConfig().epochs, help="epochs of the second phase")
    p.add_argument(
        "--fine-tune-lr", type=float, default=FineTuneConfig().learning_rate, help="learning rate of the second phase"
    )
    p.add_argument("--seed", type=int, help=f"seed of the head's initial weights and the data order (default {d.seed})")
    p.add_argument(
        "--balance-classes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="weight each class inversely to its training images (for imbalanced datasets)",
    )
    add_length_options(p)
    p.add_argument(
        "--reduce-lr-on-plateau",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="halve the learning rate after 2 epochs without val_loss improvement (default off)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help=f"numeric precision of the model's layers (default {d.precision}): mixed_float16 on an NVIDIA GPU "
        "(compute capability 7.0+), mixed_bfloat16 on a GPU of compute capability 8.0+ or a CPU with "
        "AVX-512 BF16 or AMX; the output and the loss stay float32",
    )


def build_parser() -> argparse.ArgumentParser:
    """Every command and option, each with its help text; defaults come from TrainConfig, said once."""
    from tlcore import __version__

    d = TrainConfig()  # the defaults a train option falls back to, shown in its help
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Transfer Learning Lab engine: scan image folders, "
        "train VGG16 + a head at a freeze point, sweep freeze points, predict.",
        epilog=EPILOG,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, epilog=EPILOG, formatter_class=_HelpFormatter)

    p = command("scan", "report on an image folder: classes, images per split, files skipped and why")
    p.add_argument("data", help="dataset folder (class folders, optionally inside train/ and validation/)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="skip images above this many pixels (a guard against decompression bombs)",
    )

    p = command("layers", "the VGG16 layer table at a freeze point (no TensorFlow needed)")
    p.add_argument("--image-size", type=int, default=d.image_size, help="square input size in pixels")
    p.add_argument("--freeze-at", type=int, default=VGG16_LAYERS, help=f"VGG16 layers frozen, 0..{VGG16_LAYERS}")
    p.add_argument("--json", action="store_true", help="print the table as JSON")

    p = command("train", "train a model and save it as a run")
    p.add_argument("--data", help="dataset folder (required)")
    add_config_options(p)
    p.add_argument("--runs-dir", help="runs folder (default: $TLLAB_RUNS_DIR or ./runs)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")

    p = command(
        "code",
        "print a standalone Keras script (no tlcore in it) that trains what the train command would: "
        "python -m tlcore code --data DIR > train.py",
    )
    p.add_argument(
        "--data", help="dataset folder the script reads (default with --config RUN_DIR: the folder that run used)"
    )
    add_config_options(p)

    p = command("sweep", "train the same head at several freeze points, plus from scratch")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--image-size", type=int, default=96, help="square input size in pixels")
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs at every point")
    p.add_argument(
        "--points",
        type=_int_list,
        default=DEFAULT_POINTS,
        help=f"freeze points, run in this order (default {','.join(map(str, DEFAULT_POINTS))}: "
        "VGG16's block boundaries)",
    )
    p.add_argument(
        "--no-scratch",
        action="store_true",
        help="leave out the baseline trained from random weights with every layer learning",
    )
    p.add_argument("--weights", help="imagenet | none | PATH (default: $TLLAB_WEIGHTS or imagenet)")
    p.add_argument(
        "--learning-rate",
        type=float,
        help=f"the same for every point (default: {d.learning_rate:g}, at most 1e-4 where conv layers train)",
    )
    p.add_argument(
        "--balance-classes",
        action="store_true",
        help="weight each class inversely to its training images at every point",
    )
    add_length_options(p)
    p.add_argument("--runs-dir", help="runs folder (default: $TLLAB_RUNS_DIR or ./runs)")
    p.add_argument("--json", action="store_true", help="one JSON object per point per line, then a summary line")

    p = command(
        "probe",
        "where transferable knowledge lives: a linear probe on pooled VGG16 features at each block "
        "boundary, ImageNet weights against random ones",
    )
    p.add_argument("--data", required=True, help="dataset folder (probes fit on train/, score on validation/)")
    p.add_argument(
        "--weights",
        help="the pretrained side: imagenet | PATH | none (no pretrained side) (default: $TLLAB_WEIGHTS or imagenet)",
    )
    p.add_argument("--image-size", type=int, default=d.image_size, help="square input size in pixels")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the random weights")
    p.add_argument("--json", action="store_true", help="print one JSON object with a boundaries list")

    p = command("predict", "class probabilities for images, from a saved run's model")
    p.add_argument("--run", required=True, help="a run folder with model.keras")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to print per image")
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")

    p = command(
        "featuremaps",
        "what one VGG16 layer sees in an image: its most active feature maps, ImageNet and random weights side by side",
    )
    p.add_argument("--image", required=True, help="an image file")
    p.add_argument("--out", required=True, help="the PNG to write: the image and each weighting's maps, labelled")
    p.add_argument("--layer", help="a VGG16 layer name (default: the last frozen layer at --freeze-at)")
    p.add_argument(
        "--freeze-at", type=int, default=d.freeze_at, help=f"the freeze point whose layer is shown, 0..{VGG16_LAYERS}"
    )
    p.add_argument(
        "--weights",
        help="imagenet | PATH: the pretrained side, shown next to random weights "
        "(default: $TLLAB_WEIGHTS or imagenet; none: the random side alone unless those are usable)",
    )
    p.add_argument("--image-size", type=int, default=d.image_size, help="square input size in pixels")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, help="maps to show, most active first")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the random weights")
    p.add_argument(
        "--json", action="store_true", help="print the layer, its shape and each side's top channels as JSON"
    )

    p = command("cache", "the feature store: frozen features kept on disk for later runs and sweeps")
    p.add_argument("--clear", action="store_true", help="remove every entry")
    p.add_argument(
        "--runs-dir", help="runs folder whose store to use (default: $TLLAB_CACHE_DIR, else ./runs/.features)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(
        "changes",
        "what fine-tuning changed: how far each layer's weights moved from where a run started "
        "(||W - W0|| / ||W0|| per VGG16 conv layer and head Dense layer)",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder with model.keras")
    p.add_argument("--json", action="store_true", help="print one JSON object with a layers list")
    _add_lr_find(command)
    return parser


def _tolerant_output() -> None:
    """Print any file name instead of crashing on it.

    A name that is not UTF-8 reaches Python as lone surrogates, and a name
    like "猫.png" cannot be written to an ASCII terminal: strict streams then
    raise mid-report. Escapes (\\udce9, \\u732b) say which file it is.
    """
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    quiet_tensorflow()  # before any command imports it
    _tolerant_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {
        "scan": cmd_scan,
        "layers": cmd_layers,
        "train": cmd_train,
        "sweep": cmd_sweep,
        "probe": cmd_probe,
        "featuremaps": cmd_featuremaps,
        "changes": cmd_changes,
        "cache": cmd_cache,
        "lr-find": cmd_lr_find,
        "predict": cmd_predict,
        "code": cmd_code,
    }
    try:
        return handlers[args.command](args)
    except (UsageError, PrecisionUnsupported) as err:
        _err(str(err))
        return EXIT_USAGE
    except (DatasetError, WeightsError, ImageProblem, FileNotFoundError, RunFolderError, ChangesUnavailable) as err:
        _err(str(err))
        return EXIT_DATA
    except ClusterError as err:
        _err(str(err))
        return EXIT_CLUSTER
    except KeyboardInterrupt:  # Ctrl-C outside training (scanning, loading): nothing learned to keep
        _err("interrupted")
        return EXIT_INTERRUPTED


# --- scan / layers ------------------------------------------------------------------


def cmd_scan(args: argparse.Namespace) -> int:
    info = scan(args.data, max_pixels=args.max_pixels)
    report = info.to_report()
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{info.root}  ({info.layout} layout)")
    print(f"classes: {', '.join(info.class_names)}")
    for split, counts in report["counts"].items():
        print(f"  {split:<10} " + "  ".join(f"{name}={n}" for name, n in counts.items()))
    print(f"skipped: {len(info.skipped)}   ignored: {len(info.ignored)}")
    for item in info.skipped:
        print(f"  skipped {item.path}: {item.reason}")
    for warning in info.warnings:
        print(f"warning: {warning}")
    return 0


def cmd_layers(args: argparse.Namespace) -> int:
    if not 0 <= args.freeze_at <= VGG16_LAYERS:
        raise UsageError(f"--freeze-at must be between 0 and {VGG16_LAYERS}. Received: {args.freeze_at}")
    # From VGG16's table of facts, as the Model page does: the same table a built model gives (tested), no TensorFlow.
    table = with_freeze_point(layer_table(2, args.image_size), args.freeze_at)
    trainable, frozen = counts_at(table, args.freeze_at)
    if args.json:
        print(
            json.dumps(
                {
                    "layers": json.loads(table.to_json(orient="records")),
                    "trainable_params": trainable,
                    "frozen_params": frozen,
                }
            )
        )
    else:
        print(table.to_string(index=False))
        print(
            f"freeze_at={args.freeze_at}: trainable {trainable:,} / frozen {frozen:,} parameters (head for 2 classes)"
        )
    return 0


# --- train ------------------------------------------------------------------------


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then a preset (--preset) or a saved run's config (--config), then explicit flags."""
    preset = getattr(args, "preset", None)
    if preset and args.config:
        raise UsageError("--preset and --config both give a starting configuration: use one of them")
    if preset:
        base = apply_preset(preset, weights=default_weights())  # ValueError (unknown name) -> exit 2
    elif args.config:
        path = Path(args.config)
        path = path / "run.json" if path.is_dir() else path
        if not path.is_file():
            raise UsageError(f"--config: no such file: {path}")
        try:
            data = json.loads(path.read_text())
        except ValueError as err:
            raise UsageError(f"--config: {path} is not JSON: {err}") from None
        if not isinstance(data, dict):
            raise UsageError(f"--config: {path} holds a JSON {type(data).__name__}, not a run.json object")
        try:
            base = TrainConfig.from_dict(data.get("config", data))
        except (TypeError, ValueError) as err:
            raise UsageError(f"--config: {path}: {err}") from None
    else:
        base = TrainConfig(weights=default_weights())
    head_changes = {
        k: v
        for k, v in (
            ("pooling", args.pooling),
            ("dense", args.dense),
            ("dropout", args.dropout),
            ("output", args.output),
            ("normalize", args.normalize),
        )
        if v is not None
    }
    changes: dict[str, Any] = {
        k: v
        for k, v in {
            "freeze_at": args.freeze_at,
            "epochs": args.epochs,
            "image_size": args.image_size,
            "weights": args.weights,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "optimizer": args.optimizer,
            "seed": args.seed,
            "balance_classes": args.balance_classes,
            "reduce_lr_on_plateau": args.reduce_lr_on_plateau,
            "precision": args.precision,
        }.items()
        if v is not None
    }
    changes.update(length_changes(args))
    if head_changes:
        changes["head"] = HeadConfig(**{**base.head.__dict__, **head_changes})
    if args.augment is not None:
        changes["augment"] = AugmentConfig(**{**base.augment.__dict__, "enabled": args.augment})
    if args.fine_tune_at is not None:
        changes["fine_tune"] = FineTuneConfig(args.fine_tune_at, args.fine_tune_epochs, args.fine_tune_lr)
    return base.replace(**changes)


class _TerminalProgress:
    """A one-line progress bar on stderr."""

    def __init__(self, total_epochs: int):
        self.total_epochs = total_epochs
        self.started = time.perf_counter()

    def __call__(self, event: object) -> None:
        if isinstance(event, StepProgress):
            self._bar(f"{event.stage:<8}", event.done, event.total, "")
        elif isinstance(event, PhaseStart):
            sys.stderr.write(
                f"\nphase {event.phase}: freeze_at={event.freeze_at}, {event.epochs} epoch(s), "
                f"lr={event.learning_rate:g}, path={event.route} ({event.route_reason}); "
                f"trainable {event.trainable_params:,} / frozen {event.frozen_params:,} params\n"
            )
        elif isinstance(event, FeaturesReused):
            sys.stderr.write(f"frozen features reused from the feature store (computed {event.created})\n")
        elif isinstance(event, BatchEnd):
            self._bar(f"epoch {event.epoch}/{self.total_epochs}", event.batch, event.batches, f"loss {event.loss:.4f}")
        elif isinstance(event, EpochEnd):
            r = event.row
            sys.stderr.write(
                f"\repoch {r['epoch']}/{self.total_epochs}: loss {r['loss']:.4f} acc {r['accuracy']:.3f} "
                f"val_loss {r['val_loss']:.4f} val_acc {r['val_accuracy']:.3f} ({r['seconds']:.1f}s)"
                + (" [partial]" if r["partial"] else "")
                + " " * 10
                + "\n"
            )
        sys.stderr.flush()

    def _bar(self, label: str, done: int, total: int, extra: str) -> None:
        width = 24
        filled = int(width * done / max(1, total))
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {extra}   ")


def _refuse_before_tensorflow(weights: str, backbone: str, store: RunStore) -> None:
    """Refuse a weights file that cannot be used or a runs folder that cannot be made now, in well under a
    second, rather than after TensorFlow has loaded and the model is built (seconds)."""
    if weights not in (NO_WEIGHTS, IMAGENET):
        check_weights_to_load(Path(weights), get_backbone(backbone))
    store.check_writable()


def cmd_train(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not args.data:
        raise UsageError("train needs --data DIR")
    if getattr(args, "preset", None):
        print(f"preset {args.preset}: {get_preset(args.preset).title}", file=sys.stderr)
        for note in get_preset(args.preset).notes:
            print(f"  - {note}", file=sys.stderr)
    info = scan(args.data, validation_split=config.validation_split, seed=config.seed)
    for warning in info.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if info.skipped:
        print(f"warning: {len(info.skipped)} file(s) skipped (see `python -m tlcore scan`)", file=sys.stderr)
    store = RunStore(args.runs_dir) if args.runs_dir else RunStore()
    _refuse_before_tensorflow(config.weights, config.backbone, store)

    from tlcore.jobs import start_training, wait  # the job interface the app uses: threads here, or Ray

    job = start_training("command line", config, info, store, listener=_TerminalProgress(config.total_epochs()))
    result = wait(job)  # Ctrl-C: stop after this batch (or compiled call)
    summary = {
        "run_dir": result.run_dir,
        "status": result.status,
        "reason": result.reason,
        "val_accuracy": result.final.get("val_accuracy"),
        "best_val_accuracy": result.final.get("best_val_accuracy"),
        "path": result.paths[0] if result.paths else None,
        "paths": result.paths,
        "seconds": round(result.seconds, 3),
        "extract_seconds": round(result.extract_seconds, 3),
        "features": result.features,
        "epochs_done": len(result.history),
        "model_saved": not result.save_error,
        "worker": job.snapshot().worker or None,
        "device": load_record(Path(result.run_dir)).device,
        "precision": config.precision,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"\n{result.status}: val_accuracy={summary['val_accuracy']} path={summary['path']} "
            f"in {summary['seconds']}s on {summary['device']} ({config.precision}) -> {summary['run_dir']}"
        )
    if result.save_error:
        _err(result.save_error)
    if result.status == "failed":
        return EXIT_DATA
    return EXIT_INTERRUPTED if job.stop_flag.is_set() else 0


# --- code ---------------------------------------------------------------------------


def cmd_code(args: argparse.Namespace) -> int:
    """Print the standalone Keras script for the train command's settings (tlcore.codegen)."""
    try:
        config = config_from_args(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    record = None
    if args.config:
        run_dir = Path(args.config)
        run_dir = run_dir.parent if run_dir.name == RUN_FILE else run_dir
        if (run_dir / RUN_FILE).is_file():
            record = load_record(run_dir)
    made_for = f"run {record.run_id}" if record else f"the settings given to `{_prog()} code`"
    if args.data:
        data = DataFolder.from_info(scan(args.data, validation_split=config.validation_split, seed=config.seed))
    elif record is not None:
        try:
            data = DataFolder.from_run(record)
        except ValueError as err:
            raise UsageError(f"{err} Give the folder with --data DIR.") from None
    else:
        raise UsageError("code needs --data DIR (or --config RUN_DIR, to use the folder that run trained on)")
    try:
        script = training_script(config, data, made_for)
    except ValueError as err:  # settings that cannot train on this folder (a sigmoid output for 3 classes)
        raise UsageError(str(err)) from None
    print(script, end="")
    return 0


# --- sweep --------------------------------------------------------------------------

SWEEP_COLUMNS = [  # (heading, SweepPoint field, format)
    ("point", "label", "{}"),
    ("trainable", "trainable_params", "{:,}"),
    ("s/epoch", "epoch_seconds", "{:.2f}"),
    ("extract s", "extract_seconds", "{:.1f}"),
    ("best acc", "best_val_accuracy", "{:.3f}"),
    ("final acc", "final_val_accuracy", "{:.3f}"),
    ("best loss", "best_val_loss", "{:.4f}"),
    ("final loss", "final_val_loss", "{:.4f}"),
    ("path", "path", "{}"),
    ("status", "status", "{}"),
]


def sweep_table(points: Sequence[Any]) -> str:
    """The sweep's points as a plain-text table, one row per point."""
    rows = [[heading for heading, _, _ in SWEEP_COLUMNS]]
    for point in points:
        values = point.to_dict()
        rows.append(["—" if values[key] is None else fmt.format(values[key]) for _, key, fmt in SWEEP_COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(SWEEP_COLUMNS))]
    return "\n".join(
        "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in rows
    )


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinity (a diverged point's loss) as null: they are not JSON."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}


class _SweepProgress:
    """A header line per point, then that point's progress bar, on stderr."""

    def __init__(self, epochs: int, json_lines: bool = False):
        self.bar = _TerminalProgress(epochs)
        self.json_lines = json_lines  # each finished point as a JSON line on stdout, as it finishes

    def __call__(self, event: object) -> None:
        if isinstance(event, SweepPointDone):
            self.point_done(event.point)
        elif isinstance(event, SweepPointStart):
            weights = (
                "random weights, every layer learns" if event.label == "scratch" else f"freeze_at={event.freeze_at}"
            )
            sys.stderr.write(f"\n[{event.index}/{event.total}] {event.label} ({weights})")
            sys.stderr.flush()
        else:
            self.bar(event)

    def point_done(self, point: Any) -> None:
        if self.json_lines:
            print(json.dumps(_finite(point.to_dict())), flush=True)
        acc = "—" if point.best_val_accuracy is None else f"{point.best_val_accuracy:.3f}"
        per_epoch = "—" if point.epoch_seconds is None else f"{point.epoch_seconds:.2f}"
        sys.stderr.write(
            f"{point.label}: {point.status}, {point.path or 'no training'}, trainable {point.trainable_params:,}, "
            f"{per_epoch} s/epoch, extract {point.extract_seconds:.1f} s, best val acc {acc}\n"
        )
        sys.stderr.flush()


def cmd_sweep(args: argparse.Namespace) -> int:
    # Every point builds a new model, so TensorFlow retraces by design: its warning is noise here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from tlcore.jobs import start_sweep, wait  # the job interface the app uses: threads here, or Ray

    try:
        changes: dict[str, Any] = {"learning_rate": args.learning_rate} if args.learning_rate is not None else {}
        if args.balance_classes:
            changes["balance_classes"] = True
        changes.update(length_changes(args))
        base = sweep_config(normalize_weights(args.weights), args.image_size, args.epochs, **changes)
        planned = plan(base, args.points, not args.no_scratch)
    except ValueError as err:
        raise UsageError(str(err)) from None
    info = scan(args.data, validation_split=base.validation_split, seed=base.seed)
    for warning in info.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    store = RunStore(args.runs_dir) if args.runs_dir else RunStore()
    _refuse_before_tensorflow(base.weights, base.backbone, store)

    progress = _SweepProgress(base.epochs, json_lines=args.json)
    job = start_sweep("command line", base, info, args.points, not args.no_scratch, store, listener=progress)
    result = wait(job)  # Ctrl-C: stop after this batch (or compiled call)
    if args.json:
        print(json.dumps(result.summary()))
    else:
        print()
        print(sweep_table(result.points))
        skipped = f", skipped {', '.join(result.skipped)}" if result.skipped else ""
        shared = (
            f"; the features of points {', '.join(map(str, result.shared_points))} from one pass, "
            f"{result.shared_extract_seconds:.1f} s"
            if result.shared_points
            else ""
        )
        print(
            f"\nsweep {result.sweep_id}: {result.status}, {len(result.points)}/{len(planned)} point(s) "
            f"in {result.seconds:.1f} s (decoding {result.decode_seconds:.1f} s{shared}){skipped}"
        )
    return EXIT_INTERRUPTED if job.stop_flag.is_set() else 0


# --- probe --------------------------------------------------------------------------


def cmd_probe(args: argparse.Namespace) -> int:
    if args.image_size < VGG16_MIN_IMAGE_SIZE:
        raise UsageError(f"--image-size must be at least {VGG16_MIN_IMAGE_SIZE}. Received: {args.image_size}")
    info = scan(args.data)
    if not info.num_images(VALIDATION):
        raise DatasetError(f"{info.root} has no validation images to score the probes on")
    from tlcore.tf.probe import run_probe  # the TensorFlow side: this command runs VGG16
    from tlcore.tf.training import prepare_data

    comparison = compared_weightings(args.weights, args.seed, fall_back=False)
    data = prepare_data(info, args.image_size)
    bar = _TerminalProgress(total_epochs=0)
    result = run_probe(
        data, comparison, seed=args.seed, progress=lambda done, total: bar(StepProgress("features", done, total))
    )
    sys.stderr.write("\n")
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    print(
        f"Linear probe on pooled VGG16 features: {result.num_train} training, "
        f"{result.num_validation} validation images, {result.image_size} px"
    )
    print(f"{'freeze_at':>9}  {'layer':<12} {'ImageNet':>8} {'random':>8}")
    for score in result.boundaries:
        print(
            f"{score.freeze_at:>9}  {score.layer:<12} {format_accuracy(score.imagenet):>8} "
            f"{format_accuracy(score.random):>8}"
        )
    if result.reason:
        print(result.reason)
    print(f"({PROBE_CLASSIFIER}; {result.seconds:.1f} s)")
    return 0


# --- predict ------------------------------------------------------------------------


def cmd_predict(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"Not a run folder (no {RUN_FILE}): {run_dir}")
    try:
        class_names = load_record(run_dir).class_names
    except ValueError as err:  # the message names the file and why
        _err(str(err))
        return EXIT_DATA
    if class_names is None:
        _err(f"{run_dir / RUN_FILE} names no classes (it has no class_names list)")
        return EXIT_DATA
    try:
        if (run_dir / MODEL_FILE).is_file():
            check_model_file(run_dir / MODEL_FILE)  # a file that is no model is refused before TensorFlow loads
    except ModelLoadError as err:
        _err(f"{run_dir}: {err}")
        return EXIT_DATA

    from tlcore.tf.inference import predict  # the TensorFlow side: this command loads a model
    from tlcore.tf.model import load_run_model

    try:
        model = load_run_model(run_dir)
    except ModelLoadError as err:
        _err(f"{run_dir}: {err}")
        return EXIT_DATA
    results = []
    for image in args.images:
        try:
            prediction = predict(model, [image], class_names)[0]
        except ImageProblem as err:
            raise ImageProblem(f"{image}: {err}") from None
        results.append({"image": image, "top_class": prediction.top_class, "probabilities": prediction.probabilities})
        if not args.json:
            top = ", ".join(f"{name} {p:.3f}" for name, p in prediction.top_k(args.top_k))
            print(f"{image}: {top}")
    if args.json:
        print(json.dumps(results))
    return 0


# --- featuremaps ----------------------------------------------------------------------


def cmd_featuremaps(args: argparse.Namespace) -> int:
    try:
        layer = check_layer(args.layer) if args.layer else default_layer(args.freeze_at)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.top < 1:
        raise UsageError(f"--top must be at least 1. Received: {args.top}")
    if not Path(args.image).is_file():
        raise FileNotFoundError(f"No such image file: {args.image}")
    pixels = load_array(args.image, args.image_size)  # ImageProblem -> exit 1, before TensorFlow loads
    comparison = compared_weightings(args.weights, args.seed)
    if comparison.reason:
        print(f"warning: {comparison.reason} Showing random weights alone.", file=sys.stderr)

    from tlcore.tf.activations import feature_maps  # the TensorFlow side: this command builds VGG16
    from tlcore.tf.backbones import backbone_for

    try:
        sides = [
            (w, feature_maps(backbone_for(w, args.image_size), pixels, layer, args.top)) for w in comparison.weightings
        ]
    except ValueError as err:  # an image size VGG16 refuses
        raise UsageError(str(err)) from None
    shape = sides[0][1].shape_text
    heading = f"{layer} · {shape} · the {len(sides[0][1].maps)} most active of {sides[0][1].shape[2]} channels"
    figure = panels_figure(pixels, [(w.title, mosaic(maps.maps)) for w, maps in sides], heading)
    figure.savefig(args.out)
    if args.json:
        print(
            json.dumps(
                {
                    "layer": layer,
                    "shape": list(sides[0][1].shape),
                    "sides": [
                        {
                            "side": w.side,
                            "title": w.title,
                            "channels": maps.top_channels,
                            "mean_activations": [round(float(m), 6) for m in maps.mean_activations],
                        }
                        for w, maps in sides
                    ],
                    "reason": comparison.reason or None,
                    "out": str(args.out),
                }
            )
        )
        return 0
    print(f"{layer} · {shape} (height × width × channels)")
    if not args.layer:
        print(default_layer_note(args.freeze_at))
    for w, maps in sides:
        top = ", ".join(f"{c} ({m:,.2f})" for c, m in zip(maps.top_channels, maps.mean_activations))
        print(f"{w.title}: most active channels (mean activation): {top}")
    print(f"wrote {args.out}")
    return 0


# --- cache ------------------------------------------------------------------------


def cmd_cache(args: argparse.Namespace) -> int:
    store = FeatureStore.default(args.runs_dir)
    if args.clear:
        count, freed = store.clear()
        report: dict[str, Any] = {"root": str(store.root), "cleared": count, "freed_bytes": freed}
        text = f"cleared {count} entr{'y' if count == 1 else 'ies'} ({freed / MB:.1f} MB) from {store.root}"
    else:
        entries = store.entries()
        report = {
            "root": str(store.root),
            "entries": [
                {"file": e.path.name, "bytes": e.bytes, "last_used": e.last_used, "key": e.key} for e in entries
            ],
            "total_bytes": sum(e.bytes for e in entries),
            "max_bytes": store.max_bytes,
        }
        lines = [f"  {e.summary}" for e in entries]
        text = "\n".join(
            [
                f"{store.root}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, "
                f"{report['total_bytes'] / MB:.1f} MB of {store.max_bytes / MB:.0f} MB",
                *lines,
            ]
        )
    print(json.dumps(report) if args.json else text)
    return 0


# --- changes ------------------------------------------------------------------------

CHANGE_BAR_DECADES = 5  # the text bar spans 1e-5 .. 1 of a layer's size, log scale
CHANGE_BAR_PER_DECADE = 4  # characters


def change_bar(relative_change: float | None) -> str:
    """A log-scale bar of '#' for a relative change: 4 characters per decade above 1e-5."""
    if not relative_change or relative_change <= 0:
        return ""
    decades = math.log10(relative_change) + CHANGE_BAR_DECADES
    return "#" * max(1, round(decades * CHANGE_BAR_PER_DECADE))


def changes_table(changes: WeightChanges) -> str:
    """One line per layer with weights: name, block, trained or frozen, relative change and its bar."""
    rows = [["layer", "block", "status", "||W-W0||/||W0||", "(log scale)"]]
    for layer in changes.layers:
        change = layer.relative_change
        rows.append(
            [
                layer.name,
                layer.block,
                "trained" if layer.trained else "frozen",
                "—" if change is None else f"{change:.3g}",
                change_bar(change),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(
            [*(cell.ljust(w) if i != 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))), row[4]]
        ).rstrip()
        for row in rows
    )


def cmd_changes(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"Not a run folder (no {RUN_FILE}): {run_dir}")
    measurable_record(run_dir)  # a run that cannot be measured is refused before TensorFlow loads (seconds)
    from tlcore.tf.weight_changes import weight_changes  # the TensorFlow side: this command rebuilds VGG16

    changes = weight_changes(run_dir)
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), **changes.to_dict()}))
        return 0
    print(f"run {changes.run_id}: started from weights {changes.weights}; deepest freeze point {changes.trained_from}")
    print(changes_table(changes))
    print(changes.summary)
    return 0


# --- lr-find ------------------------------------------------------------------------


def _add_lr_find(command: Any) -> None:
    """The lr-find command: the train command's own options (shared, not declared again), and its caps."""
    p = command(
        "lr-find",
        "find a learning rate: a range test (Smith 2017, as fastai's lr_find) on the settings the train "
        "options describe, the rate rising from 1e-7 to 1 over a few dozen training steps",
    )
    p.description = (
        f"{p.description}. The train command's options describe the settings: a phase-1 sweep reads neither "
        "the learning rates nor the epochs; a phase-2 sweep trains phase 1 as they say first. Nothing is saved."
    )
    p.add_argument("--data", help="dataset folder (required)")
    add_config_options(p)  # the train command's own settings; no --runs-dir: a sweep saves no run
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument(
        "--phase",
        type=int,
        choices=(1, 2),
        default=1,
        help="the phase to sweep; 2 (needs --fine-tune-at, or a config or preset with a second phase) trains "
        "phase 1 first, as training would, then sweeps with the layers above the phase-2 freeze point trainable",
    )
    p.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS, help="at most this many sweep steps")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help="at most this many seconds of sweep steps (decoding, features and phase 1 come before)",
    )


class _FinderProgress(_TerminalProgress):
    """The train command's progress bar, plus the sweep's start line and its steps."""

    def __call__(self, event: object) -> None:
        if isinstance(event, FinderStart):
            sys.stderr.write(
                f"\nsweep: phase {event.phase}, freeze_at={event.freeze_at}, path={event.route} "
                f"({event.route_reason}); trainable {event.trainable_params:,} / frozen {event.frozen_params:,}\n"
            )
        elif isinstance(event, FinderStep):
            label, total = ("sweep   ", event.steps) if event.steps else ("warm-up ", WARMUP_STEPS)
            self._bar(label, event.step, total, f"lr {format_rate(event.rate)} loss {event.loss:.4f}")
        else:
            super().__call__(event)
        sys.stderr.flush()


LR_TABLE_WIDTH = 30  # characters of the longest loss bar


def lr_table(result: LRFinderResult) -> str:
    """The curve as text: the step nearest each half decade of rate, its smoothed loss and a bar on a log scale
    from the lowest loss shown (one #) to the highest (LR_TABLE_WIDTH), as the chart's loss axis."""
    if not result.steps:
        return ""
    logs = [math.log10(r) for r in result.rates]
    rows, seen = [], set()
    for half in range(math.floor(2 * logs[0]), math.ceil(2 * logs[-1]) + 1):
        i = min(range(result.steps), key=lambda j: abs(logs[j] - half / 2))
        if i not in seen:
            seen.add(i)
            rows.append(i)
    low, high = (math.log(f(result.smoothed[i] for i in rows)) for f in (min, max))
    lines = [f"{'rate':>8}  {'smoothed loss':>13}"]
    for i in rows:
        share = (math.log(result.smoothed[i]) - low) / (high - low) if high > low else 1.0
        bar = "#" * (1 + round((LR_TABLE_WIDTH - 1) * share))
        lines.append(f"{format_rate(result.rates[i]):>8}  {result.smoothed[i]:>13.4f}  {bar}")
    return "\n".join(lines)


def cmd_lr_find(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        relevant_config(config, args.phase)  # a phase the settings do not have
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not args.data:
        raise UsageError("lr-find needs --data DIR")
    if args.max_steps < 2:
        raise UsageError(f"--max-steps must be at least 2. Received: {args.max_steps}")
    info = scan(args.data, validation_split=config.validation_split, seed=config.seed)
    for warning in info.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    from tlcore.tf.lr_finder import find_learning_rate  # the TensorFlow side: this command trains
    from tlcore.tf.training import prepare_data

    progress = _FinderProgress(config.epochs if args.phase == 2 else 0)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: the curve so far
    try:
        data = prepare_data(info, config.image_size, progress)
        caps = {"max_steps": args.max_steps, "max_seconds": args.max_seconds}
        result = find_learning_rate(config, data, args.phase, progress=progress, stop=stop, **caps)
    finally:
        signal.signal(signal.SIGINT, previous)
    sys.stderr.write("\n")
    if args.json:
        print(json.dumps(result.to_json()))
        return EXIT_INTERRUPTED if stop.is_set() else 0
    print(
        f"phase {result.phase} at freeze_at={result.freeze_at}, path={result.route or '—'}: {result.steps} of "
        f"{result.planned_steps} planned steps in {result.seconds:.1f} s (after {result.prepare_seconds:.1f} s of "
        f"preparation); ended: {result.stop_reason}"
    )
    print(lr_table(result))
    suggested, minimum = result.suggested_rate, result.minimum_rate
    print(f"suggested rate ({SUGGESTION_METHOD}): {format_rate(suggested) if suggested else 'none'}")
    if minimum is not None:
        print(f"lowest smoothed loss at {format_rate(minimum)}; a tenth of it: {format_rate(minimum / 10)}")
    for rate in result.marked_rates:
        print(result.marked_text(rate))
    return EXIT_INTERRUPTED if stop.is_set() else 0
