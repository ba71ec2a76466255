"""In a class, See inside's passes wait while training runs wait or run: the lesson's runs come first."""

from __future__ import annotations

import threading

from dashboard import tasks
from tlcore.classroom import CLASS_KEY_ENV
from tlcore.jobs import JOBS, Job


def _start_a_job_and_a_pass() -> tuple[threading.Event, Job, tasks.Task[None], list[bool], threading.Thread]:
    """A training job that runs until released, and a pass that notes whether a job was running as it ran."""
    release = threading.Event()
    job = JOBS.start("student-a", "training", lambda job: release.wait(60))
    jobs_while_it_ran: list[bool] = []
    task: tasks.Task[None] = tasks.Task("Putting every image through VGG16")
    runner = threading.Thread(
        target=tasks._run, args=(task, lambda report: jobs_while_it_ran.append(bool(JOBS.running())))
    )
    runner.start()
    return release, job, task, jobs_while_it_ran, runner


def test_in_a_class_a_pass_waits_for_the_training_runs(monkeypatch):
    monkeypatch.setenv(CLASS_KEY_ENV, "the-teachers-own-class-key")
    release, job, task, jobs_while_it_ran, runner = _start_a_job_and_a_pass()
    runner.join(1.5)
    assert runner.is_alive() and task.waiting and not jobs_while_it_ran  # still waiting for the job
    # (other tests' jobs may share the process's registry: the count is at least this one)
    assert (
        task.waiting_for.startswith("the class's training runs go first (") and "running or waiting" in task.waiting_for
    )
    release.set()
    job.thread.join(30)
    runner.join(30)
    assert jobs_while_it_ran == [False] and task.finished.is_set() and not task.error


def test_in_the_single_user_lab_a_pass_runs_beside_the_training(monkeypatch):
    monkeypatch.delenv(CLASS_KEY_ENV, raising=False)
    release, job, task, jobs_while_it_ran, runner = _start_a_job_and_a_pass()
    runner.join(30)
    release.set()
    job.thread.join(30)
    assert jobs_while_it_ran == [True] and task.finished.is_set() and not task.error
