"""A sweep's points side by side (tlcore.jobs.sweep_jobs): each keeps its own progress, shown as it stands.

No TensorFlow: a backend that runs points at once (as a Ray cluster does) plays the job functions' events.
"""

from __future__ import annotations

import threading
import time

from tests.helpers import TINY_CONFIG, epoch_row, make_dataset_folder
from tlcore.backend import InProcessBackend
from tlcore.data import scan
from tlcore.jobs import COMPLETED, JobRegistry, SweepPointDone, start_sweep
from tlcore.progress import BatchEnd, EpochEnd, RunCreated, StepProgress
from tlcore.runs import RunStore
from tlcore.sweep import SweepPoint, SweepPointStart, SweepResult


def _point(label: str, freeze_at: int, run_dir: str) -> SweepPoint:
    return SweepPoint(label, freeze_at, "none", 10, 20, 1.0, 0.0, 0.5, 0.5, 0.7, 0.7, "cached", run_dir, COMPLETED, 1)


class _SideBySide(InProcessBackend):
    """Two slots whose sweep points run at once; each point plays events and waits at its gate."""

    parallel = True

    def __init__(self) -> None:
        super().__init__(max_jobs=2)
        self.gates = {"k=18": threading.Event(), "k=14": threading.Event()}
        self.first_trained, self.second_trained = threading.Event(), threading.Event()

    def call(self, fn, args, report, stop):
        if fn.__name__ == "sweep_prepare_job":
            report(StepProgress("decode", 6, 6))
            return SweepResult("prepared", COMPLETED)
        label, config = args[0], args[1]
        run_dir = f"/runs/{label}"
        report(RunCreated(run_dir, "CPU"))
        if label == "k=18":
            report(BatchEnd(1, 1, 1, 2, 0.9))
            self.first_trained.set()
        else:  # the second point trains a whole epoch while the first one is shown
            assert self.first_trained.wait(30)
            report(EpochEnd(epoch_row(epoch=1, freeze_at=14)))
            report(BatchEnd(1, 2, 1, 2, 0.4))
            self.second_trained.set()
        assert self.gates[label].wait(30)
        return _point(label, config.freeze_at, run_dir)


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within 30 s"
        time.sleep(0.01)


def test_the_next_point_is_shown_as_it_stands_when_the_point_shown_ends(tmp_path):
    backend = _SideBySide()
    events: list[object] = []
    info = scan(make_dataset_folder(tmp_path / "data", n_train=4, n_val=2))
    registry = JobRegistry(backend=backend)
    job = start_sweep("me", TINY_CONFIG, info, (18, 14), False, RunStore(tmp_path / "runs"), registry, events.append)
    assert backend.second_trained.wait(30)
    shown = job.snapshot()
    assert shown.sweep.current.label == "k=18" and shown.message == "point 1/2: k=18"
    assert shown.run_dir == "/runs/k=18" and len(shown.history) == 0 and (shown.epoch, shown.batch) == (1, 1)
    assert shown.stages == {}  # decoding was the sweep's, before any point

    backend.gates["k=18"].set()
    _until(lambda: job.snapshot().sweep.current.label == "k=14", "second point shown")
    second = job.snapshot()
    assert second.message == "point 2/2: k=14" and second.run_dir == "/runs/k=14"
    assert [row.epoch for row in second.history] == [1] and (second.epoch, second.batch, second.batches) == (2, 1, 2)
    assert [p.label for p in second.sweep.points] == ["k=18"]

    backend.gates["k=14"].set()
    _until(lambda: not job.running, "end of the sweep")
    done = job.snapshot()
    assert done.status == COMPLETED and done.sweep.current is None and done.sweep.skipped == []
    assert [p.label for p in done.sweep.points] == [p.label for p in job.result.points] == ["k=18", "k=14"]
    # The listener follows the point shown: its start and events, each point's end, then the next one's start.
    starts = [(e.index, e.label) for e in events if isinstance(e, SweepPointStart)]
    assert starts == [(1, "k=18"), (2, "k=14")]
    ended = [e.point.label for e in events if isinstance(e, SweepPointDone)]
    assert ended == ["k=18", "k=14"]
    assert [e.loss for e in events if isinstance(e, BatchEnd)] == [0.9]  # the second point's came while not shown
