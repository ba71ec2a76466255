"""The commands that look at data, VGG16 and runs without training: scan, layers (no TensorFlow), probe,
featuremaps and changes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tlcore.architecture import counts_at, layer_table, with_freeze_point
from tlcore.backbone_facts import VGG16_LAYERS, VGG16_MIN_IMAGE_SIZE
from tlcore.cka import ESTIMATOR
from tlcore.cli.errors import UsageError
from tlcore.cli.progress import CommandProgress
from tlcore.cli.tables import changes_table, probe_table
from tlcore.data import VALIDATION, scan
from tlcore.data_problems import DatasetError
from tlcore.featuremaps import check_layer, default_layer, default_layer_note, mosaic, panels_figure
from tlcore.imageio import load_array
from tlcore.inside import compared_weightings
from tlcore.probe import PROBE_CLASSIFIER
from tlcore.progress import StepProgress
from tlcore.run_folder import RUN_FILE
from tlcore.weight_changes import measurable_record


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


def cmd_probe(args: argparse.Namespace) -> int:
    if args.image_size < VGG16_MIN_IMAGE_SIZE:
        raise UsageError(f"--image-size must be at least {VGG16_MIN_IMAGE_SIZE}. Received: {args.image_size}")
    info = scan(args.data)
    if not info.num_images(VALIDATION):
        raise DatasetError(f"{info.root} has no validation images to score the probes on")
    from tlcore.tf.pipeline import prepare_data
    from tlcore.tf.probe import run_probe  # the TensorFlow side: this command runs VGG16

    comparison = compared_weightings(args.weights, args.seed, fall_back=False)
    data = prepare_data(info, args.image_size)
    with CommandProgress(total_epochs=0) as progress:
        result = run_probe(
            data,
            comparison,
            seed=args.seed,
            progress=lambda done, total: progress(StepProgress("features", done, total)),
        )
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    print(
        f"Linear probe on pooled VGG16 features: {result.num_train} training, "
        f"{result.num_validation} validation images, {result.image_size} px"
    )
    print(probe_table(result))
    if result.reason:
        print(result.reason)
    print(f"({PROBE_CLASSIFIER}; {result.seconds:.1f} s)")
    return 0


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


def cmd_changes(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"Not a run folder (no {RUN_FILE}): {run_dir}")
    measurable_record(run_dir)  # a run that cannot be measured is refused before TensorFlow loads (seconds)
    from tlcore.tf.weight_changes import weight_changes  # the TensorFlow side: this command rebuilds VGG16

    changes = weight_changes(run_dir, cka=args.cka)
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), **changes.to_dict()}))
        return 0
    print(f"run {changes.run_id}: started from weights {changes.weights}; deepest freeze point {changes.trained_from}")
    print(changes_table(changes))
    print(changes.summary)
    if changes.representations is not None:
        print(f"CKA: {ESTIMATOR}. {changes.representations.summary}")
    return 0
