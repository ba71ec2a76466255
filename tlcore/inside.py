"""The two weightings every inside view compares: the pretrained weights and random ones.

A learner sees why transfer works by putting the same images through VGG16
twice: once with the weights it learned on ImageNet, once with Keras' own
random initialisation (drawn from a seed, so the same seed gives the same
network). Without usable pretrained weights (offline, no file) a view shows
the random side alone and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlcore.backbones import NO_WEIGHTS, default_weights, normalize_weights, weights_status

PRETRAINED, RANDOM = "imagenet", "random"  # the two sides, as keys in results and JSON
SIDE_TITLES = {PRETRAINED: "ImageNet weights", RANDOM: "Random weights"}


@dataclass(frozen=True)
class Weighting:
    """One side of a comparison: which weights go into the backbone."""

    side: str  # PRETRAINED | RANDOM
    weights: str  # what tlcore.tf.backbones.load_backbone takes: "imagenet", a file path, or "none"
    seed: int  # draws the random side's initialisation (ignored for pretrained weights)

    @property
    def title(self) -> str:
        return SIDE_TITLES[self.side] if self.side == PRETRAINED else f"{SIDE_TITLES[RANDOM]} (seed {self.seed})"


@dataclass(frozen=True)
class Comparison:
    """The weightings a view shows, pretrained first; `reason` says why the pretrained side is missing."""

    weightings: tuple[Weighting, ...]
    reason: str = ""

    @property
    def pretrained(self) -> Weighting | None:
        return next((w for w in self.weightings if w.side == PRETRAINED), None)

    @property
    def random(self) -> Weighting:
        return next(w for w in self.weightings if w.side == RANDOM)


def compared_weightings(choice: str | None = None, seed: int = 0, fall_back: bool = True) -> Comparison:
    """ImageNet (or a weights file) against random weights drawn from `seed`.

    Args:
        choice: the pretrained weights; None means the default (TLLAB_WEIGHTS, else ImageNet).
        fall_back: whether "none" (a learner who chose random weights to train with) still
            compares against the default pretrained weights; without it, "none" means no pretrained side.
    """
    random_side = Weighting(RANDOM, NO_WEIGHTS, seed)
    weights = normalize_weights(choice)
    if weights == NO_WEIGHTS:
        if not fall_back:
            return Comparison((random_side,), "No pretrained side: random weights (none) were asked for.")
        weights = normalize_weights(default_weights())
    usable, message = weights_status(weights)
    if not usable:
        return Comparison((random_side,), f"No pretrained side: {message}")
    return Comparison((Weighting(PRETRAINED, weights, seed), random_side))
