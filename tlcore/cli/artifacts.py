"""The commands that use what runs leave: predict (a saved model), code (a standalone training script)
and cache (the feature store)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore.cli.errors import EXIT_DATA, UsageError, print_error
from tlcore.cli.options import config_from_args
from tlcore.cli.parser import prog
from tlcore.codegen import training_script
from tlcore.data import scan
from tlcore.feature_store import MB, FeatureStore
from tlcore.imageio import ImageProblem
from tlcore.modelfile import ModelLoadError, check_model_file
from tlcore.records import RunRecord
from tlcore.run_folder import MODEL_FILE, RUN_FILE, load_record
from tlcore.script_folder import DataFolder

if TYPE_CHECKING:
    import keras

    from tlcore.tf.neighbours import Examples


def cmd_export(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"Not a run folder (no {RUN_FILE}): {run_dir}")
    if not (run_dir / MODEL_FILE).is_file():
        raise FileNotFoundError(f"Run {run_dir.name} saved no model ({MODEL_FILE}), so there is nothing to export")
    from tlcore.tf.export import export_run  # the TensorFlow side: this command converts a model

    try:
        result = export_run(run_dir, args.format, args.out)
    except ValueError as err:  # its validation images cannot be read: the message says where
        print_error(str(err))
        return EXIT_DATA
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"wrote {result.path}")
        print(result.summary)
    return 0 if result.passed else EXIT_DATA


def _examples(run_dir: Path, record: RunRecord, model: keras.Model) -> Examples:
    """The run's training images as neighbours for --json (or why there are none)."""
    from tlcore.tf.neighbours import Examples  # the TensorFlow side: the command has loaded the model

    return Examples.of(run_dir, record, model)


def cmd_predict(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"Not a run folder (no {RUN_FILE}): {run_dir}")
    try:
        record = load_record(run_dir)
    except ValueError as err:  # the message names the file and why
        print_error(str(err))
        return EXIT_DATA
    class_names = record.class_names
    if class_names is None:
        print_error(f"{run_dir / RUN_FILE} names no classes (it has no class_names list)")
        return EXIT_DATA
    try:
        if (run_dir / MODEL_FILE).is_file():
            check_model_file(run_dir / MODEL_FILE)  # a file that is no model is refused before TensorFlow loads
    except ModelLoadError as err:
        print_error(f"{run_dir}: {err}")
        return EXIT_DATA

    from tlcore.tf.inference import predict  # the TensorFlow side: this command loads a model
    from tlcore.tf.model import load_run_model

    try:
        model = load_run_model(run_dir)
    except ModelLoadError as err:
        print_error(f"{run_dir}: {err}")
        return EXIT_DATA
    examples = _examples(run_dir, record, model) if args.json else None
    results = []
    for image in args.images:
        try:
            prediction = predict(model, [image], class_names)[0]
            like = examples.like(image) if examples is not None else {}
        except ImageProblem as err:
            raise ImageProblem(f"{image}: {err}") from None
        results.append(
            {"image": image, "top_class": prediction.top_class, "probabilities": prediction.probabilities, **like}
        )
        if not args.json:
            top = ", ".join(f"{name} {p:.3f}" for name, p in prediction.top_k(args.top_k))
            print(f"{image}: {top}")
    if args.json:
        print(json.dumps(results))
    return 0


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
    made_for = f"run {record.run_id}" if record else f"the settings given to `{prog()} code`"
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


def cmd_cache(args: argparse.Namespace) -> int:
    store = FeatureStore.default(args.runs_dir)
    if args.clear:
        count, freed = store.clear()
        if args.json:
            print(json.dumps({"root": str(store.root), "cleared": count, "freed_bytes": freed}))
        else:
            print(f"cleared {count} entr{'y' if count == 1 else 'ies'} ({freed / MB:.1f} MB) from {store.root}")
        return 0
    entries = store.entries()
    total = sum(e.bytes for e in entries)
    if args.json:
        listing = [{"file": e.path.name, "bytes": e.bytes, "last_used": e.last_used, "key": e.key} for e in entries]
        report = {"root": str(store.root), "entries": listing, "total_bytes": total, "max_bytes": store.max_bytes}
        print(json.dumps(report))
        return 0
    print(
        f"{store.root}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, "
        f"{total / MB:.1f} MB of {store.max_bytes / MB:.0f} MB"
    )
    for entry in entries:
        print(f"  {entry.summary}")
    return 0
