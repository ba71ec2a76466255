"""tlcore.jobs: the queue for training slots, forgetting finished jobs, models freed, failures reported."""

from __future__ import annotations

import errno
import gc
import threading
import weakref
from pathlib import Path

import pytest

from bench._common import wait_for
from tests.helpers import TINY_CONFIG, epoch_row
from tlcore.access import ADMIN
from tlcore.data import scan
from tlcore.jobs import COMPLETED, FAILED, QUEUED, STOPPED, Job, JobRegistry, start_training


def _wait(condition, deadline_s: float = 30.0, what: str = "the condition") -> None:
    wait_for(condition, deadline_s, what, poll_s=0.02)


class _Gate:
    """A job body that records when it starts and ends and blocks until opened."""

    def __init__(self, log: list[str], name: str):
        self.log, self.name, self.opened = log, name, threading.Event()

    def __call__(self, job: Job) -> str:
        self.log.append(f"start {self.name}")
        assert self.opened.wait(30)
        self.log.append(f"end {self.name}")
        return self.name


def test_a_second_session_waits_for_the_slot_and_then_runs_by_itself():
    registry = JobRegistry(max_active=1)
    log: list[str] = []
    first_body, second_body = _Gate(log, "a"), _Gate(log, "b")
    first = registry.start("alice", "training", first_body)
    _wait(lambda: log == ["start a"], what="the first job to start")
    second = registry.start("bob", "training", second_body)
    _wait(lambda: second.snapshot().stage == QUEUED, what="the second job to queue")

    waiting = second.snapshot()
    assert waiting.status == "running" and not waiting.done  # it will run: it only waits
    assert "Waiting for 1 run from other sessions" in waiting.message
    assert log == ["start a"]

    second_body.opened.set()
    first_body.opened.set()
    first.thread.join(10)
    second.thread.join(10)
    assert log == ["start a", "end a", "start b", "end b"]
    assert first.snapshot().status == second.snapshot().status == COMPLETED
    assert first.result == "a" and second.result == "b"


def test_places_in_the_queue_are_first_come_first_served():
    registry = JobRegistry(max_active=1)
    log: list[str] = []
    gates = [_Gate(log, name) for name in "abc"]
    jobs = [registry.start(owner, "training", gate) for owner, gate in zip(("o1", "o2", "o3"), gates)]
    _wait(lambda: jobs[2].snapshot().stage == QUEUED, what="the third job to queue")
    assert "Waiting for 2 runs" in jobs[2].snapshot().message
    for gate in reversed(gates):
        gate.opened.set()
    for job in jobs:
        job.thread.join(10)
    assert log == ["start a", "end a", "start b", "end b", "start c", "end c"]


def test_stopping_a_waiting_job_ends_it_without_running_it():
    registry = JobRegistry(max_active=1)
    log: list[str] = []
    first_body = _Gate(log, "a")
    first = registry.start("alice", "training", first_body)
    _wait(lambda: log == ["start a"])
    second = registry.start("bob", "training", _Gate(log, "b"))
    _wait(lambda: second.snapshot().stage == QUEUED)
    second.stop()
    second.thread.join(10)
    assert second.snapshot().status == STOPPED and "before it started" in second.snapshot().reason
    first_body.opened.set()
    first.thread.join(10)
    assert log == ["start a", "end a"]


def test_with_two_slots_two_sessions_train_at_once():
    registry = JobRegistry(max_active=2)
    log: list[str] = []
    gates = [_Gate(log, "a"), _Gate(log, "b")]
    jobs = [registry.start(owner, "training", gate) for owner, gate in zip(("alice", "bob"), gates)]
    _wait(lambda: sorted(log) == ["start a", "start b"], what="both jobs to start")
    for gate in gates:
        gate.opened.set()
    for job in jobs:
        job.thread.join(10)


def test_max_jobs_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TLLAB_MAX_JOBS", "3")
    assert JobRegistry().max_active == 3
    monkeypatch.setenv("TLLAB_MAX_JOBS", "many")
    assert JobRegistry().max_active == 1


def test_a_new_job_forgets_only_its_owners_finished_jobs():
    registry = JobRegistry(max_active=2)
    old = registry.start("alice", "training", lambda job: "old")
    other = registry.start("bob", "training", lambda job: "other")
    old.thread.join(10)
    other.thread.join(10)
    new = registry.start("alice", "training", lambda job: "new")
    new.thread.join(10)
    assert registry.get(old.id, ADMIN) is None
    assert registry.get(other.id, ADMIN) is other and registry.get(new.id, ADMIN) is new


def test_an_error_in_a_job_is_reported_without_its_type_when_it_is_ours():
    from tlcore.runs import RunFolderError

    registry = JobRegistry(max_active=1)

    def ours(job):
        raise RunFolderError("The runs folder /x cannot take a new run: No space left on device.")

    def foreign(job):
        raise KeyError("boom")

    mine, theirs = registry.start("a", "training", ours), registry.start("b", "training", foreign)
    mine.thread.join(10)
    theirs.thread.join(10)
    assert mine.snapshot().status == FAILED
    assert mine.snapshot().error == "The runs folder /x cannot take a new run: No space left on device."
    assert theirs.snapshot().error == "KeyError: 'boom'"


@pytest.fixture(scope="module")
def info(tmp_path_factory):
    from tests.helpers import make_dataset_folder

    return scan(make_dataset_folder(tmp_path_factory.mktemp("jobs") / "data", n_train=8, n_val=4, size=32))


def test_models_of_finished_runs_are_freed(info, tmp_path, monkeypatch):
    import tlcore.tf.training as training
    from tlcore.runs import RunStore

    built: list[weakref.ref] = []
    real_build_for = training.build_for

    def watched_build_for(config, num_classes):
        model = real_build_for(config, num_classes)
        built.append(weakref.ref(model))
        return model

    monkeypatch.setattr(training, "build_for", watched_build_for)
    registry, store = JobRegistry(max_active=1), RunStore(tmp_path / "runs")
    graphs_before = weakref.WeakSet(_tensorflow_graphs())
    jobs = []
    for _ in range(3):
        job = start_training("alice", TINY_CONFIG, info, store, registry=registry)
        job.thread.join(120)
        assert job.snapshot().status == COMPLETED
        jobs.append(job)
    gc.collect()
    assert len(built) == 3
    assert [ref() is None for ref in built] == [True, True, True]
    # The traced training steps went too: each captures its model's variables (their memory).
    assert [g.name for g in _tensorflow_graphs() if g not in graphs_before] == []
    # Freed, yet nothing was lost: every run is on disk with its model.
    assert all((Path(job.snapshot().run_dir) / "model.keras").is_file() for job in jobs)
    assert registry.get(jobs[0].id, ADMIN) is None and registry.get(jobs[2].id, ADMIN) is jobs[2]


def _tensorflow_graphs() -> list:
    from tensorflow.python.framework import ops

    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, ops.Graph)]


def test_an_unwritable_runs_folder_fails_the_job_with_a_clear_message(info, tmp_path, monkeypatch):
    from tlcore.runs import RunStore

    def refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", refuse)
    job = start_training("alice", TINY_CONFIG, info, RunStore(tmp_path / "runs"), registry=JobRegistry(max_active=1))
    job.thread.join(60)
    snap = job.snapshot()
    assert snap.status == FAILED
    assert snap.error == (
        f"The runs folder {tmp_path / 'runs'} cannot take a new run: Read-only file system. "
        "Free some space, or point TLLAB_RUNS_DIR at a writable folder."
    )


def test_only_the_newest_finished_jobs_of_other_sessions_are_kept(monkeypatch):
    import tlcore.jobs.registry as registry_module

    monkeypatch.setattr(registry_module, "FINISHED_JOBS_KEPT", 2)
    registry = JobRegistry(max_active=1)
    finished = []
    for owner in ("o1", "o2", "o3"):
        job = registry.start(owner, "training", lambda job: None)
        job.thread.join(10)
        finished.append(job)
    latest = registry.start("o4", "training", lambda job: None)
    latest.thread.join(10)
    assert [registry.get(job.id, ADMIN) is not None for job in finished] == [False, True, True]
    assert registry.get(latest.id, ADMIN) is latest


def test_each_stage_has_its_own_progress_that_never_moves_back():
    from tlcore.progress import BatchEnd, EpochEnd, PhaseStart, StepProgress

    job: Job[None] = Job("alice", "training", epochs_total=4)
    for done in (32, 64, 140):
        job.on_progress(StepProgress("decode", done, 140))
    job.on_progress(PhaseStart(1, 18, 2, 1e-3, "cached", "why", 10, 20))
    for done in (32, 140):
        job.on_progress(StepProgress("extract", done, 140))
    job.on_progress(StepProgress("extract", 32, 140))  # a late, older report changes nothing
    job.on_progress(BatchEnd(1, 2, 3, 3, 0.5))
    job.on_progress(EpochEnd(epoch_row(epoch=1, phase=1)))
    job.on_progress(EpochEnd(epoch_row(epoch=2, phase=1)))
    job.on_progress(PhaseStart(2, 14, 2, 1e-5, "cached", "why", 30, 5))
    job.on_progress(StepProgress("extract", 64, 140))
    snap = job.snapshot()
    assert snap.stages == {"decode": (140, 140), "extract": (140, 140), "extract-2": (64, 140)}
    assert list(snap.stages) == ["decode", "extract", "extract-2"]  # in the order the stages began

    before = snap.fraction()
    job.on_progress(BatchEnd(2, 3, 1, 3, 0.4))
    after = job.snapshot().fraction()
    assert after == pytest.approx((2 + 1 / 3) / 4) and after > before


def test_a_phase_that_stopped_early_leaves_no_epochs_to_wait_for():
    from tlcore.progress import EpochEnd, PhaseStart

    job: Job[None] = Job("alice", "training", epochs_total=28)  # planned: 25 epochs of the head, then 3
    for epoch in range(1, 15):  # early stopping ended phase 1 after epoch 14
        job.on_progress(EpochEnd(epoch_row(epoch=epoch, phase=1, seconds=0.01, partial=False)))
    job.on_progress(PhaseStart(2, 14, 3, 1e-5, "cached", "why", 30, 5))
    assert job.snapshot().epochs_total == 17


def test_a_job_keeps_the_config_and_dataset_it_was_started_with(tmp_path):
    from tests.helpers import make_dataset_folder
    from tlcore.runs import RunStore

    info = scan(make_dataset_folder(tmp_path / "data"))
    job = start_training("alice", TINY_CONFIG, info, RunStore(tmp_path / "runs"), registry=JobRegistry(max_active=1))
    job.stop()
    job.thread.join(60)
    assert job.config == TINY_CONFIG
    assert (job.dataset_root, job.train_images, job.validation_images) == (
        str(info.root),
        info.num_images("train"),
        info.num_images("validation"),
    )
