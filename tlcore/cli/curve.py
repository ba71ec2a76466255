"""The transfer-curve command: Yosinski et al.'s four conditions at each freeze point, on your own images."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from tlcore.backbones import normalize_weights
from tlcore.cli.errors import UsageError
from tlcore.config import TrainConfig
from tlcore.curve_records import CurveRecording, CurveStore, new_curve_id
from tlcore.data import scan
from tlcore.feature_store import FeatureStore
from tlcore.runs import RunStore
from tlcore.transfer_curve import CONDITION_WORDS, CONDITIONS, FASTEST, curve_base


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
        CurveRecording.check(args.points, args.repeats)
    except ValueError as err:
        raise UsageError(str(err)) from None
    info = scan(args.data, validation_split=base.validation_split, seed=base.seed)
    store = RunStore(args.runs_dir) if args.runs_dir else RunStore()
    store.check_writable()
    from tlcore.tf.devices import device_report  # the TensorFlow side: it trains
    from tlcore.tf.transfer_curve import run_transfer_curve

    precision = device_report().fastest_precision() if args.precision == FASTEST else args.precision
    curve_id = new_curve_id()
    curve = run_transfer_curve(
        curve_base(base, precision),
        info,
        store,
        FeatureStore.default(store.root),
        args.points,
        args.repeats,
        note=lambda _done, _total, line: print(line, file=sys.stderr, flush=True),
        curve_id=curve_id,
    ).to_dict()
    folder = CurveStore(store).root / curve_id
    if args.json:
        print(json.dumps({**curve, "curve_id": curve_id, "folder": str(folder), "precision": precision}))
        return 0
    print(curve_table(curve))
    repeats, chance = args.repeats, curve["chance"]
    print(f"\nvalidation accuracy, mean (min-max) of {repeats} repeat(s) in {precision}; chance {chance:.0%}")
    print(curve["summary"])
    print(f"The curve and its runs: {folder}")
    return 0
