"""Computations that take seconds to minutes, run in a thread so the page stays usable meanwhile.

A view asks for a result by a key that names everything it depends on. The
first request starts a thread; every session asking for the same key shares
it, and a click elsewhere on the page (a rerun) neither stops nor restarts it.
While it runs, a fragment redraws its progress once a second and reruns the
page when it ends. Finished results are kept, the newest few, for everyone; in a class, a pass over a
student's own data is theirs alone (its key includes the owner), and a student runs one pass at a time.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import streamlit as st

from dashboard import foreground
from tlcore import background, environment
from tlcore.classroom import class_key
from tlcore.environment import MAX_PASSES_ENV
from tlcore.jobs import JOBS
from tlcore.process_memory import TRACING


class ProgressFn(Protocol):
    """(done, total), and what is counted when it is not images (e.g. "training steps")."""

    def __call__(self, done: int, total: int, unit: str = ...) -> None: ...


T = TypeVar("T")


@dataclass(frozen=True)
class TaskKey(Generic[T]):
    """A task's key: text that names everything its result depends on; T is the type of that result."""

    text: str


IMAGES = "images"
# Passes at once in this process: each puts a dataset through VGG16 on every core it gets, so thirty at once
# (a class opening See inside on their own photos) only slow each other and the training jobs down.
_PASS_SLOTS = threading.BoundedSemaphore(environment.whole_number(MAX_PASSES_ENV, 1))
KEEP_FINISHED = 8  # results kept for reuse; the oldest goes first
REFRESH_S = 1.0


@dataclass
class Task(Generic[T]):
    """One background computation and where it stands; `result` is what its computation returned."""

    label: str
    owner: str = ""  # in a class, whose it is (keys include the owner: no result is shared between students)
    done: int = 0
    total: int = 0
    unit: str = IMAGES
    result: T | None = None
    error: str = ""
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0  # how long it took, once finished
    waiting: bool = True  # for its turn: MAX_PASSES_ENV passes run at once
    waiting_for: str = "another pass to finish (one at a time on this server)"
    finished: threading.Event = field(default_factory=threading.Event)
    _last_report: float = field(default_factory=time.perf_counter)  # when it last paused for pages

    def report(self, done: int, total: int, unit: str = IMAGES) -> None:
        self.done, self.total, self.unit = done, total, unit
        now = time.perf_counter()
        foreground.pause_for_pages(now - self._last_report)  # between batches: a page being drawn goes first
        self._last_report = time.perf_counter()


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tasks: OrderedDict[str, Task[Any]] = OrderedDict()  # each key's own result type (its TaskKey's)

    def start(self, key: str, label: str, compute: Callable[[ProgressFn], T], owner: str = "") -> Task[T]:
        with self.lock:
            existing: Task[T] | None = self.tasks.get(key)
            if existing is not None and not (existing.finished.is_set() and existing.error):
                self.tasks.move_to_end(key)
                return existing
            if owner and (busy := self._running_of(owner)) is not None:
                return _refused(
                    label,
                    f"“{busy}” is still running for you; one at a time in a class. Ask again when it has finished.",
                )
            task: Task[T] = Task(label, owner)  # a failed task is tried again
            self.tasks[key] = task
            finished = [k for k, t in self.tasks.items() if t.finished.is_set()]
            for old in finished[: max(0, len(finished) - KEEP_FINISHED)]:
                del self.tasks[old]
        background.start(_run, (task, compute), f"task-{label}")  # the interpreter's exit waits for it
        return task

    def find(self, key: str) -> Task[Any] | None:
        with self.lock:
            return self.tasks.get(key)

    def _running_of(self, owner: str) -> str | None:
        """The label of the owner's unfinished task, if any (the caller holds the lock)."""
        return next((t.label for t in self.tasks.values() if t.owner == owner and not t.finished.is_set()), None)


def _refused(label: str, reason: str) -> Task[T]:
    """A task that never ran, finished with the reason (not kept: asking again tries again)."""
    task: Task[T] = Task(label, error=reason)
    task.finished.set()
    return task


def _run(task: Task[T], compute: Callable[[ProgressFn], T]) -> None:
    try:
        with _PASS_SLOTS:  # waits its turn behind the passes already running
            _after_the_class_runs(task)
            task.started = task._last_report = time.perf_counter()
            task.waiting = False
            with TRACING.inside():  # a pass or a sweep may trace TensorFlow steps, like a training job
                task.result = compute(task.report)
    except Exception as err:  # shown on the page, which offers to try again; the app goes on
        task.error = f"{type(err).__name__}: {err}"
    finally:
        task.seconds = time.perf_counter() - task.started
        task.finished.set()


def _after_the_class_runs(task: Task[T], poll_s: float = 1.0) -> None:
    """In a class, a pass waits while training runs wait or run: the lesson's runs come first.

    Thirty students' passes over their own photos cost twice the class's training (ImageNet and random
    weights), and run beside it they halved its speed (bench/classroom_load.py --own-data).
    """
    if class_key() is None:
        return
    while jobs := JOBS.running():
        task.waiting_for = f"the class's training runs go first ({len(jobs)} running or waiting)"
        time.sleep(poll_s)


@st.cache_resource
def _registry() -> _Registry:
    return _Registry()


def _scoped(key: str, shared: bool) -> tuple[str, str]:
    """(the registry's key, whose task it is). In a class a key is the person's own unless `shared` (a pass
    over the class's common data, the sample or the teacher's folders: one pass serves everyone)."""
    from dashboard import identity

    person = identity.owner() if identity.in_class() else ""
    return (key if shared or not person else f"{person}|{key}"), person


def start(key: TaskKey[T], label: str, compute: Callable[[ProgressFn], T], shared: bool = False) -> Task[T]:
    """The task for `key`: started now unless it is running or has finished (a failed one starts again).

    In a class a person runs one task at a time: a second is refused (a finished task whose error says
    why). These passes run outside the training queue.
    """
    scoped, person = _scoped(key.text, shared)
    return _registry().start(scoped, label, compute, person)


def find(key: TaskKey[T], shared: bool = False) -> Task[T] | None:
    """The task for `key` if one was started (running or finished), without starting one."""
    task: Task[T] | None = _registry().find(_scoped(key.text, shared)[0])  # kept under its TaskKey's type
    return task


def result_when_ready(task: Task[T]) -> T | None:
    """The task's result; until then a progress bar that reruns the page when the task ends (None).

    A failure is shown as an error with what went wrong (None); the next request tries again.
    """
    if task.finished.is_set():
        if task.error:
            st.error(f"{task.label} failed: {task.error}")
            return None
        return task.result
    _progress(task)
    return None


@st.fragment(run_every=REFRESH_S)
def _progress(task: Task[T]) -> None:
    if task.finished.is_set():
        st.rerun()
    if task.waiting:
        st.progress(0.0, text=f"{task.label}: waiting for {task.waiting_for}")
        return
    fraction = task.done / task.total if task.total else 0.0
    counts = f" {task.done}/{task.total} {task.unit}" if task.total else ""
    st.progress(fraction, text=f"{task.label}:{counts} ({time.perf_counter() - task.started:.0f} s)")
