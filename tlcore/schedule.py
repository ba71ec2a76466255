"""How long a run trains on its data: the batch size, each phase's epochs, and whether early stopping runs.

A config says what a person asked for; on a small dataset that can be very little training (32 images in
batches of 32 for 5 epochs are 5 optimiser steps). With `min_steps` set, training length follows the data:
the batch shrinks so that an epoch holds several steps, and a phase that trains only the head on cached
features (a step costs a fraction of a millisecond there) runs epochs until it has taken `min_steps` steps.
Phases that train convolutions keep their epochs: each of their steps runs VGG16. Early stopping runs where
the validation split can judge it. TensorFlow-free: training, the estimate and the pages read the same plan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.config import TrainConfig
from tlcore.route import CACHED

MIN_BATCHES_PER_EPOCH = 4  # a fitted batch leaves an epoch at least this many steps...
MIN_FITTED_BATCH = 8  # ...but is never smaller than this (a smaller one set by hand is kept)
# Early stopping judges val_loss; with fewer validation images than this in a class it would pick an
# epoch by the luck of a few images (the Train page says how much one image moves accuracy).
EARLY_STOPPING_NOTE = "early stopping: "  # how a completed run's reason begins when early stopping ended a phase
MIN_VALIDATION_PER_CLASS = 5


@dataclass(frozen=True)
class PhaseLength:
    """One phase's epochs: as asked and as run."""

    phase: int
    freeze_at: int
    asked_epochs: int
    epochs: int

    @property
    def extended(self) -> bool:
        return self.epochs > self.asked_epochs


@dataclass(frozen=True)
class Schedule:
    """What a run trains on its data: batch size, steps per epoch, each phase's epochs, early stopping."""

    batch_size: int
    steps_per_epoch: int
    phases: tuple[PhaseLength, ...]
    patience: int | None  # early stopping's patience in epochs; None: it does not run
    patience_off_reason: str = ""  # why early stopping does not run although the config asks for it

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def describe(self, n_train: int) -> str:
        """The plan in one sentence: batches, epochs (with steps) of each phase, early stopping."""
        phases = [f"{p.epochs} epoch(s) ({p.epochs * self.steps_per_epoch} steps)" for p in self.phases]
        text = (
            f"{n_train} training images in batches of {self.batch_size} ({self.steps_per_epoch} step(s) an epoch): "
            + ", then ".join(phases)
        )
        if self.patience:
            return text + f"; a phase ends after {self.patience} epochs without a better validation loss."
        return text + (f"; {self.patience_off_reason}." if self.patience_off_reason else ".")

    def changes(self, config: TrainConfig, n_train: int) -> list[str]:
        """How this plan differs from the settings, in words (empty when it runs them as set)."""
        said = []
        if self.batch_size != config.batch_size:
            said.append(
                f"batches of {self.batch_size} instead of {config.batch_size}, so the {n_train} training images "
                f"make {self.steps_per_epoch} steps an epoch"
            )
        for phase in self.phases:
            if phase.extended:
                said.append(
                    f"{phase.epochs} epochs instead of {phase.asked_epochs} for the head"
                    + (f" (phase {phase.phase})" if len(self.phases) > 1 else "")
                    + f", so it takes at least {config.min_steps} steps"
                )
        return said


def fitted_batch_size(config: TrainConfig, n_train: int) -> int:
    """The config's batch size, smaller when the training set would fill fewer than MIN_BATCHES_PER_EPOCH."""
    if not config.min_steps or n_train <= 0:
        return config.batch_size
    return min(config.batch_size, max(MIN_FITTED_BATCH, math.ceil(n_train / MIN_BATCHES_PER_EPOCH)))


def schedule(config: TrainConfig, n_train: int, validation_per_class: Sequence[int], first_route: str) -> Schedule:
    """The plan of a run of `config` on this data; `first_route` is the route of its first phase.

    Only a first phase can train the head alone (a second one unfreezes more), so only its route matters.
    """
    batch = fitted_batch_size(config, n_train)
    steps = max(1, math.ceil(n_train / batch))
    head_only = config.freeze_at == VGG16_LAYERS and first_route == CACHED
    first = config.epochs
    if config.min_steps and head_only:
        first = max(first, math.ceil(config.min_steps / steps))
    phases = [PhaseLength(1, config.freeze_at, config.epochs, first)]
    if config.fine_tune:
        ft = config.fine_tune
        phases.append(PhaseLength(2, ft.freeze_at, ft.epochs, ft.epochs))
    patience, off = config.early_stopping_patience, ""
    if patience and (not validation_per_class or min(validation_per_class) < MIN_VALIDATION_PER_CLASS):
        fewest = min(validation_per_class, default=0)
        patience, off = (
            None,
            (
                f"early stopping is off: a class has {fewest} validation image(s), fewer than "
                f"{MIN_VALIDATION_PER_CLASS} to judge an epoch by"
            ),
        )
    return Schedule(batch, steps, tuple(phases), patience, off)
