"""How long will a run take on this machine? FLOPs of VGG16 per layer x a measured speed.

The convolutions dominate, so time ~ FLOPs / (this machine's GFLOP/s). The
FLOPs come from VGG16's arithmetic (`tlcore.architecture`) and the speed from
timing one NumPy matrix product (`machine_gflops`): neither imports
TensorFlow, so a page can show an estimate at once. Training a layer costs
about 3x its forward pass (forward, gradient with respect to inputs, gradient
with respect to weights).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from tlcore import background
from tlcore.architecture import layer_flops  # per-layer FLOPs from VGG16's one table of facts
from tlcore.config import TrainConfig
from tlcore.route import CACHED, END_TO_END, choose_route
from tlcore.schedule import schedule
from tlcore.sweep import plan

TRAIN_COST = 3.0  # training a layer ~ 3 forward passes
FIXED_OVERHEAD_S = 3.0  # building the model, compiling, first-call tracing
# What an epoch costs beyond its convolutions: end to end, fit's per-batch calls and validation; cached, the
# head's compiled calls (bench/feature_cache.py: about 0.004 s for 256 images at 128 px).
EPOCH_OVERHEAD_S = {END_TO_END: 0.05, CACHED: 0.005}
MATMUL_SIZE = 1536  # square float32 matrices: 7.2 GFLOP a product, about 0.1-0.2 s on a 2-core laptop
# TensorFlow's VGG16 convolutions per NumPy matmul FLOP/s (tlcore.tf.backbones.measure_gflops over matmul_gflops).
# Measured side by side on the 2-core Zen 4 development machine (AVX-512), shared with other jobs: VGG16
# forward 103-112 GFLOP/s against 36-41 GFLOP/s for a 1536² product through NumPy's bundled OpenBLAS
# (ratio 2.5-3.2; 2.1-2.7 for 2048², 3.4-6.2 for 1024², too small to keep two cores busy). TensorFlow's
# oneDNN convolutions run near FP32 peak (97 % on Zen 4, 63 % on Zen 3, DESIGN.md), above any plain matmul,
# so the matmul is a lower bound scaled by a constant: a fair proxy that moves with the machine (cores,
# vector width, clock, load) and costs a fraction of a second instead of TensorFlow's import.
MATMUL_TO_VGG16 = 2.7


_SPEED_LOCK = threading.Lock()
_speed: list[float] = []  # measured once per process


def machine_gflops() -> float:
    """This machine's GFLOP/s on VGG16's convolutions, estimated without TensorFlow (measured once per process).

    A float32 matrix product exercises the same thing a convolution does
    (multiply-adds on all cores through a tuned BLAS kernel) and takes a
    fraction of a second, where timing VGG16 itself needs TensorFlow (seconds
    to import). One product after a warm-up, times `MATMUL_TO_VGG16`. A second
    caller waits for the first one's measurement instead of measuring again.
    """
    with _SPEED_LOCK:
        if not _speed:
            _speed.append(matmul_gflops() * MATMUL_TO_VGG16)
        return _speed[0]


def measure_in_background() -> threading.Thread:
    """Start measuring the machine's speed now (an app at start-up), so the first estimate need not wait."""
    return background.start(machine_gflops, (), "tlcore-machine-speed")


def matmul_gflops(size: int = MATMUL_SIZE, repeats: int = 1) -> float:
    """NumPy float32 `size` x `size` matrix product speed in GFLOP/s, best of `repeats` after a warm-up."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best / 1e9


@dataclass(frozen=True)
class Estimate:
    extract_seconds: float
    epoch_seconds: float  # the first phase's epochs
    total_seconds: float
    route: str  # cached | end_to_end (tlcore.route)
    stored: bool = False  # the frozen features come from the feature store

    def describe(self) -> str:
        parts = [f"about {human_seconds(self.total_seconds)} in all"]
        if self.stored:
            parts.append("the frozen features are already in the feature store")
        elif self.extract_seconds:
            parts.append(f"{human_seconds(self.extract_seconds)} to compute the frozen features once")
        parts.append(f"{human_seconds(self.epoch_seconds)} per epoch")
        return ", ".join(parts)


def human_seconds(seconds: float) -> str:
    """A duration as people say it: "under a second", "40 s", "2.5 min"."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _phase_seconds(
    config: TrainConfig, freeze_at: int, epochs: int, n_train: int, n_val: int, gflops: float, cached: bool
) -> tuple[float, float, float]:
    """(extraction, per-epoch, total) seconds of one phase."""
    flops = layer_flops(config.image_size)
    frozen, trainable = sum(flops[:freeze_at]), sum(flops[freeze_at:])
    speed = gflops * 1e9
    if cached:
        extract = (n_train + n_val) * frozen / speed
        epoch = (n_train * TRAIN_COST * trainable + n_val * trainable) / speed
    else:
        extract = 0.0
        epoch = (n_train * (frozen + TRAIN_COST * trainable) + n_val * (frozen + trainable)) / speed
    epoch += EPOCH_OVERHEAD_S[CACHED if cached else END_TO_END]
    return extract, epoch, extract + epochs * epoch


def estimate(config: TrainConfig, n_train: int, n_val: int, gflops: float, stored: bool = False) -> Estimate:
    """Estimated time of a run (both phases) on a machine doing `gflops` GFLOP/s.

    Args:
        stored: the first phase's frozen features are in the feature store (no extraction).
    """

    def cached_at(freeze_at: int) -> bool:
        return choose_route(config, freeze_at)[0] == CACHED

    first_cached = cached_at(config.freeze_at)
    # The epochs the run will take on this many images (early stopping may end it sooner).
    phases = schedule(config, n_train, (), CACHED if first_cached else END_TO_END).phases
    extract, epoch, total = _phase_seconds(
        config, config.freeze_at, phases[0].epochs, n_train, n_val, gflops, first_cached
    )
    if stored and first_cached:
        total, extract = total - extract, 0.0
    if config.fine_tune:
        ft = config.fine_tune
        total += _phase_seconds(
            config, ft.freeze_at, phases[1].epochs, n_train, n_val, gflops, cached_at(ft.freeze_at)
        )[2]
    route = CACHED if first_cached else END_TO_END
    return Estimate(extract, epoch, total + FIXED_OVERHEAD_S, route, stored and first_cached)


def estimate_many(configs: Iterable[TrainConfig], n_train: int, n_val: int, gflops: float) -> float:
    """Estimated seconds of several runs one after the other (a sweep's points, from `tlcore.sweep.plan`)."""
    return sum(estimate(config, n_train, n_val, gflops).total_seconds for config in configs)


def describe_sweep(
    base_config: TrainConfig, points: Iterable[int], scratch: bool, n_train: int, n_val: int, gflops: float
) -> str:
    """The time a sweep would take, in words, each point estimated as a run of its own (before it starts).

    Raises:
        ValueError: a plan `tlcore.sweep.plan` refuses (bad or repeated points, nothing to run).
    """
    planned = plan(base_config, list(points), scratch=scratch)
    total = estimate_many((config for _, config in planned), n_train, n_val, gflops)
    return f"about {human_seconds(total)} for {len(planned)} run(s) on this machine"
