"""Races a class hits: many sessions' threads in one server process (jobs, process memory, the cluster).

Each test fails on the code before its fix: the registry read without its lock, a job's end freeing traces a
background task still needed, a full collection under the queue's lock, a stale "gone" ending a fresh
dispatcher (or a forked child ending its parent's).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import pytest

from dashboard import tasks
from tlcore.cluster import RayBackend, _Call
from tlcore.jobs import JobRegistry
from tlcore.process_memory import TRACING
from tlcore.records import COMPLETED

STALE = "CustomGradient-left-by-a-trace"


@pytest.fixture
def fast_switching():
    """Threads switch every microsecond, so a loop over a shared dict meets another thread's change."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_the_registry_is_read_safely_while_sessions_start_and_finish_jobs(fast_switching):
    registry = JobRegistry(max_active=8)
    errors: list[BaseException] = []
    starting = threading.Event()

    def start_many(who: int) -> None:
        starting.wait()
        for n in range(60):
            try:
                registry.start(f"student-{who}-{n}", "train", lambda job: None).thread.join(10)
            except BaseException as err:  # collected for the assertion
                errors.append(err)

    def read_until(done: threading.Event) -> None:
        starting.wait()
        while not done.is_set():
            try:
                registry.running()
                registry.running_for("student-0-0")
            except BaseException as err:  # "dictionary changed size during iteration"
                errors.append(err)
                return

    done = threading.Event()
    starters = [threading.Thread(target=start_many, args=(i,)) for i in range(4)]
    readers = [threading.Thread(target=read_until, args=(done,)) for _ in range(3)]
    for thread in starters + readers:
        thread.start()
    starting.set()
    for thread in starters:
        thread.join(120)
    done.set()
    for thread in readers:
        thread.join(10)
    assert errors == []
    assert registry.running() == []


@pytest.fixture
def stale_entry():
    """One entry of the kind a traced training step leaves in TensorFlow's gradient registry."""
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    registry[STALE] = {"type": lambda *a: None, "location": []}
    yield registry
    registry.pop(STALE, None)


def test_a_jobs_end_leaves_the_traces_of_a_background_task_still_running(stale_entry):
    """The LR finder and See inside's passes run outside the queue; a job ending meanwhile must not free
    what their traces need, and the last of them to end frees it."""
    release = threading.Event()
    task = tasks.start(tasks.TaskKey(f"race-{time.monotonic()}"), "holding a trace", lambda progress: release.wait(30))
    deadline = time.monotonic() + 10
    while TRACING.busy == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert TRACING.busy == 1
    job = JobRegistry(max_active=1).start("student", "train", lambda job: None)
    job.thread.join(30)
    assert job.snapshot().status == COMPLETED
    assert STALE in stale_entry  # the task is still inside: its trace keeps its entry
    release.set()
    assert task.finished.wait(30) and not task.error
    assert STALE not in stale_entry and TRACING.busy == 0  # the last one out let it go


def test_the_collection_after_a_job_never_runs_under_the_queues_lock(monkeypatch):
    registry = JobRegistry(max_active=1)
    held_during_collection: list[bool] = []
    collect = gc.collect

    def watching_collect(*args):
        # Another thread tries the queue's lock: it fails while the collecting thread holds it.
        got = []

        def try_the_lock() -> None:
            got.append(registry._slots.acquire(timeout=0.5))
            if got[0]:
                registry._slots.release()

        probe = threading.Thread(target=try_the_lock)
        probe.start()
        probe.join()
        held_during_collection.append(not got[0])
        return collect(*args)

    monkeypatch.setattr(gc, "collect", watching_collect)
    job = registry.start("student", "train", lambda job: None)
    job.thread.join(30)
    assert job.snapshot().status == COMPLETED, job.snapshot().error
    assert held_during_collection and not any(held_during_collection)


class FakeDispatcher(subprocess.Popen[bytes]):
    """A dispatcher process as RayBackend sees it: alive until terminated.

    A Popen that starts nothing: its own __init__ is not called (Popen's __del__ is safe without it).
    """

    def __init__(self, code: int | None = None) -> None:
        self.code, self.terminated, self.pid = code, False, 4242

    def poll(self) -> int | None:
        return self.code

    def wait(self, timeout: float | None = None) -> int:
        return self.code if self.code is not None else 0

    def terminate(self) -> None:
        self.terminated, self.code = True, -15


def test_a_stale_ended_message_does_not_end_the_fresh_dispatcher():
    backend = RayBackend("local")
    old = FakeDispatcher(code=1)
    call = _Call(lambda event: None, threading.Event())
    backend._calls[1] = call
    ended, its_end = multiprocessing.Pipe(duplex=False)
    its_end.close()  # the old dispatcher ended: reading its pipe gives EOFError
    backend._read(ended, old)  # its reader tells the calls that followed it
    kind, payload = call.inbox.get_nowait()
    assert kind == "ended" and payload[0] is old and "went away" in payload[1]
    fresh = FakeDispatcher()
    backend._process = fresh  # meanwhile a later job started a new one
    message = backend._gone(*payload)  # what the waiting call does with the stale message
    assert "exit code 1" in message
    assert backend._process is fresh and not fresh.terminated
    backend._gone(fresh, "the fresh one ended too")
    assert backend._process is None and fresh.terminated


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_end_its_parents_dispatcher():
    backend = RayBackend("local")
    current = FakeDispatcher()
    backend._process = current
    child = os.fork()
    if child == 0:  # the child: its exit handlers would close the inherited backend
        backend.close()
        os._exit(1 if current.terminated or backend._process is None else 0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend._process is current and not current.terminated


def test_in_a_class_each_student_runs_one_background_pass_at_a_time():
    """The LR finder and See inside's passes run outside the queue: one at a time per student, keys their own."""
    registry = tasks._Registry()
    release = threading.Event()
    adas = registry.start("ada|lrfind|sample", "Sweeping the learning rate", lambda p: release.wait(30), "ada")
    refused = registry.start("ada|inside|sample", "Putting every image through VGG16", lambda p: 1, "ada")
    assert refused.finished.is_set() and "“Sweeping the learning rate” is still running for you" in refused.error
    assert registry.find("ada|inside|sample") is None  # not kept: asking again later tries again
    graces = registry.start("grace|lrfind|sample", "Sweeping the learning rate", lambda p: 2, "grace")
    assert graces is not adas and not graces.error  # her own, not Ada's (it waits its turn: passes take turns)
    release.set()
    assert adas.finished.wait(30) and graces.finished.wait(30) and graces.result == 2
    again = registry.start("ada|inside|sample", "Putting every image through VGG16", lambda p: 1, "ada")
    assert again.finished.wait(30) and again.result == 1


def test_a_pass_over_the_classs_common_data_is_shared_and_over_ones_own_is_not(monkeypatch):
    from dashboard import identity

    monkeypatch.setattr(identity, "in_class", lambda: True)
    monkeypatch.setattr(identity, "owner", lambda: "ada")
    assert tasks._scoped("inside|sample", shared=True) == ("inside|sample", "ada")  # one pass serves the class
    assert tasks._scoped("inside|photos", shared=False) == ("ada|inside|photos", "ada")  # hers alone
    monkeypatch.setattr(identity, "in_class", lambda: False)
    assert tasks._scoped("inside|photos", shared=False) == ("inside|photos", "")  # the single-user lab


def test_background_passes_take_turns():
    """Thirty See inside passes at once only slow each other down: one runs, the others wait their turn."""
    registry = tasks._Registry()
    release = threading.Event()
    first = registry.start("ada|inside", "Putting every image through VGG16", lambda p: release.wait(30), "ada")
    second = registry.start("grace|inside", "Putting every image through VGG16", lambda p: "done", "grace")
    deadline = time.monotonic() + 10
    while first.waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert not first.waiting and second.waiting and not second.finished.is_set()
    release.set()
    assert second.finished.wait(30) and second.result == "done" and not second.waiting
