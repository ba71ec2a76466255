"""Models let go are collected: after a job ends (tlcore.jobs) and when a cache evicts one (collect_garbage).

Python's automatic full collections are switched off in these tests, as TensorFlow's heap all but
switches them off in the app: what frees the garbage is the code under test.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from tlcore.process_memory import collect_garbage, forget_traced_gradients


class Layer:
    """A stand-in for a Keras model: garbage only in a reference cycle."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def garbage_cycle() -> weakref.ref:
    return weakref.ref(Layer())  # the only strong references are the cycle's own


def test_the_end_of_a_job_collects_its_model(no_automatic_gc):
    import tensorflow  # noqa: F401  (a job has loaded it: its gradient registry is what gets emptied first)

    model = garbage_cycle()
    assert model() is not None  # a cycle: only the collector frees it
    forget_traced_gradients()
    assert model() is None


def test_an_eviction_collects_the_models_evicted_before_it(no_automatic_gc):
    earlier = garbage_cycle()
    released_now = Layer()
    collect_garbage(released_now)
    assert earlier() is None
    assert released_now.me is released_now  # still held by its caller: it goes at the next eviction
