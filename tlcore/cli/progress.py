"""Progress on stderr for the commands that train: train, sweep (with each point's JSON line on stdout
under --json), lr-find and probe's feature extraction."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from typing import TypeVar

from tlcore.jobs import SweepPointDone
from tlcore.lr_finder import WARMUP_STEPS, FinderStart, FinderStep, format_rate
from tlcore.progress import BatchEnd, EpochEnd, FeaturesReused, PhaseStart, StepProgress
from tlcore.sweep import SweepPoint, SweepPointStart

V = TypeVar("V")


def finite(values: Mapping[str, V]) -> dict[str, V | None]:
    """NaN and infinity (a diverged point's loss) as null: they are not JSON."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}


class TerminalProgress:
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


class SweepProgress:
    """A header line per point, then that point's progress bar, on stderr."""

    def __init__(self, epochs: int, json_lines: bool = False):
        self.bar = TerminalProgress(epochs)
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

    def point_done(self, point: SweepPoint) -> None:
        if self.json_lines:
            print(json.dumps(finite(point.to_dict())), flush=True)
        acc = "—" if point.best_val_accuracy is None else f"{point.best_val_accuracy:.3f}"
        per_epoch = "—" if point.epoch_seconds is None else f"{point.epoch_seconds:.2f}"
        sys.stderr.write(
            f"{point.label}: {point.status}, {point.path or 'no training'}, trainable {point.trainable_params:,}, "
            f"{per_epoch} s/epoch, extract {point.extract_seconds:.1f} s, best val acc {acc}\n"
        )
        sys.stderr.flush()


class FinderProgress(TerminalProgress):
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
