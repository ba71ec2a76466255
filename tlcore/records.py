"""A run's record as types: what run.json holds, read and written here, and nowhere else.

`RunRecord` is run.json, with its `History` (history.csv, `tlcore.history`)
beside it. The file keeps the shape every earlier version wrote: a record read
from an older run.json gets defaults for the keys it lacks and keeps the keys
it does not know, so writing it back loses nothing, and older code reads new files.
One key was renamed: the phases' routes, "routes" now, are still read from "paths".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlcore.config import TrainConfig
from tlcore.devices import FLOAT32
from tlcore.history import EpochRow, History
from tlcore.jsontypes import JSONObject, JSONValue

RUNNING, COMPLETED, STOPPED, FAILED, INTERRUPTED = "running", "completed", "stopped", "failed", "interrupted"


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
    train_files: list[str] | None = None  # relative to the dataset root: what it trained on; None in older runs
    versions: dict[str, str] = field(default_factory=dict)  # python and library versions
    tags: JSONObject = field(default_factory=dict)  # e.g. the sweep and point a run belongs to
    owner: str | None = None  # who made it (tlcore.access): an opaque id; None for the teacher or administrator
    start: StartRecord | None = None  # where it started; None in runs saved before the lab recorded it
    epochs_done: int = 0
    heartbeat: float = 0.0  # time.time() of the last write
    routes: list[str] | None = None  # the route of each phase so far (run.json's "paths" before)
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
        if "paths" in data and "routes" not in data:  # the routes' name in run.json before
            data = {("routes" if key == "paths" else key): value for key, value in data.items()}
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
        "train_files": list,
        "versions": dict,
        "tags": dict,
        "owner": str,
        "start": dict,
        "epochs_done": int,
        "heartbeat": _NUMBER,
        "routes": list,
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
