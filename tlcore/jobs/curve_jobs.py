"""The transfer curve as a job in the queue: `start_transfer_curve`, under the same limits as training.

The curve's units (`tlcore.transfer_curve.CurveUnit`: one repeat at one freeze point) are its pieces. In this
process they run one after another in the job's slot; on a cluster they spread over the workers as slots are
free and nobody waits (`tlcore.jobs.spread`). Either way the curve and its runs are saved as they go
(`tlcore.curve_records.CurveRecording`).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tlcore.config import TrainConfig
from tlcore.curve_records import CurveRecording, CurveStore
from tlcore.data import DatasetInfo
from tlcore.feature_store import FeatureStore
from tlcore.jobs.registry import JOBS, Job, JobRegistry
from tlcore.jobs.spread import spread
from tlcore.jobs.training_jobs import absolute_store, dataset_of
from tlcore.progress import ProgressFn, StepProgress, StopFlag
from tlcore.records import COMPLETED, FAILED, STOPPED
from tlcore.runs import RunStore
from tlcore.transfer_curve import CURVE_STAGE, CurveUnit, TransferCurve, curve_base

if TYPE_CHECKING:
    from tlcore.tf.pipeline import PreparedData

CURVE_JOB = "transfer curve"  # the job's kind
UnitResults = list[tuple[int, str, float]]  # (freeze point, condition, validation accuracy) of each run


def curve_unit_job(
    unit: CurveUnit, curve_id: str, info: DatasetInfo, store: RunStore, *, report: ProgressFn, stop: StopFlag
) -> UnitResults | None:
    """One unit of a curve, where the backend runs it; each run done reported as a step; None when stopped.

    It decodes the images itself (once per process: the next unit reuses them); frozen features come from
    the run store's feature store, which every worker shares.
    """
    from tlcore.tf.transfer_curve import CurveStopped, train_unit  # the job's thread or worker trains

    results: UnitResults = []

    def ran(condition: str, accuracy: float) -> None:
        results.append((unit.freeze_at, condition, accuracy))
        report(StepProgress(CURVE_STAGE, len(results), len(unit.runs)))

    data = _decoded(curve_id, info, unit.runs[0][1].image_size)
    runs = CurveStore(store).runs_of(curve_id)
    try:
        train_unit(unit, curve_id, info, data, runs, FeatureStore.default(store.root), ran, stop)
    except CurveStopped:
        return None
    return results


# The images of the last curve this process (or Ray worker) decoded, for its next units: one curve's at a time.
_DECODED: dict[str, PreparedData] = {}
_DECODED_LOCK = threading.Lock()


def _decoded(curve_id: str, info: DatasetInfo, image_size: int) -> PreparedData:
    """The curve's images decoded at `image_size`, once per process for all its units."""
    from tlcore.tf.pipeline import prepare_data

    with _DECODED_LOCK:  # a second curve's unit waits, rather than decode beside it
        if curve_id not in _DECODED:
            _DECODED.clear()
            _DECODED[curve_id] = prepare_data(info, image_size)
        return _DECODED[curve_id]


def start_transfer_curve(
    owner: str,
    base: TrainConfig,
    info: DatasetInfo,
    points: Sequence[int],
    repeats: int,
    store: RunStore | None = None,
    registry: JobRegistry = JOBS,
) -> Job[TransferCurve | None]:
    """Queue the curve as one job of `owner`'s (one job at a time each, as for training); returns it at once.

    The job's snapshot counts the runs done (stage CURVE_STAGE); its result is the curve, None when stopped.
    Bad points or repeats raise ValueError at once.
    """
    store = absolute_store(store)
    CurveRecording.check(points, repeats)

    def work(job: Job[TransferCurve | None]) -> TransferCurve | None:
        registry.backend.connect(store.root)
        curve = CurveRecording(store, base, info, points, repeats)
        done: dict[int, int] = {}  # unit number -> its runs done
        lock = threading.Lock()

        def unit_task(number: int, unit: CurveUnit) -> UnitResults | None:
            def report(event: object) -> None:
                if isinstance(event, StepProgress) and event.stage == CURVE_STAGE:
                    with lock:
                        done[number] = event.done
                        job.on_progress(StepProgress(CURVE_STAGE, sum(done.values()), curve.total))

            results: UnitResults | None = registry.backend.call(
                curve_unit_job, (unit, curve.curve_id, info, store), report, job.stop_flag
            )
            return results

        tasks = [functools.partial(unit_task, n, unit) for n, unit in enumerate(curve.units, start=1)]
        try:
            if registry.backend.parallel:
                outcomes, _never_started = spread(registry, job, tasks, halts=lambda results: results is None)
                ended = [outcomes[n] for n in sorted(outcomes)]
            else:
                ended = []
                for task in tasks:  # in turn, until one is stopped
                    ended.append(task())
                    if ended[-1] is None or job.stop_flag.is_set():
                        break
        except BaseException as err:
            curve.ended(FAILED, f"{type(err).__name__}: {err}")
            raise
        finally:
            with _DECODED_LOCK:
                _DECODED.pop(curve.curve_id, None)  # in this process: the server keeps no curve's images
        finished = [results for results in ended if results is not None]
        complete = len(finished) == len(tasks)
        reason = "" if complete else "stopped: a curve needs every run"
        if complete:
            result: TransferCurve | None = curve.finish([run for results in finished for run in results])
        else:
            curve.ended(STOPPED, reason)
            result = None
        with job.editing() as s:
            s.status, s.stage, s.finished, s.reason = (COMPLETED if complete else STOPPED), "done", time.time(), reason
        return result

    return registry.start(owner, CURVE_JOB, work, config=curve_base(base), dataset=dataset_of(info))
