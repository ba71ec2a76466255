"""How long will a run take on this machine? FLOPs of VGG16 per layer x a measured speed.

The convolutions dominate, so time ~ FLOPs / (this machine's GFLOP/s). The
speed is measured once with a short forward pass (`measure_gflops`).
Training a layer costs about 3x its forward pass (forward, gradient with
respect to inputs, gradient with respect to weights).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tlcore.config import TrainConfig

# (out channels, in channels) of VGG16's 18 layers; None marks a 2x2 max pooling.
_VGG16_LAYERS: list[tuple[int, int] | None] = [
    (64, 3), (64, 64), None,
    (128, 64), (128, 128), None,
    (256, 128), (256, 256), (256, 256), None,
    (512, 256), (512, 512), (512, 512), None,
    (512, 512), (512, 512), (512, 512), None,
]
TRAIN_COST = 3.0  # training a layer ~ 3 forward passes
FIXED_OVERHEAD_S = 3.0  # building the model, compiling, first-call tracing


def layer_flops(image_size: int) -> list[float]:
    """Forward FLOPs per image of each of VGG16's 18 layers (2 per multiply-add)."""
    flops, side = [], image_size
    for layer in _VGG16_LAYERS:
        if layer is None:
            side //= 2
            flops.append(0.0)
        else:
            out_ch, in_ch = layer
            flops.append(2.0 * side * side * 9 * in_ch * out_ch)
    return flops


def measure_gflops(image_size: int = 64, batch: int = 16, repeats: int = 2) -> float:
    """This machine's sustained GFLOP/s on VGG16 convolutions (best of a few batches)."""
    import numpy as np

    from tlcore.backbones import get_backbone

    base = get_backbone("vgg16").build(image_size)
    x = np.random.default_rng(0).uniform(0, 255, (batch, image_size, image_size, 3)).astype("float32")
    base.predict_on_batch(x)  # first call traces the graph
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        base.predict_on_batch(x)
        best = min(best, time.perf_counter() - t0)
    return sum(layer_flops(image_size)) * batch / best / 1e9


@dataclass(frozen=True)
class Estimate:
    extract_seconds: float
    epoch_seconds: float  # the first phase's epochs
    total_seconds: float
    path: str

    def describe(self) -> str:
        parts = [f"about {_human(self.total_seconds)} in all"]
        if self.extract_seconds:
            parts.append(f"{_human(self.extract_seconds)} to compute the frozen features once")
        parts.append(f"{_human(self.epoch_seconds)} per epoch")
        return ", ".join(parts)


def _human(seconds: float) -> str:
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
    epoch += 0.05  # the head and per-batch overhead, measurable even on cached features
    return extract, epoch, extract + epochs * epoch


def estimate(config: TrainConfig, n_train: int, n_val: int, gflops: float) -> Estimate:
    """Estimated time of a run (both phases) on a machine doing `gflops` GFLOP/s."""
    def cached_at(freeze_at: int) -> bool:
        return config.cache_features and not config.augment.enabled and freeze_at > 0

    first_cached = cached_at(config.freeze_at)
    extract, epoch, total = _phase_seconds(config, config.freeze_at, config.epochs, n_train, n_val, gflops, first_cached)
    if config.fine_tune:
        ft = config.fine_tune
        total += _phase_seconds(config, ft.freeze_at, ft.epochs, n_train, n_val, gflops, cached_at(ft.freeze_at))[2]
    return Estimate(extract, epoch, total + FIXED_OVERHEAD_S, "cached" if first_cached else "end_to_end")
