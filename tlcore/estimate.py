"""How long will a run take on this machine? FLOPs of VGG16 per layer x a measured speed.

The convolutions dominate, so time ~ FLOPs / (this machine's GFLOP/s). The
FLOPs come from VGG16's arithmetic (`tlcore.architecture`) and the speed from
this machine's last runs (`tlcore.speed.machine_speed`) or, before the first,
from timing one NumPy matrix product (`machine_gflops`): neither imports
TensorFlow, so a page can show an estimate at once. Training a layer costs
about 3x its forward pass (forward, gradient with respect to inputs, gradient
with respect to weights).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from tlcore import background
from tlcore.config import TrainConfig
from tlcore.devices import MIXED_BFLOAT16
from tlcore.route import CACHED, END_TO_END, planned_route
from tlcore.schedule import schedule
from tlcore.speed import Speed, as_speed, epoch_work, extraction_flops
from tlcore.sweep import plan

MATMUL_SIZE = 1536  # square float32 matrices: 7.2 GFLOP a product, about 0.1-0.2 s on a 2-core laptop
# TensorFlow's VGG16 convolutions per NumPy matmul FLOP/s (tlcore.tf.backbones.measure_gflops over matmul_gflops).
# Measured side by side on the 2-core Zen 4 development machine (AVX-512), shared with other jobs: VGG16
# forward 103-112 GFLOP/s against 36-41 GFLOP/s for a 1536² product through NumPy's bundled OpenBLAS
# (ratio 2.5-3.2; 2.1-2.7 for 2048², 3.4-6.2 for 1024², too small to keep two cores busy). TensorFlow's
# oneDNN convolutions run near FP32 peak (97 % on Zen 4, 63 % on Zen 3, DESIGN.md), above any plain matmul,
# so the matmul is a lower bound scaled by a constant: a fair proxy that moves with the machine (cores,
# vector width, clock, load) and costs a fraction of a second instead of TensorFlow's import.
MATMUL_TO_VGG16 = 2.7
MATMUL_REPEATS = 5  # best of: one product beside another process read half the speed, the best of 5 less so
STARTUP_SETTLE_S = 10.0  # an app's start-up measurement waits this long for the first script run to end


_SPEED_LOCK = threading.Lock()
_speed: list[float] = []  # measured once per process


def machine_gflops() -> float:
    """This machine's GFLOP/s on VGG16's convolutions, estimated without TensorFlow (measured once per process).

    A float32 matrix product exercises the same thing a convolution does
    (multiply-adds on all cores through a tuned BLAS kernel) and takes a
    fraction of a second, where timing VGG16 itself needs TensorFlow (seconds
    to import). The best of MATMUL_REPEATS products after a warm-up, times
    `MATMUL_TO_VGG16`. A second caller waits for the first one's measurement
    instead of measuring again.
    """
    with _SPEED_LOCK:
        if not _speed:
            _speed.append(matmul_gflops(repeats=MATMUL_REPEATS) * MATMUL_TO_VGG16)
        return _speed[0]


def measure_in_background(delay_s: float = STARTUP_SETTLE_S) -> threading.Thread:
    """Measure the machine's speed `delay_s` from now (an app at start-up), so the first estimate need not wait.

    Not at once: an app's first script run (its imports, the browser drawing it) shares the cores, and a product
    timed beside it read 3.5 times slow (a transfer curve of 7 min was announced at 23). An estimate asked
    before then measures at once.
    """

    def later() -> None:
        time.sleep(delay_s)
        machine_gflops()

    return background.start(later, (), "tlcore-machine-speed")


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


# How much faster than float32 (the speed measured) a precision computes VGG16 where it is offered
# (`DeviceReport.precisions`): mixed bfloat16 trained 3 epochs end to end 2.6 times as fast on a Xeon with AMX
# (20.6 s against 8.1 s, 96 px); tlcore.devices says about twice on other BF16 CPUs: the estimate takes 2.
PRECISION_SPEEDUP = {MIXED_BFLOAT16: 2.0}


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
    config: TrainConfig, freeze_at: int, epochs: int, n_train: int, n_val: int, speed: Speed, cached: bool
) -> tuple[float, float, float]:
    """(extraction, per-epoch, total) seconds of one phase."""
    route = CACHED if cached else END_TO_END
    faster = PRECISION_SPEEDUP.get(config.precision, 1.0)
    extract = (
        extraction_flops(config.image_size, freeze_at, n_train + n_val) / (speed.extract_gflops * 1e9 * faster)
        if cached
        else 0.0
    )
    work = epoch_work(config.image_size, freeze_at, route, n_train, n_val)
    epoch = (
        work.frozen_flops / (speed.extract_gflops * 1e9 * faster)
        + work.train_flops / (speed.train_gflops * 1e9 * faster)
        + speed.epoch_overhead_s[route]
    )
    return extract, epoch, extract + epochs * epoch


def estimate(
    config: TrainConfig, n_train: int, n_val: int, speed: Speed | float, stored: Collection[int] = ()
) -> Estimate:
    """Estimated time of a run (both phases) on a machine of this speed (a Speed, or a bare GFLOP/s).

    Args:
        stored: freeze points whose frozen features are in the feature store (no extraction there):
            `tlcore.feature_store.features_stored`.
    """
    speed = as_speed(speed)

    def cached_at(freeze_at: int) -> bool:
        return planned_route(config, freeze_at, n_train + n_val)[0] == CACHED

    first_cached = cached_at(config.freeze_at)
    # The epochs the run will take on this many images (early stopping may end it sooner).
    phases = schedule(config, n_train, (), CACHED if first_cached else END_TO_END).phases
    extract, epoch, total = _phase_seconds(
        config, config.freeze_at, phases[0].epochs, n_train, n_val, speed, first_cached
    )
    first_stored = first_cached and config.freeze_at in stored
    if first_stored:
        total, extract = total - extract, 0.0
    if config.fine_tune:
        ft = config.fine_tune
        ft_cached = cached_at(ft.freeze_at)
        ft_extract, _, ft_total = _phase_seconds(
            config, ft.freeze_at, phases[1].epochs, n_train, n_val, speed, ft_cached
        )
        total += ft_total - (ft_extract if ft_cached and ft.freeze_at in stored else 0.0)
    route = CACHED if first_cached else END_TO_END
    return Estimate(extract, epoch, total + speed.run_overhead_s, route, first_stored)


def estimate_many(configs: Iterable[TrainConfig], n_train: int, n_val: int, speed: Speed | float) -> float:
    """Estimated seconds of several runs one after the other (a sweep's points, from `tlcore.sweep.plan`)."""
    return sum(estimate(config, n_train, n_val, speed).total_seconds for config in configs)


def describe_sweep(
    base_config: TrainConfig, points: Iterable[int], scratch: bool, n_train: int, n_val: int, speed: Speed | float
) -> str:
    """The time a sweep would take, in words, each point estimated as a run of its own (before it starts).

    Raises:
        ValueError: a plan `tlcore.sweep.plan` refuses (bad or repeated points, nothing to run).
    """
    planned = plan(base_config, list(points), scratch=scratch)
    total = estimate_many((config for _, config in planned), n_train, n_val, speed)
    return f"about {human_seconds(total)} for {len(planned)} run(s) on this machine"
