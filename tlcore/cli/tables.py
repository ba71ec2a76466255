"""Plain-text tables the commands print: a sweep's points, a run's weight changes, an LR range test's
curve and a linear probe's boundaries."""

from __future__ import annotations

import math
from collections.abc import Sequence

from tlcore.lr_finder import LRFinderResult, format_rate
from tlcore.probe import ProbeResult, format_accuracy
from tlcore.sweep import SweepPoint
from tlcore.weight_changes import WeightChanges

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


def sweep_table(points: Sequence[SweepPoint]) -> str:
    """The sweep's points as a plain-text table, one row per point."""
    rows = [[heading for heading, _, _ in SWEEP_COLUMNS]]
    for point in points:
        values = point.to_dict()
        rows.append(["—" if values[key] is None else fmt.format(values[key]) for _, key, fmt in SWEEP_COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(SWEEP_COLUMNS))]
    return "\n".join(
        "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in rows
    )


CHANGE_BAR_DECADES = 5  # the text bar spans 1e-5 .. 1 of a layer's size, log scale
CHANGE_BAR_PER_DECADE = 4  # characters


def change_bar(relative_change: float | None) -> str:
    """A log-scale bar of '#' for a relative change: 4 characters per decade above 1e-5."""
    if not relative_change or relative_change <= 0:
        return ""
    decades = math.log10(relative_change) + CHANGE_BAR_DECADES
    return "#" * max(1, round(decades * CHANGE_BAR_PER_DECADE))


def changes_table(changes: WeightChanges) -> str:
    """One line per layer with weights: name, block, trained or frozen, relative change (and CKA) and its bar."""
    similarity = changes.representations.by_layer() if changes.representations else None
    cka_column = ["CKA"] if similarity is not None else []
    rows = [["layer", "block", "status", "||W-W0||/||W0||", *cka_column, "(log scale)"]]
    for layer in changes.layers:
        change = layer.relative_change
        cka = [] if similarity is None else [f"{similarity[layer.name]:.3f}" if layer.name in similarity else "—"]
        rows.append(
            [
                layer.name,
                layer.block,
                "trained" if layer.trained else "frozen",
                "—" if change is None else f"{change:.3g}",
                *cka,
                change_bar(change),
            ]
        )
    numbers = len(rows[0]) - 1  # every column but the bar; the numbers right-aligned
    widths = [max(len(row[i]) for row in rows) for i in range(numbers)]
    return "\n".join(
        "  ".join(
            [*(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))), row[-1]]
        ).rstrip()
        for row in rows
    )


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


def probe_table(result: ProbeResult) -> str:
    """A row per block boundary: the probe's accuracy on ImageNet's weights and on random ones."""
    lines = [f"{'freeze_at':>9}  {'layer':<12} {'ImageNet':>8} {'random':>8}"]
    for score in result.boundaries:
        lines.append(
            f"{score.freeze_at:>9}  {score.layer:<12} {format_accuracy(score.imagenet):>8} "
            f"{format_accuracy(score.random):>8}"
        )
    return "\n".join(lines)
