"""Ownership in tlcore (tlcore.access): a student lists, opens, stops and deletes only their own runs and jobs.

Every attempt across is refused exactly as if the thing did not exist. The teacher (and the administrator:
the CLI, a notebook, the single-user lab) sees everything; runs recorded before owners were kept are the
teacher's.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import TINY_CONFIG, make_dataset_folder
from tlcore.access import ADMIN, Actor, student
from tlcore.data import scan
from tlcore.jobs import JobRegistry
from tlcore.run_folder import MODEL_FILE, RUN_FILE
from tlcore.runs import RunStore, runs_with_models

ALICE, BOB, TEACHER = student("a1a1a1a1a1a1"), student("b2b2b2b2b2b2"), Actor("7e7e7e7e7e7e", teacher=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs folder with one trained run of Alice's (and its model), one of Bob's and one from before owners."""
    from tlcore.tf.training import train_and_record

    root = tmp_path_factory.mktemp("runs")
    info = scan(make_dataset_folder(tmp_path_factory.mktemp("data"), n_train=4, n_val=2))
    alices = train_and_record(TINY_CONFIG, info, RunStore(root, ALICE))[1].run_dir
    bobs = train_and_record(TINY_CONFIG, info, RunStore(root, BOB))[1].run_dir
    old = train_and_record(TINY_CONFIG, info, RunStore(root))[1].run_dir
    record = json.loads((old / RUN_FILE).read_text())
    record.pop("owner", None)  # as a run recorded before this version
    (old / RUN_FILE).write_text(json.dumps(record))
    return root, alices.name, bobs.name, old.name


def test_each_run_records_its_owner(runs):
    root, alices, bobs, old = runs
    assert json.loads((root / alices / RUN_FILE).read_text())["owner"] == ALICE.owner
    assert RunStore(root, BOB).load(bobs).owner == BOB.owner
    assert RunStore(root).load(old).owner is None


def test_a_student_lists_and_opens_only_their_own_runs(runs):
    root, alices, bobs, _old = runs
    bob = RunStore(root, BOB)
    assert [s.run_id for s in bob.list()] == [bobs]
    assert [r.run_id for r in runs_with_models(bob).values()] == [bobs]
    # The run just trained, given as an extra folder, is left out when it is another's.
    assert list(runs_with_models(bob, extra=root / alices)) == [str((root / bobs).resolve())]


@pytest.mark.parametrize("call", ["load", "summary", "run_dir", "delete"])
def test_every_way_into_anothers_run_reads_as_no_such_run(runs, call):
    root, alices, _bobs, old = runs
    bob = RunStore(root, BOB)
    for other in (alices, old):  # another student's, and the teacher's (no owner recorded)
        with pytest.raises(FileNotFoundError) as refused:
            getattr(bob, call)(other)
        with pytest.raises(FileNotFoundError) as missing:
            getattr(bob, call)("20990101-000000-abcdef")
        # The same words as for a run that does not exist: nothing says the other's run is there.
        assert str(refused.value).replace(other, "ID") == str(missing.value).replace("20990101-000000-abcdef", "ID")
    assert (root / alices / MODEL_FILE).is_file() and (root / old / RUN_FILE).is_file()  # nothing deleted


def test_deleting_anothers_runs_in_a_batch_deletes_nothing(runs):
    root, alices, bobs, old = runs
    RunStore(root, BOB).delete_finished([alices, old])
    assert {s.run_id for s in RunStore(root).list()} >= {alices, bobs, old}


@pytest.mark.parametrize("name", ["../runs", ".settings", "/etc", "a/b", "..", ""])
def test_names_that_are_not_a_run_folder_are_no_run(runs, name):
    root = runs[0]
    with pytest.raises(FileNotFoundError):
        RunStore(root).load(name)


def test_the_teacher_and_the_administrator_see_and_may_delete_everything(runs, tmp_path):
    root, alices, bobs, old = runs
    assert {s.run_id for s in RunStore(root, TEACHER).list()} == {alices, bobs, old}
    assert {s.run_id for s in RunStore(root, ADMIN).list()} == {alices, bobs, old}
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    RunStore(copy, TEACHER).delete(alices)
    assert not (copy / alices).exists()


def test_a_student_cannot_follow_or_stop_anothers_job():
    registry = JobRegistry(max_active=1)
    started = registry.start(ALICE.owner, "training", lambda job: job.stop_flag.wait(30))
    try:
        assert registry.get(started.id, BOB) is None  # whatever id Bob types or pastes
        assert registry.get(started.id, ALICE) is started
        assert registry.get(started.id, TEACHER) is started and registry.get(started.id, ADMIN) is started
    finally:
        started.stop()
        started.thread.join(30)


def test_a_student_keeps_at_most_the_runs_quota(runs, monkeypatch):
    from tlcore.runs import RunFolderError

    root = runs[0]
    monkeypatch.setenv("TLLAB_MAX_RUNS", "1")
    bob = RunStore(root, BOB)  # Bob has one run already
    problem = bob.quota_problem()
    assert problem is not None and "You have 1 run, the most one student may keep" in problem
    with pytest.raises(RunFolderError, match="delete some on the Runs page"):
        bob.create(TINY_CONFIG, scan(make_dataset_folder(root.parent / "quota-data", n_train=2, n_val=1)))
    assert RunStore(root, TEACHER).quota_problem() is None
    monkeypatch.setenv("TLLAB_MAX_RUNS", "2")
    assert bob.quota_problem() is None
    sweep = bob.quota_problem(more=2)  # a sweep of two points keeps two runs
    assert sweep is not None and "You have 1 run and these settings keep 2 more; one student may keep 2" in sweep
    assert RunStore(root, BOB, quota=False).quota_problem(more=5) is None  # runs that keep no model
