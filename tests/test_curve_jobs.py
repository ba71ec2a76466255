"""The transfer curve as a job (tlcore.jobs.curve_jobs): units in turn here, side by side on a cluster.

No TensorFlow: backends that play `curve_unit_job` (a unit's runs, each a step) stand in for the workers.
"""

from __future__ import annotations

import threading
import time

from tests.helpers import TINY_CONFIG, make_dataset_folder
from tlcore.access import student
from tlcore.backend import InProcessBackend
from tlcore.curve_records import CurveStore
from tlcore.data import scan
from tlcore.jobs import COMPLETED, STOPPED, JobRegistry, start_transfer_curve
from tlcore.progress import StepProgress
from tlcore.runs import RunStore
from tlcore.transfer_curve import CURVE_STAGE, KEPT, RANDOM, REINITIALISED, TransferCurve

ALICE = student("a1a1a1a1a1a1")


class _Units(InProcessBackend):
    """Plays each unit: its runs as steps, accuracy 0.5 + freeze point / 100; counts the units running at once."""

    def __init__(self, parallel: bool, slots: int = 2, stop_after: int | None = None) -> None:
        super().__init__(max_jobs=slots)
        self.parallel = parallel
        self.lock = threading.Lock()
        self.now = self.most = self.calls = 0
        self.stop_after = stop_after

    def call(self, fn, args, report, stop):
        assert fn.__name__ == "curve_unit_job"
        unit = args[0]
        with self.lock:
            self.calls += 1
            self.now += 1
            self.most = max(self.most, self.now)
            calls = self.calls
        time.sleep(0.05)  # long enough for a second unit to start beside it, when a slot lets it
        try:
            if self.stop_after is not None and calls > self.stop_after:
                return None  # as curve_unit_job answers a stop
            for done, _ in enumerate(unit.runs, start=1):
                report(StepProgress(CURVE_STAGE, done, len(unit.runs)))
            return [(unit.freeze_at, condition, 0.5 + unit.freeze_at / 100) for condition, _ in unit.runs]
        finally:
            with self.lock:
                self.now -= 1


def _start(tmp_path, backend: _Units, repeats: int = 2):
    info = scan(make_dataset_folder(tmp_path / "data", n_train=4, n_val=2))
    store = RunStore(tmp_path / "runs", ALICE)
    registry = JobRegistry(backend=backend)
    job = start_transfer_curve(ALICE.owner, TINY_CONFIG, info, (0, 14, 18), repeats, store, registry)
    deadline = time.monotonic() + 30
    while job.running:
        assert time.monotonic() < deadline, "the curve job did not end within 30 s"
        time.sleep(0.02)
    return job, CurveStore(store)


def test_on_a_cluster_the_units_spread_over_the_free_slots(tmp_path):
    backend = _Units(parallel=True)
    job, curves = _start(tmp_path, backend)
    assert backend.calls == 6 and backend.most == 2  # 2 repeats x 3 points, two at a time
    curve = job.result
    assert isinstance(curve, TransferCurve) and job.snapshot().status == COMPLETED
    assert curve.band(14, KEPT).values == (0.64, 0.64) and curve.band(0, RANDOM) == curve.band(0, REINITIALISED)
    assert job.snapshot().stages[CURVE_STAGE] == (20, 20)  # every unit's runs, counted over the curve
    (saved,) = curves.list()
    assert saved.done and saved.curve is not None and saved.curve.to_dict() == curve.to_dict()
    assert saved.owner == ALICE.owner


def test_in_this_process_the_units_run_one_after_another(tmp_path):
    backend = _Units(parallel=False)
    job, curves = _start(tmp_path, backend, repeats=1)
    assert backend.calls == 3 and backend.most == 1
    assert isinstance(job.result, TransferCurve) and curves.list()[0].done


def test_a_stopped_unit_stops_the_curve_and_the_saved_curve_says_so(tmp_path):
    backend = _Units(parallel=False, stop_after=1)
    job, curves = _start(tmp_path, backend)
    assert job.result is None and job.snapshot().status == STOPPED
    assert backend.calls == 2  # nothing starts after the stopped unit
    (saved,) = curves.list()
    assert saved.status == STOPPED and saved.curve is None and "needs every run" in saved.reason
