"""The transfer-curve command: Yosinski et al.'s four conditions at each freeze point, on your own images."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from tlcore.backbones import normalize_weights
from tlcore.cli.errors import UsageError
from tlcore.config import TrainConfig
from tlcore.data import scan
from tlcore.feature_store import FeatureStore
from tlcore.runs import RunStore
from tlcore.transfer_curve import CONDITION_WORDS, CONDITIONS, check_points


def curve_table(curve: dict) -> str:
    """One line per freeze point: each condition's mean and (min-max) over the repeats."""
    rows = [["freeze", *(CONDITION_WORDS[c] for c in CONDITIONS)]]
    for boundary in curve["boundaries"]:
        cells = [f"{b['mean']:.2f} ({b['min']:.2f}-{b['max']:.2f})" for b in (boundary[c] for c in CONDITIONS)]
        rows.append([str(boundary["freeze_at"]), *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def cmd_transfer_curve(args: argparse.Namespace) -> int:
    """Train the curve and print its table and sentences, or one JSON object with --json."""
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # every run builds a model: retracing is by design
    try:
        base = TrainConfig(weights=normalize_weights(args.weights), image_size=args.image_size, epochs=args.epochs)
        points = check_points(args.points)
        if args.repeats < 1:
            raise ValueError(f"--repeats must be at least 1. Received: {args.repeats}")
    except ValueError as err:
        raise UsageError(str(err)) from None
    info = scan(args.data, validation_split=base.validation_split, seed=base.seed)
    store = RunStore(args.runs_dir) if args.runs_dir else RunStore()
    store.check_writable()
    from tlcore.tf.transfer_curve import run_transfer_curve  # the TensorFlow side: it trains

    curve = run_transfer_curve(
        base,
        info,
        FeatureStore.default(store.root),
        points,
        args.repeats,
        note=lambda _done, _total, line: print(line, file=sys.stderr, flush=True),
    ).to_dict()
    if args.json:
        print(json.dumps(curve))
        return 0
    print(curve_table(curve))
    print(f"\nvalidation accuracy, mean (min-max) of {args.repeats} repeat(s); chance {curve['chance']:.0%}")
    print(curve["summary"])
    return 0
