"""The commands that train: train (one run), sweep (a run per freeze point) and lr-find (a range test)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from tlcore.backbones import IMAGENET, NO_WEIGHTS, check_weights_to_load, get_backbone, normalize_weights
from tlcore.cli.errors import EXIT_DATA, EXIT_INTERRUPTED, UsageError, print_error
from tlcore.cli.options import config_from_args, length_settings
from tlcore.cli.progress import CommandProgress
from tlcore.cli.tables import lr_table, sweep_table
from tlcore.data import scan
from tlcore.lr_finder import SUGGESTION_METHOD, format_rate, relevant_config
from tlcore.presets import get_preset
from tlcore.run_folder import load_record
from tlcore.runs import RunStore
from tlcore.sweep import plan, sweep_config


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

    with CommandProgress(config.total_epochs()) as progress:
        job = start_training("command line", config, info, store, listener=progress)
        result = wait(job)  # Ctrl-C: stop after this batch (or compiled call)
    summary = {
        "run_dir": result.run_dir,
        "status": result.status,
        "reason": result.reason,
        "val_accuracy": result.final.get("val_accuracy"),
        "best_val_accuracy": result.final.get("best_val_accuracy"),
        "path": result.routes[0] if result.routes else None,  # the route, under the name README documents
        "route": result.routes[0] if result.routes else None,
        "paths": result.routes,
        "routes": result.routes,
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
        print_error(result.save_error)
    if result.status == "failed":
        return EXIT_DATA
    return EXIT_INTERRUPTED if job.stop_flag.is_set() else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    # Every point builds a new model, so TensorFlow retraces by design: its warning is noise here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from tlcore.jobs import start_sweep, wait  # the job interface the app uses: threads here, or Ray

    try:
        defaults = sweep_config(normalize_weights(args.weights), args.image_size, args.epochs)
        min_steps, patience = length_settings(args, defaults)
        base = defaults.replace(
            learning_rate=defaults.learning_rate if args.learning_rate is None else args.learning_rate,
            balance_classes=bool(args.balance_classes),
            min_steps=min_steps,
            early_stopping_patience=patience,
        )
        planned = plan(base, args.points, not args.no_scratch)
    except ValueError as err:
        raise UsageError(str(err)) from None
    info = scan(args.data, validation_split=base.validation_split, seed=base.seed)
    for warning in info.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    store = RunStore(args.runs_dir) if args.runs_dir else RunStore()
    _refuse_before_tensorflow(base.weights, base.backbone, store)

    with CommandProgress(base.epochs, json_lines=args.json) as progress:
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
    from tlcore.tf.pipeline import prepare_data

    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: the curve so far
    try:
        with CommandProgress(config.epochs if args.phase == 2 else 0) as progress:
            data = prepare_data(info, config.image_size, progress)
            caps = {"max_steps": args.max_steps, "max_seconds": args.max_seconds}
            result = find_learning_rate(config, data, args.phase, progress=progress, stop=stop, **caps)
    finally:
        signal.signal(signal.SIGINT, previous)
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
