"""Progress of the commands that train, on stderr: a rich progress display when stderr is a terminal, else
plain lines that a log keeps (a phase, an epoch, a sweep point, a finished stage, a group of LR steps).
Under `sweep --json` each finished point's JSON line goes to stdout from here, as the point finishes."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from tlcore.jobs import SweepPointDone
from tlcore.lr_finder import WARMUP_STEPS, FinderStart, FinderStep, format_rate
from tlcore.progress import BatchEnd, EpochEnd, FeaturesReused, PhaseStart, Planned, StepProgress
from tlcore.sweep import SweepPoint, SweepPointStart

if TYPE_CHECKING:  # rich is imported when a terminal shows the display: a plain run does without it
    from rich.console import Console
    from rich.progress import Progress, TaskID

V = TypeVar("V")
BAR_WIDTH = 24  # characters of a bar written as a plain line


def finite(values: Mapping[str, V]) -> dict[str, V | None]:
    """NaN and infinity (a diverged point's loss) as null: they are not JSON."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}


def point_json(point: SweepPoint) -> str:
    """A sweep point's JSON line: its fields, its route under `path` (as README documents) and `route`."""
    values = point.to_dict()
    return json.dumps(finite({**values, "route": values["path"]}))


@dataclass(frozen=True)
class Bar:
    """Where a counted stage stands: decoding, extracting, an epoch's batches, the LR test's steps."""

    label: str
    done: int
    total: int
    note: str = ""  # the loss so far, the rate

    def text(self) -> str:
        """The bar as one line of text: `decode   [########................] 30/90`."""
        filled = int(BAR_WIDTH * self.done / max(1, self.total))
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return f"{self.label:<8} [{bar}] {self.done}/{self.total} {self.note}".rstrip()


def point_line(point: SweepPoint) -> str:
    """What a finished sweep point did, in one line."""
    acc = "—" if point.best_val_accuracy is None else f"{point.best_val_accuracy:.3f}"
    per_epoch = "—" if point.epoch_seconds is None else f"{point.epoch_seconds:.2f}"
    return (
        f"{point.label}: {point.status}, {point.route or 'no training'}, trainable {point.trainable_params:,}, "
        f"{per_epoch} s/epoch, extract {point.extract_seconds:.1f} s, best val acc {acc}"
    )


def event_line(event: object, total_epochs: int) -> str | None:
    """The line an event writes (a phase, an epoch, a sweep point, the LR test's start), or None for a bar's."""
    if isinstance(event, PhaseStart):
        return (
            f"phase {event.phase}: freeze_at={event.freeze_at}, {event.epochs} epoch(s), "
            f"lr={event.learning_rate:g}, path={event.route} ({event.route_reason}); "
            f"trainable {event.trainable_params:,} / frozen {event.frozen_params:,} params"
        )
    if isinstance(event, FeaturesReused):
        return f"frozen features reused from the feature store (computed {event.created})"
    if isinstance(event, EpochEnd):
        r = event.row
        return (
            f"epoch {r.epoch}/{total_epochs}: loss {r.loss:.4f} acc {r.accuracy:.3f} "
            f"val_loss {r.val_loss:.4f} val_acc {r.val_accuracy:.3f} ({r.seconds:.1f}s)"
            + (" [partial]" if r.partial else "")
        )
    if isinstance(event, SweepPointStart):
        weights = "random weights, every layer learns" if event.label == "scratch" else f"freeze_at={event.freeze_at}"
        return f"[{event.index}/{event.total}] {event.label} ({weights})"
    if isinstance(event, SweepPointDone):
        return point_line(event.point)
    if isinstance(event, FinderStart):
        return (
            f"sweep: phase {event.phase}, freeze_at={event.freeze_at}, path={event.route} "
            f"({event.route_reason}); trainable {event.trainable_params:,} / frozen {event.frozen_params:,}"
        )
    return None


def event_bar(event: object, total_epochs: int) -> tuple[Bar, bool] | None:
    """The bar an event moves, and whether a plain log keeps it as a line when its stage ends: decoding,
    extracting and each group of LR steps (warm-up, sweep) do; an epoch's batches do not (its line says more)."""
    if isinstance(event, StepProgress):
        return Bar(event.stage, event.done, event.total), True
    if isinstance(event, BatchEnd):
        return Bar(f"epoch {event.epoch}/{total_epochs}", event.batch, event.batches, f"loss {event.loss:.4f}"), False
    if isinstance(event, FinderStep):
        label, total = ("sweep", event.steps) if event.steps else ("warm-up", WARMUP_STEPS)
        return Bar(label, event.step, total, f"lr {format_rate(event.rate)} loss {event.loss:.4f}"), True
    return None


class CommandProgress:
    """A command's progress listener (a ProgressFn): use it as a context manager, so the display ends.

    Args:
        total_epochs: the epochs an epoch's line counts to until the run's plan says (Planned): the config's.
        json_lines: a sweep under --json: each finished point's JSON line on stdout.
        console: where the rich display goes (tests); default: stderr's, when stderr is a terminal.
    """

    def __init__(self, total_epochs: int, *, json_lines: bool = False, console: Console | None = None) -> None:
        self.total_epochs = total_epochs
        self.json_lines = json_lines
        self.terminal = console is not None or sys.stderr.isatty()
        self._console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._label = ""  # the terminal bar's stage: another stage starts the bar again
        self._pending: Bar | None = None  # plain: the stage under way, written as a line when it ends
        self._closed = False

    def __enter__(self) -> CommandProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Write the stage under way as a line (plain), or end the display (terminal)."""
        self._end_stage()
        self._closed = True
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __call__(self, event: object) -> None:
        if isinstance(event, Planned):  # the data may stretch the epochs set (tlcore.schedule): count to the plan
            self.total_epochs = event.schedule.total_epochs
        if isinstance(event, SweepPointDone) and self.json_lines:
            print(point_json(event.point), flush=True)
        moved = event_bar(event, self.total_epochs)
        if moved is not None:
            self._move(*moved)
            return
        line = event_line(event, self.total_epochs)
        if line is not None:
            self._end_stage()
            self._write(line)

    def _display(self) -> Progress | None:
        """The rich display, started at the first event: not while TensorFlow loads, when stderr's lines are
        filtered through a file (tlcore.quiet) and a refresh would be kept there with a log line."""
        if self.terminal and self._progress is None and not self._closed:
            self._progress = _rich_progress(self._console)
            self._progress.start()
        return self._progress

    def _move(self, bar: Bar, kept: bool) -> None:
        progress = self._display()
        if progress is not None:
            self._show(progress, bar)
            return
        if self._pending is not None and self._pending.label != bar.label:
            self._end_stage()
        if kept:
            self._pending = bar
            if bar.done >= bar.total:
                self._end_stage()

    def _show(self, progress: Progress, bar: Bar) -> None:
        if self._task is None:
            self._task = progress.add_task(bar.label, total=bar.total, completed=bar.done, note=bar.note)
        elif bar.label != self._label:
            progress.reset(self._task, total=bar.total, completed=bar.done, description=bar.label, note=bar.note)
        else:
            progress.update(self._task, total=bar.total, completed=bar.done, note=bar.note)
        self._label = bar.label

    def _end_stage(self) -> None:
        if self._pending is not None:
            self._write(self._pending.text())
            self._pending = None

    def _write(self, line: str) -> None:
        progress = self._display()
        if progress is not None:  # above the display, which stays at the bottom
            progress.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
            return
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _rich_progress(console: Console | None) -> Progress:
    """The display: the stage, its bar, done/total, the loss so far and the time the stage has taken."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}", markup=False),
        TimeElapsedColumn(),
        console=console or Console(stderr=True, force_terminal=True),
        transient=True,  # the lines stay; the bar goes when the command ends
        redirect_stdout=False,  # stdout is for results (JSON under --json), never the display's
        redirect_stderr=False,
    )
