"""Pieces of one job side by side on a cluster (a sweep's points, a transfer curve's units), within the class limits.

The job's own slot runs one piece; more run at once only on slots that are free while nobody waits
(`JobRegistry.borrow_slot`), so a job of many pieces never jumps the queue of other sessions' jobs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from tlcore.jobs.registry import Job, JobRegistry
from tlcore.process_memory import TRACING

T = TypeVar("T")


def spread(
    registry: JobRegistry,
    job: Job,
    pieces: Sequence[Callable[[], T]],
    halts: Callable[[T], bool] = lambda _outcome: False,
) -> tuple[dict[int, T], list[int]]:
    """Run `pieces` (numbered from 1) side by side, each in a thread of its own that waits on its worker.

    No piece starts once the job's stop flag is set, a piece raised, or an outcome `halts`; the running ones
    finish. Returns (outcomes by number, the numbers never started).

    Raises:
        BaseException: the first exception a piece raised, once every running piece ended.
    """
    outcomes: dict[int, T | BaseException] = {}
    running: dict[int, threading.Thread] = {}
    waiting = list(range(1, len(pieces) + 1))
    done = threading.Condition()

    def run(number: int) -> None:
        try:
            with TRACING.inside():  # pieces side by side: one's start must not free another's traces
                outcome: T | BaseException = pieces[number - 1]()
        except BaseException as err:  # handed to the job's thread, which raises it
            outcome = err
        with done:
            outcomes[number] = outcome
            done.notify_all()

    with done:
        while waiting or running:
            stopped = job.stop_flag.is_set() or any(isinstance(o, BaseException) or halts(o) for o in outcomes.values())
            if not stopped:
                while waiting and (not running or registry.borrow_slot(job)):
                    number = waiting.pop(0)
                    running[number] = threading.Thread(target=run, args=(number,), daemon=True)
                    running[number].start()
            for number in [n for n in running if n in outcomes]:
                running.pop(number).join()
                if running:  # two or more were running: all but the job's own slot were borrowed
                    registry.return_slot(job)
            if stopped and not running:
                break
            done.wait(timeout=0.5)
    errors = [o for o in outcomes.values() if isinstance(o, BaseException)]
    if errors:
        raise errors[0]
    return {n: o for n, o in outcomes.items() if not isinstance(o, BaseException)}, waiting
