"""What the teacher's board shows: each student's state, and the class's results as one experiment.

Plain data from the roster (tlcore.classroom), the runs folder and the job registry; no images, no models:
another student's run appears here only as a summary (name, settings, accuracy).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlcore.baselines import run_baselines
from tlcore.classroom import Student
from tlcore.jobs import JobRegistry
from tlcore.photos import PhotoStore
from tlcore.records import COMPLETED, STOPPED
from tlcore.runs import RunStore, RunSummary

ANONYMOUS = "a student"


@dataclass(frozen=True)
class ClassResult:
    """One finished run of the class: a point of the class's transfer curve."""

    name: str
    freeze_at: int
    pretrained: bool
    val_accuracy: float
    chance: float
    run_id: str


def student_rows(people: Sequence[Student], store: RunStore, jobs: JobRegistry) -> list[dict[str, Any]]:
    """A row per student: name, photos per class, the job's state and progress, place in the queue, and the
    settings and validation accuracy of their newest run."""
    runs_by_owner: dict[str, list[RunSummary]] = {}
    for summary in store.list():  # newest first
        runs_by_owner.setdefault(summary.record.owner or "", []).append(summary)
    places = {job.snapshot().owner: place for place, job in enumerate(jobs.queue(), start=1)}
    rows = []
    for person in people:
        if person.teacher:
            continue
        photos = PhotoStore(person.owner, store.root).counts()
        job = jobs.running_for(person.owner)
        snap = job.snapshot() if job is not None else None
        latest = runs_by_owner.get(person.owner, [None])[0]
        config = latest.config if latest is not None else None
        if snap is not None:
            state = "waiting" if person.owner in places else snap.stage
            progress = f"epoch {max(snap.epoch, len(snap.history))} of {snap.epochs_total}" if snap.epochs_total else ""
        else:
            state, progress = (latest.status if latest is not None else "no run yet"), ""
        # The columns a projector shows first: who, how far, what they tried and got; then the rest.
        rows.append(
            {
                "name": person.name,
                "state": state,
                "progress": progress,
                "freeze point": config.freeze_at if config else None,
                "weights": ("ImageNet" if config.weights != "none" else "random") if config else "",
                "val accuracy": latest.record.history.final_val_accuracy if latest is not None else None,
                "queue": str(places[person.owner]) if person.owner in places else "",
                "photos": " · ".join(f"{name} {count}" for name, count in photos.items()) or "—",
                "runs": len(runs_by_owner.get(person.owner, [])),
            }
        )
    return rows


def class_results(people: Sequence[Student], store: RunStore, show_names: bool) -> list[ClassResult]:
    """Every finished run of the class's students with a validation accuracy, oldest first; names hidden
    (ANONYMOUS) unless `show_names`."""
    names = {p.owner: p.name for p in people if not p.teacher}
    results = []
    for summary in reversed(store.list()):
        record = summary.record
        accuracy = record.history.final_val_accuracy
        if record.owner not in names or summary.status not in (COMPLETED, STOPPED) or accuracy is None:
            continue
        if record.config is None:
            continue
        levels = run_baselines(record)
        results.append(
            ClassResult(
                name=names[record.owner] if show_names else ANONYMOUS,
                freeze_at=record.config.freeze_at,
                pretrained=record.config.weights != "none",
                val_accuracy=float(accuracy),
                chance=levels[0].accuracy if levels else 0.0,
                run_id=summary.run_id if show_names else "",
            )
        )
    return results


def results_csv(results: Sequence[ClassResult]) -> str:
    """The class's results as CSV: name, freeze point, weights, validation accuracy, chance."""
    lines = ["name,freeze_at,weights,val_accuracy,chance"]
    for r in results:
        name = r.name.replace('"', '""')
        weights = "imagenet" if r.pretrained else "random"
        lines.append(f'"{name}",{r.freeze_at},{weights},{r.val_accuracy:.4f},{r.chance:.4f}')
    return "\n".join(lines) + "\n"


def disk_check(runs_root: Path, students: int, photo_bytes: int, run_bytes: int, runs_each: int) -> tuple[bool, str]:
    """Whether the runs folder's disk holds every student's photos and runs at their quotas, in words."""
    free = shutil.disk_usage(runs_root if runs_root.exists() else runs_root.parent).free
    need = students * (photo_bytes + runs_each * run_bytes)
    return free >= need, (
        f"{free / 2**30:.1f} GB free; {students} students at their quotas need up to {need / 2**30:.1f} GB"
    )
