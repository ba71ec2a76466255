"""Linear probes: how much of the classes a layer's features already tell apart, before any training.

A probe is a logistic regression on globally pooled features (each channel's
mean over the feature map), fitted on the training split and scored on the
validation split. Run at every block boundary for ImageNet weights and for
random weights, it shows where transferable knowledge lives: the pretrained
features separate the classes better than random ones at the same depth, and more so deeper.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from tlcore.backbone_facts import VGG16_BLOCK_BOUNDARIES, VGG16_CHAIN
from tlcore.inside import PRETRAINED, RANDOM
from tlcore.jsontypes import JSONObject

PROBE_C = 1.0  # inverse L2 strength: scikit-learn's default, fixed so probes compare across layers and weights
PROBE_MAX_ITER = 2000  # enough for lbfgs to converge on a few thousand standardised features
# Freeze points that end a block (after each pooling): 3, 6, 10, 14, 18.
PROBE_BOUNDARIES: tuple[int, ...] = tuple(k for k in VGG16_BLOCK_BOUNDARIES if k > 0)
PROJECTIONS = ("pca",)
PROBE_CLASSIFIER = f"scikit-learn LogisticRegression (lbfgs, L2, C={PROBE_C}) on standardised pooled features"


def layer_at(freeze_at: int) -> str:
    """The name of the last layer a freeze point keeps frozen (1..18): the features it hands on."""
    if not 1 <= freeze_at <= len(VGG16_CHAIN):
        raise ValueError(f"A layer's features need 1 <= freeze_at <= {len(VGG16_CHAIN)}. Received: {freeze_at}")
    return VGG16_CHAIN[freeze_at - 1].name


def probe_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, seed: int = 0
) -> float:
    """Validation accuracy of a logistic regression fitted on the training features alone.

    The classifier is scikit-learn's `LogisticRegression` (lbfgs, L2, C = PROBE_C), after
    standardising each feature on the training split; lbfgs draws no random numbers, so a probe
    gives the same accuracy every time. Validation labels are used only to score it.

    Raises:
        ValueError: fewer than two classes in the training labels, or no validation images.
    """
    if len(np.unique(train_y)) < 2:
        raise ValueError("A probe needs training images of at least two classes.")
    if len(val_y) == 0:
        raise ValueError("A probe needs validation images to score it on.")
    # Imported here, not at the top: scikit-learn takes over a second to import, and every CLI command
    # (`tllab scan`, `--version`) imports this module through tlcore.cli.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER, random_state=seed))
    probe.fit(_finite(train_x), train_y)
    return float(probe.score(_finite(val_x), val_y))


def _finite(x: np.ndarray) -> np.ndarray:
    # Random deep layers can overflow to inf in float32; a probe needs numbers.
    return np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def project_2d(train_x: np.ndarray, val_x: np.ndarray, method: str = "pca") -> tuple[np.ndarray, np.ndarray]:
    """2-D coordinates of training and validation features, the projection (a PCA) fitted on training features
    alone."""
    if method not in PROJECTIONS:
        raise ValueError(f"method must be one of {PROJECTIONS}. Received: method={method!r}")
    from sklearn.decomposition import PCA  # here, not at the top: see probe_accuracy
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(_finite(train_x))
    with np.errstate(invalid="ignore", divide="ignore"):  # features that never vary (a dead layer) map to 0
        pca = PCA(n_components=2, svd_solver="full").fit(scaler.transform(_finite(train_x)))
    return pca.transform(scaler.transform(_finite(train_x))), pca.transform(scaler.transform(_finite(val_x)))


@dataclass(frozen=True)
class BoundaryScore:
    """Probe accuracy at one freeze point for each side (None: that side was not probed)."""

    freeze_at: int
    layer: str
    imagenet: float | None
    random: float | None

    def of(self, side: str) -> float | None:
        return {PRETRAINED: self.imagenet, RANDOM: self.random}[side]


@dataclass(frozen=True)
class ProbeResult:
    """Probe accuracies at each freeze point; `reason` says why the ImageNet side is missing."""

    scores: tuple[BoundaryScore, ...]
    image_size: int
    num_train: int
    num_validation: int
    reason: str = ""
    seconds: float = 0.0

    def at(self, freeze_at: int) -> BoundaryScore:
        return next(s for s in self.scores if s.freeze_at == freeze_at)

    @property
    def boundaries(self) -> tuple[BoundaryScore, ...]:
        """The scores at block boundaries (the probe's chart and JSON)."""
        return tuple(s for s in self.scores if s.freeze_at in PROBE_BOUNDARIES)

    def random_ahead_note(self) -> str:
        """Why random weights may match or beat ImageNet's at a boundary, in words ("" when they never do)."""
        ahead = [
            s for s in self.boundaries if s.imagenet is not None and s.random is not None and s.random >= s.imagenet
        ]
        if not ahead:
            return ""
        where = ", ".join(f"{s.layer} ({s.random:.0%} against {s.imagenet:.0%})" for s in ahead)
        return (
            f"Random weights score as well as ImageNet's or better at {where}. Early layers pass on edges and "
            "colours, and random filters pass those on too: a simple classifier on many random features can "
            "separate classes that differ in colour or texture. What ImageNet adds grows with depth, where its "
            "filters combine parts into objects and random ones only scramble; with few validation images, a "
            "few points either way are luck."
        )

    def to_json(self) -> JSONObject:
        """What `python -m tlcore probe --json` prints."""
        out: JSONObject = {
            "boundaries": [
                {"freeze_at": s.freeze_at, "layer": s.layer, PRETRAINED: s.imagenet, RANDOM: s.random}
                for s in self.boundaries
            ],
            "image_size": self.image_size,
            "train_images": self.num_train,
            "validation_images": self.num_validation,
            "classifier": PROBE_CLASSIFIER,
            "seconds": round(self.seconds, 2),
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def scores_table(
    accuracies: Mapping[str, Mapping[int, float]], freeze_points: Iterable[int]
) -> tuple[BoundaryScore, ...]:
    """BoundaryScores from {side: {freeze_at: accuracy}} (a side absent: None)."""
    return tuple(
        BoundaryScore(k, layer_at(k), accuracies.get(PRETRAINED, {}).get(k), accuracies.get(RANDOM, {}).get(k))
        for k in sorted(set(freeze_points))
    )


def format_accuracy(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}"
