"""Freeze sweep: the same head trained at a series of freeze points, plus a from-scratch baseline.

A sweep answers "how much of the pretrained network should stay frozen?" by trying several
freeze points k on the same data with the same head, and putting next to them the same model
trained from random weights with every layer learning (no transfer at all). Each point is an
ordinary run in the run store, tagged {"sweep": id, "point": label}, so the runs table lists,
compares and reloads it like any other run.

This module plans a sweep and names its parts, without TensorFlow (a UI plans and estimates a
sweep before it starts); `tlcore.tf.sweep.run_sweep` runs one.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from tlcore.advisor import FINE_TUNE_MAX_LEARNING_RATE
from tlcore.backbone_facts import VGG16_BLOCK_BOUNDARIES, VGG16_LAYERS
from tlcore.backbones import NO_WEIGHTS
from tlcore.config import TrainConfig
from tlcore.jsontypes import JSONObject

DEFAULT_POINTS: tuple[int, ...] = VGG16_BLOCK_BOUNDARIES[::-1]  # VGG16's block boundaries, head only first
DEFAULT_IMAGE_SIZE, DEFAULT_EPOCHS = 96, 5
SCRATCH = "scratch"


def point_label(freeze_at: int) -> str:
    """How a pretrained point is named in tags, tables and progress: "k=14"."""
    return f"k={freeze_at}"


def new_sweep_id() -> str:
    """A sortable, unique id: "20240501-140312-3f9a"."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def sweep_config(
    weights: str = "imagenet", image_size: int = DEFAULT_IMAGE_SIZE, epochs: int = DEFAULT_EPOCHS, **changes: Any
) -> TrainConfig:
    """The default base of a sweep: 96 px, 5 epochs, the default head, no fine-tuning."""
    return TrainConfig(weights=weights, image_size=image_size, epochs=epochs, fine_tune=None, **changes)


# --- events and results ------------------------------------------------------------


@dataclass(frozen=True)
class SweepPointStart:
    """A point begins; the training events that follow belong to it."""

    index: int  # 1-based
    total: int
    label: str
    freeze_at: int
    weights: str


@dataclass
class SweepPoint:
    """One finished (or stopped) point of a sweep.

    `epoch_seconds` is the mean over the point's complete epochs (a stopped
    partial epoch is left out unless it is the only one); feature extraction
    is not in it but in `extract_seconds`. `seconds` is the point's whole wall
    time: building the model, extraction, training, saving.
    """

    label: str
    freeze_at: int
    weights: str
    trainable_params: int
    frozen_params: int
    epoch_seconds: float | None
    extract_seconds: float
    best_val_accuracy: float | None
    final_val_accuracy: float | None
    best_val_loss: float | None
    final_val_loss: float | None
    route: str  # cached | end_to_end ("" when it stopped before training)
    run_dir: str
    status: str  # completed | stopped | failed
    epochs_done: int = 0
    seconds: float = 0.0
    reason: str = ""

    def to_dict(self) -> JSONObject:
        """Its fields, the route under "path": the name the CLI's --json and the sweep table use."""
        return {("path" if name == "route" else name): value for name, value in asdict(self).items()}


@dataclass
class SweepResult:
    """A whole sweep, finished or stopped.

    Work is shared where it can be: the images are decoded once per sweep and every point trains
    on the same decoded arrays; within a point, train() computes the frozen prefix's features once
    (the cached path) and each epoch trains only the layers above k.

    Stop: the point running when the flag is seen ends as a stopped run (what it learned so far is
    kept), the points already finished stay as they are, and the points not started are skipped.
    """

    sweep_id: str
    status: str  # completed | stopped
    points: list[SweepPoint] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # labels of the points never started
    seconds: float = 0.0
    decode_seconds: float = 0.0
    shared_points: list[int] = field(default_factory=list)  # freeze points whose features came from one pass
    shared_extract_seconds: float = 0.0  # that pass (and checking the store)

    def summary(self) -> JSONObject:
        """The sweep in one JSON-ready object (the CLI's last line)."""
        return {
            "sweep": self.sweep_id,
            "points": len(self.points),
            "seconds": round(self.seconds, 3),
            "status": self.status,
            "decode_seconds": round(self.decode_seconds, 3),
            "shared_points": self.shared_points,
            "shared_extract_seconds": round(self.shared_extract_seconds, 3),
            "skipped": list(self.skipped),
        }


# --- planning ----------------------------------------------------------


def plan(base_config: TrainConfig, points: Sequence[int], scratch: bool = True) -> list[tuple[str, TrainConfig]]:
    """(label, config) of every point in order; the scratch baseline last.

    Raises:
        ValueError: a point outside 0..18, a repeated point, or nothing to run.
    """
    points = [int(k) for k in points]
    bad = [k for k in points if not 0 <= k <= VGG16_LAYERS]
    if bad:
        raise ValueError(f"Sweep points must be between 0 and {VGG16_LAYERS}. Received: points={points}")
    if len(set(points)) != len(points):
        raise ValueError(f"Sweep points must not repeat. Received: points={points}")
    if not points and not scratch:
        raise ValueError("A sweep needs at least one freeze point or the scratch baseline. Received: points=[]")
    base = base_config.replace(fine_tune=None)
    planned = [(point_label(k), base.replace(freeze_at=k, learning_rate=point_learning_rate(base, k))) for k in points]
    if scratch:
        planned.append(
            (SCRATCH, base.replace(weights=NO_WEIGHTS, freeze_at=0, learning_rate=point_learning_rate(base, 0)))
        )
    return planned


def point_learning_rate(base_config: TrainConfig, freeze_at: int) -> float:
    """The base rate for the head alone; at most 1e-4 once conv layers train.

    Measured on the sample data (96 px, Adam, 5 epochs): at 1e-3 every point
    with conv layers training fell to chance, pretrained or not; at 1e-4 the
    pretrained points reached 0.76-0.82, while the head alone needs 1e-3
    (0.98, against 0.64 at 1e-4). Each run records the rate it used.
    """
    if freeze_at >= VGG16_LAYERS:
        return base_config.learning_rate
    return min(base_config.learning_rate, FINE_TUNE_MAX_LEARNING_RATE)
