"""A run's record and its history as types: read and written here, and nowhere else.

`RunRecord` is what run.json holds; `History` is what history.csv holds, one
`EpochRow` per epoch. The best and final validation accuracy and the mean
epoch time are computed here once (on `History`); the run store, the sweep,
the job snapshot, the command line and the pages all ask it.

The files keep the shape every earlier version wrote: a record read from an
older run.json gets defaults for the keys it lacks and keeps the keys it does
not know, so writing it back loses nothing, and older code reads new files.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from tlcore.config import TrainConfig
from tlcore.devices import FLOAT32
from tlcore.jsontypes import JSONObject, JSONValue

RUNNING, COMPLETED, STOPPED, FAILED, INTERRUPTED = "running", "completed", "stopped", "failed", "interrupted"
Cell = str | int | float | bool  # one value of a history row


# --- history: one row per epoch ------------------------------------------------------


@dataclass(frozen=True)
class EpochRow:
    """One epoch, as a line of history.csv (the field names are its columns, in order)."""

    phase: int  # 1, or 2 for fine-tuning
    epoch: int  # 1-based, counted over all phases
    freeze_at: int
    learning_rate: float
    path: str  # the route the phase took: cached | end_to_end
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

        Raises:
            ValueError: a column is missing or its value is not of the column's type.
        """
        if isinstance(row, EpochRow):
            return row
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in row:
                raise ValueError(f"no {f.name!r} column")
            values[f.name] = _convert(f.name, row[f.name], _ROW_TYPES[f.name])
        return cls(**values)

    def as_dict(self) -> dict[str, Cell]:
        return dataclasses.asdict(self)


HISTORY_FIELDS = [f.name for f in dataclasses.fields(EpochRow)]
_ROW_TYPES = {"phase": int, "epoch": int, "freeze_at": int, "batches": int, "path": str, "partial": bool}
_ROW_TYPES.update({name: float for name in HISTORY_FIELDS if name not in _ROW_TYPES})


def _convert(name: str, value: JSONValue, kind: type) -> Any:  # typed loosely: of the type of the field for `kind`
    """`value` as `kind`: a CSV's strings ("3", "0.5", "True") and Python values alike."""
    try:
        if kind is bool:
            if isinstance(value, str) and value in ("True", "False"):
                return value == "True"
            if isinstance(value, (bool, int)):
                return bool(value)
            raise ValueError
        if kind is int and isinstance(value, float):
            raise ValueError  # an epoch or a layer count is never fractional
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is {value!r}, not {_KIND_WORDS[kind]}") from None


_KIND_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "True or False"}


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


# --- the record: what run.json holds ----------------------------------------------------


@dataclass
class DatasetFacts:
    """The dataset a run trained on, as it was when the run started."""

    root: str = ""
    fingerprint: str = ""  # changes when the files (names, sizes, dates) change
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> images
    skipped: int = 0  # files left out as unusable
    extra: JSONObject = field(default_factory=dict)  # keys this version does not know, kept as read

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> DatasetFacts:
        known, extra = _split_known(cls, data, "dataset.")
        return cls(**known, extra=extra)

    def to_dict(self) -> JSONObject:
        return {
            "root": self.root,
            "fingerprint": self.fingerprint,
            "counts": self.counts,
            "skipped": self.skipped,
            **self.extra,
        }


@dataclass
class StartRecord:
    """Where a run started: what rebuilds its starting weights W0, so no second copy of VGG16 is kept.

    `tlcore.tf.training.build_for(config, num_classes)` with these weights and
    this seed gives W0 again: the weights file (checked by its content's
    identity), the head and any random layers drawn from the seed. Each
    layer's norm ||W0|| is kept to check that a rebuild gave the same numbers.
    """

    weights: str = ""  # normalized: "none" (random, from seed), "imagenet" or a file's absolute path
    weights_file: str = ""  # the file read ("" for random weights); for ImageNet the Keras cache's file
    weights_identity: str = ""  # tlcore.backbones.weights_identity: "none" or "sha256:<hex>" of the file
    seed: int = 0
    keras: str = ""  # Keras' version: its random initialisation may differ between versions
    layer_norms: dict[str, float] = field(default_factory=dict)  # layer name -> ||W0||, every layer with weights
    extra: JSONObject = field(default_factory=dict)  # keys this version does not know, kept as read

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> StartRecord:
        known, extra = _split_known(cls, data, "start.")
        return cls(**known, extra=extra)

    def to_dict(self) -> JSONObject:
        return {
            "weights": self.weights,
            "weights_file": self.weights_file,
            "weights_identity": self.weights_identity,
            "seed": self.seed,
            "keras": self.keras,
            "layer_norms": self.layer_norms,
            **self.extra,
        }


@dataclass
class RunRecord:
    """A run as run.json describes it, with its history (read from history.csv) beside it.

    Optional fields are None until the run gets that far (`final` when it
    ends, ...); None fields are left out of run.json, as earlier versions did.
    An unreadable config (written by a newer version, edited by hand) reads
    as None and is kept as read in `extra["config"]`.
    """

    run_id: str = ""
    status: str = FAILED  # a record without a status cannot be trusted to have finished
    reason: str = ""  # why it stopped or failed, or what was not saved
    created: str = ""  # UTC, ISO 8601
    pid: int = -1  # the process recording it, and where: a dead one means "interrupted"
    host: str = ""
    # What trained it, in words (tlcore.devices.training_device), e.g. "GPU: NVIDIA H200 (compute capability 9.0)";
    # None in runs recorded before the lab said. Its precision is the config's.
    device: str | None = None
    config: TrainConfig | None = None
    class_names: list[str] | None = None
    dataset: DatasetFacts | None = None
    validation_files: list[str] | None = None  # relative to the dataset root: the held-out split
    versions: dict[str, str] = field(default_factory=dict)  # python and library versions
    tags: JSONObject = field(default_factory=dict)  # e.g. the sweep and point a run belongs to
    owner: str | None = None  # who made it (tlcore.access): an opaque id; None for the teacher or administrator
    start: StartRecord | None = None  # where it started; None in runs saved before the lab recorded it
    epochs_done: int = 0
    heartbeat: float = 0.0  # time.time() of the last write
    paths: list[str] | None = None  # the route of each phase so far
    last_epoch: EpochRow | None = None
    final: dict[str, float] | None = None  # History.final_metrics() when the run ended
    kept_epoch: int | None = None  # the epoch early stopping restored at the end (History.kept_epoch)
    seconds: float | None = None  # the whole run's wall time
    extract_seconds: float | None = None
    # Per cached phase: {"phase", "freeze_at", "reused" (from the feature store), "created" (when computed)}
    features: list[JSONObject] | None = None
    train_seconds: float | None = None
    model_saved: bool | None = None
    finished: str | None = None  # UTC, ISO 8601
    extra: JSONObject = field(default_factory=dict)  # keys this version does not know, kept as read
    # Not in run.json: where the record was read from, and history.csv.
    run_dir: Path | None = None
    history: History = field(default_factory=History)

    @classmethod
    def from_dict(cls, data: JSONValue) -> RunRecord:
        """A record from run.json's object, of this version or an earlier one.

        Raises:
            ValueError: a known key holds a value of the wrong kind (the message names it).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, found {type(data).__name__}")
        known, extra = _split_known(cls, data, "")
        if "config" in known:
            raw = known.pop("config")
            try:
                known["config"] = TrainConfig.from_dict(raw)
            except (AttributeError, KeyError, TypeError, ValueError):
                extra["config"] = raw
        if known.get("dataset") is not None:
            known["dataset"] = DatasetFacts.from_dict(known["dataset"])
        if known.get("start") is not None:
            known["start"] = StartRecord.from_dict(known["start"])
        if known.get("last_epoch") is not None:
            try:
                known["last_epoch"] = EpochRow.of(known["last_epoch"])
            except ValueError as err:
                raise ValueError(f"last_epoch: {err}") from None
        return cls(**known, extra=extra)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunRecord:
        """A record from run.json's text (raises ValueError when it is not JSON or not a record)."""
        return cls.from_dict(json.loads(text))

    @property
    def precision(self) -> str:
        """The numeric precision it trained in; float32 for runs recorded before the config named one."""
        return self.config.precision if self.config is not None else FLOAT32

    def to_dict(self) -> JSONObject:
        """run.json's object: the same keys, in the same order, as earlier versions wrote."""
        out: JSONObject = {}
        for name in _JSON_KINDS[RunRecord]:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, (TrainConfig, DatasetFacts, StartRecord)):
                value = value.to_dict()
            elif isinstance(value, EpochRow):
                value = value.as_dict()
            out[name] = value
        return {**out, **{k: v for k, v in self.extra.items() if k not in out}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def updated(self, **fields: JSONValue) -> RunRecord:
        """A copy with some of run.json's keys changed (values as run.json holds them); unknown keys go to extra."""
        changed = RunRecord.from_dict({**self.to_dict(), **fields})
        changed.run_dir, changed.history = self.run_dir, self.history.keeping(changed.kept_epoch)
        return changed


_NUMBER = (int, float)
# The keys each file object holds, in the order they are written, and the JSON kind each must hold
# (null counts as absent: the field's default).
_JSON_KINDS: dict[type, dict[str, type | tuple[type, ...]]] = {
    RunRecord: {
        "run_id": str,
        "status": str,
        "reason": str,
        "created": str,
        "pid": int,
        "host": str,
        "device": str,
        "config": dict,
        "class_names": list,
        "dataset": dict,
        "validation_files": list,
        "versions": dict,
        "tags": dict,
        "owner": str,
        "start": dict,
        "epochs_done": int,
        "heartbeat": _NUMBER,
        "paths": list,
        "last_epoch": dict,
        "final": dict,
        "kept_epoch": int,
        "seconds": _NUMBER,
        "extract_seconds": _NUMBER,
        "features": list,
        "train_seconds": _NUMBER,
        "model_saved": bool,
        "finished": str,
    },
    DatasetFacts: {"root": str, "fingerprint": str, "counts": dict, "skipped": int},
    StartRecord: {
        "weights": str,
        "weights_file": str,
        "weights_identity": str,
        "seed": int,
        "keras": str,
        "layer_norms": dict,
    },
}


def _split_known(cls: type, data: Mapping[str, JSONValue], prefix: str) -> tuple[dict[str, Any], JSONObject]:
    """The keys `cls` knows (kinds checked, nulls dropped; loosely typed, for `cls(**known)`) and the others as read."""
    kinds = _JSON_KINDS[cls]
    known, extra = {}, {}
    for key, value in data.items():
        if key not in kinds:
            extra[key] = value
        elif value is not None:
            if not isinstance(value, kinds[key]):
                raise ValueError(f"{prefix}{key} is {value!r}, not a JSON {_json_kind(kinds[key])}")
            known[key] = value
    return known, extra


def _json_kind(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return "number"
    return {str: "string", int: "integer", bool: "boolean", list: "array", dict: "object"}[kind]
