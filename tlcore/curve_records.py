"""Saved transfer curves: each in its own folder of the runs folder, with its runs and its curve.json.

`<runs>/curves/<curve id>/` holds the curve's runs (run folders tagged with the curve, `CurveUnit.tags`) and
curve.json: its owner, settings and status and, once every run is done, the curve itself. The curves folder
has no run.json, so the runs list (`RunStore.list`) never reads it: a curve's dozens of runs stay out of the
Runs table, out of a student's run quota (they keep no model, a few kB each) and out of every page's listing,
until someone asks for them (`CurveStore.runs_of`). Whoever may not use the owner's things meets "no such
curve", as for a run.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tlcore.access import plain_name
from tlcore.config import TrainConfig
from tlcore.data import DatasetInfo
from tlcore.fileio import atomic_write
from tlcore.jsontypes import JSONObject
from tlcore.records import COMPLETED, RUNNING
from tlcore.run_folder import utc_now
from tlcore.runs import RunStore
from tlcore.transfer_curve import TransferCurve, assemble, chance_of, check_points, curve_base, planned_units

CURVES_FOLDER, CURVE_FILE = "curves", "curve.json"


def new_curve_id() -> str:
    """A curve's id: when it started, then a random part (ids sort by start time)."""
    return f"curve-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass
class SavedCurve:
    """A curve as curve.json keeps it; `curve` is None until every run is done."""

    curve_id: str
    owner: str | None
    status: str  # RUNNING, then COMPLETED, STOPPED or FAILED
    created: str
    runs_planned: int
    settings: JSONObject = field(default_factory=dict)  # points, repeats, the base settings, the dataset
    reason: str = ""
    curve: TransferCurve | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "curve_id": self.curve_id,
                "owner": self.owner,
                "status": self.status,
                "created": self.created,
                "runs_planned": self.runs_planned,
                "settings": self.settings,
                "reason": self.reason,
                "curve": self.curve.to_dict() if self.curve else None,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str, source: str) -> SavedCurve:
        """Raises ValueError naming `source` when it is not a saved curve."""
        try:
            data = json.loads(text)
            settings, curve = data.get("settings") or {}, data.get("curve")
            return cls(
                curve_id=str(data["curve_id"]),
                owner=data.get("owner") or None,
                status=str(data["status"]),
                created=str(data.get("created", "")),
                runs_planned=int(data.get("runs_planned", 0)),
                settings=settings if isinstance(settings, dict) else {},
                reason=str(data.get("reason", "")),
                curve=TransferCurve.from_dict(curve) if isinstance(curve, dict) else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"{source} is not a saved transfer curve: {err}") from None

    @property
    def done(self) -> bool:
        return self.status == COMPLETED and self.curve is not None


class CurveStore:
    """The transfer curves of a runs folder as its actor sees them: create, save, list, open and delete."""

    def __init__(self, runs: RunStore):
        self.runs = runs
        self.root = runs.root / CURVES_FOLDER

    def create(
        self,
        curve_id: str,
        base: TrainConfig,
        info: DatasetInfo,
        points: Sequence[int],
        repeats: int,
        runs_planned: int,
    ) -> SavedCurve:
        """The curve's folder and its curve.json (status running), before any run trains."""
        saved = SavedCurve(
            curve_id=curve_id,
            owner=self.runs.actor.owner or None,
            status=RUNNING,
            created=utc_now(),
            runs_planned=runs_planned,
            settings={"points": list(points), "repeats": repeats, "config": base.to_dict(), "dataset": str(info.root)},
        )
        self._folder(curve_id).mkdir(parents=True, exist_ok=True)
        self.save(saved)
        return saved

    def save(self, saved: SavedCurve) -> None:
        atomic_write(self._folder(saved.curve_id) / CURVE_FILE, saved.to_json())

    def load(self, curve_id: str) -> SavedCurve:
        """The saved curve (FileNotFoundError when there is none, or none this actor may use)."""
        path = self._folder(curve_id) / CURVE_FILE if plain_name(curve_id) else None
        if path is None or not path.is_file():
            raise self._no_curve(curve_id)
        saved = SavedCurve.from_json(path.read_text(), str(path))
        if not self.runs.actor.may_use(saved.owner):
            raise self._no_curve(curve_id)
        return saved

    def list(self) -> list[SavedCurve]:
        """The readable curves this actor may use, newest first."""
        return list(self._readable())

    def newest_of(self, owner: str | None) -> SavedCurve | None:
        """`owner`'s newest readable curve that this actor may use; the files are read only until it is found
        (a page asks at every rerun, and a class's runs folder holds every student's curves)."""
        return next((saved for saved in self._readable() if saved.owner == owner), None)

    def _readable(self) -> Iterator[SavedCurve]:
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir(), reverse=True):  # ids sort by start time
            try:
                yield self.load(folder.name)
            except (OSError, ValueError):
                continue

    def runs_of(self, curve_id: str) -> RunStore:
        """The curve's runs, seen by this actor (FileNotFoundError when the curve is not theirs)."""
        self.load(curve_id)
        return RunStore(self._folder(curve_id), self.runs.actor, quota=False)

    def delete(self, curve_id: str) -> None:
        """Delete a curve and its runs (FileNotFoundError, as for a missing curve, when it is not the actor's)."""
        self.load(curve_id)
        shutil.rmtree(self._folder(curve_id))

    def _folder(self, curve_id: str) -> Path:
        return self.root / curve_id

    def _no_curve(self, curve_id: str) -> FileNotFoundError:
        return FileNotFoundError(f"No transfer curve {curve_id!r} in {self.root}")


class CurveRecording:
    """A curve being trained: its saved record from the start, its units, and the end it came to.

    Whatever trains the units (`tlcore.tf.transfer_curve.run_transfer_curve` in turn, the job side by side)
    keeps the record through this, so a curve stopped, failed or finished says so after a restart too.
    """

    def __init__(
        self,
        store: RunStore,
        base: TrainConfig,
        info: DatasetInfo,
        points: Sequence[int],
        repeats: int,
        curve_id: str | None = None,
    ):
        self.check(points, repeats)
        self.started = time.perf_counter()
        self.base, self.info, self.points, self.repeats = curve_base(base), info, check_points(points), repeats
        self.units = planned_units(self.base, self.points, repeats)
        self.total = sum(len(unit.runs) for unit in self.units)
        self.curves = CurveStore(store)
        self.saved = self.curves.create(curve_id or new_curve_id(), self.base, info, self.points, repeats, self.total)
        self.runs = self.curves.runs_of(self.saved.curve_id)

    @staticmethod
    def check(points: Sequence[int], repeats: int) -> None:
        """Raise ValueError for points that are not distinct freeze points, or fewer than one repeat."""
        check_points(points)
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1. Received: {repeats}")

    @property
    def curve_id(self) -> str:
        return self.saved.curve_id

    def ended(self, status: str, reason: str) -> None:
        """The curve ends without its result (STOPPED or FAILED), and says why."""
        self.saved.status, self.saved.reason = status, reason
        self.curves.save(self.saved)

    def finish(self, results: Sequence[tuple[int, str, float]]) -> TransferCurve:
        """Every run's (freeze point, condition, accuracy), in plan order: the curve, saved."""
        seconds = time.perf_counter() - self.started
        curve = assemble(self.points, self.repeats, results, chance_of(self.info), self.base, seconds)
        self.saved.curve, self.saved.status = curve, COMPLETED
        self.curves.save(self.saved)
        return curve
