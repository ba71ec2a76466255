"""A run's history as types: one `EpochRow` per epoch, a `History` of them (history.csv), read and written here.

The best and final validation accuracy and the mean epoch time are computed
here once (on `History`); the run store, the sweep, the job snapshot, the
command line and the pages all ask it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

from tlcore.jsontypes import JSONValue

Cell = str | int | float | bool  # one value of a history row


@dataclass(frozen=True)
class EpochRow:
    """One epoch, as a line of history.csv (the fields are its columns, in order; `route` is the column "path")."""

    phase: int  # 1, or 2 for fine-tuning
    epoch: int  # 1-based, counted over all phases
    freeze_at: int
    learning_rate: float
    route: str  # the route the phase took: cached | end_to_end
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float  # training batches plus validation, not feature extraction
    batches: int
    partial: bool  # cut short by Stop (or a failure) before its last batch

    @classmethod
    def of(cls, row: EpochRow | Mapping[str, JSONValue]) -> EpochRow:
        """A row from a mapping (a training event's row, a CSV line of strings); keys it does not know are ignored.

        The route is read from "route" or from "path", the column's name in history.csv.

        Raises:
            ValueError: a column is missing or its value is not of the column's type.
        """
        if isinstance(row, EpochRow):
            return row
        if ROUTE_COLUMN not in row and "route" in row:
            row = {**row, ROUTE_COLUMN: row["route"]}
        return cls(
            phase=_whole(row, "phase"),
            epoch=_whole(row, "epoch"),
            freeze_at=_whole(row, "freeze_at"),
            learning_rate=_number(row, "learning_rate"),
            route=_text(row, ROUTE_COLUMN),
            loss=_number(row, "loss"),
            accuracy=_number(row, "accuracy"),
            val_loss=_number(row, "val_loss"),
            val_accuracy=_number(row, "val_accuracy"),
            seconds=_number(row, "seconds"),
            batches=_whole(row, "batches"),
            partial=_flag(row, "partial"),
        )

    def as_dict(self) -> dict[str, Cell]:
        """The row keyed by history.csv's columns (the route under "path", as every version wrote it)."""
        return {_column(name): value for name, value in dataclasses.asdict(self).items()}


# history.csv names the route "path", as every version wrote it: older code reads new files, and new code old ones.
ROUTE_COLUMN = "path"


def _column(field_name: str) -> str:
    return ROUTE_COLUMN if field_name == "route" else field_name


HISTORY_FIELDS = [_column(f.name) for f in dataclasses.fields(EpochRow)]


def _cell(row: Mapping[str, JSONValue], name: str) -> JSONValue:
    if name not in row:
        raise ValueError(f"no {name!r} column")
    return row[name]


def _not(name: str, value: JSONValue, kind: str) -> ValueError:
    return ValueError(f"{name} is {value!r}, not {kind}")


def _text(row: Mapping[str, JSONValue], name: str) -> str:
    return str(_cell(row, name))


def _whole(row: Mapping[str, JSONValue], name: str) -> int:
    value = _cell(row, name)
    if isinstance(value, (str, int)):  # bool included; a float never: an epoch or a layer count is never fractional
        try:
            return int(value)
        except ValueError:
            pass
    raise _not(name, value, "a whole number")


def _number(row: Mapping[str, JSONValue], name: str) -> float:
    value = _cell(row, name)
    if isinstance(value, (str, int, float)):
        try:
            return float(value)
        except ValueError:
            pass
    raise _not(name, value, "a number")


def _flag(row: Mapping[str, JSONValue], name: str) -> bool:
    """A CSV's "True"/"False", or a Python bool or int."""
    value = _cell(row, name)
    if isinstance(value, str) and value in ("True", "False"):
        return value == "True"
    if isinstance(value, (bool, int)):
        return bool(value)
    raise _not(name, value, "True or False")


def _best(values: Iterable[float], pick: Callable[[list[float]], float]) -> float | None:
    """The best of the values that are numbers; NaN (a diverged epoch) never wins, nor loses."""
    numbers = [v for v in values if not math.isnan(v)]
    return pick(numbers) if numbers else None


@dataclass(frozen=True)
class History(Sequence[EpochRow]):
    """A run's epochs in order, with the figures people read off them."""

    rows: tuple[EpochRow, ...] = ()
    # The epoch whose weights the model holds when early stopping restored an earlier epoch's at the end;
    # None: the last epoch's (run.json keeps it as "kept_epoch", history.csv has every epoch).
    kept_epoch: int | None = None

    @classmethod
    def of(cls, rows: Iterable[EpochRow | Mapping[str, JSONValue]], kept_epoch: int | None = None) -> History:
        """A history from rows: EpochRows, or mappings such as training events' rows."""
        if isinstance(rows, History):
            return rows if kept_epoch is None else rows.keeping(kept_epoch)
        return cls(tuple(EpochRow.of(r) for r in rows), kept_epoch)

    def keeping(self, epoch: int | None) -> History:
        """This history with the model's weights from `epoch` (None: from the last epoch)."""
        return dataclasses.replace(self, kept_epoch=epoch)

    @classmethod
    def from_csv(cls, text: str, source: str = "history.csv") -> History:
        """Parse history.csv text.

        Raises:
            ValueError: naming `source`, the line and the reason.
        """
        reader = csv.DictReader(io.StringIO(text))
        missing = [name for name in HISTORY_FIELDS if name not in (reader.fieldnames or HISTORY_FIELDS)]
        if missing:
            raise ValueError(f"{source} lacks the column(s) {', '.join(missing)}")
        rows = []
        for line, raw in enumerate(reader, start=2):  # line 1 is the header
            try:
                rows.append(EpochRow.of(raw))
            except ValueError as err:
                raise ValueError(f"{source}, line {line}: {err}") from None
        return cls(tuple(rows))

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(self.as_rows())
        return out.getvalue()

    def as_rows(self) -> list[dict[str, Cell]]:
        """The rows as dicts keyed by column, for charts and tables."""
        return [row.as_dict() for row in self.rows]

    def plus(self, row: EpochRow | Mapping[str, JSONValue]) -> History:
        return History((*self.rows, EpochRow.of(row)), self.kept_epoch)

    @overload
    def __getitem__(self, index: int) -> EpochRow: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[EpochRow]: ...

    def __getitem__(self, index: int | slice) -> EpochRow | Sequence[EpochRow]:
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[EpochRow]:
        return iter(self.rows)

    @property
    def final(self) -> EpochRow | None:
        """The epoch whose weights the model holds: the last one, partial or not, unless early stopping kept
        an earlier one (`kept_epoch`); None before the first."""
        kept = [r for r in self.rows if r.epoch == self.kept_epoch]
        return kept[-1] if kept else (self.rows[-1] if self.rows else None)

    @property
    def final_val_accuracy(self) -> float | None:
        return self.final.val_accuracy if self.final else None

    @property
    def final_val_loss(self) -> float | None:
        return self.final.val_loss if self.final else None

    @property
    def best_val_accuracy(self) -> float | None:
        """The highest validation accuracy of any epoch, both phases and a partial epoch included."""
        return _best((r.val_accuracy for r in self.rows), max)

    @property
    def best_val_loss(self) -> float | None:
        return _best((r.val_loss for r in self.rows), min)

    @property
    def mean_epoch_seconds(self) -> float | None:
        """Mean time of the complete epochs: a partial one (cut short by Stop) would flatter the pace,
        so it counts only when it is the only epoch. None before the first epoch."""
        complete = [r.seconds for r in self.rows if not r.partial] or [r.seconds for r in self.rows]
        return sum(complete) / len(complete) if complete else None

    def final_metrics(self) -> dict[str, float]:
        """The final epoch's metrics (see `final`) and the best validation accuracy (run.json's "final"); {} when
        empty."""
        if self.final is None:
            return {}
        last = self.final
        out = {
            "loss": last.loss,
            "accuracy": last.accuracy,
            "val_loss": last.val_loss,
            "val_accuracy": last.val_accuracy,
        }
        if (best := self.best_val_accuracy) is not None:
            out["best_val_accuracy"] = best
        return out
