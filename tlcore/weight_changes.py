"""What fine-tuning changed: how far each layer's weights moved from where the run started (no TensorFlow).

For every layer with weights (VGG16's 13 convolutions, the head's Dense
layers) the relative change ||W - W0|| / ||W0||, all the layer's arrays
(kernel and bias) together. W0 is rebuilt from the run's start record
(`tlcore.records.StartRecord`), never stored; the computation is
`tlcore.tf.weight_changes.weight_changes`. The result types, what a run
trained and why a run cannot be measured live here, readable without
TensorFlow by the command line and the dashboard.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path

from tlcore.backbones import WeightsError, weights_file, weights_identity
from tlcore.cka import ESTIMATOR, cka_words
from tlcore.jsontypes import JSONObject
from tlcore.records import RUNNING, RunRecord, StartRecord
from tlcore.run_folder import MODEL_FILE, load_record

BACKBONE, HEAD = "backbone", "head"  # LayerChange.part

NO_START_RECORD = (
    "This run was saved before the lab recorded its starting weights, so what fine-tuning changed cannot be "
    "worked out without guessing. Train it again to see its layer changes."
)


class ChangesUnavailable(Exception):
    """A run whose weight changes cannot be computed; the message says why and what to do."""


@dataclass(frozen=True)
class LayerChange:
    """How far one layer's weights moved during a run."""

    name: str
    part: str  # BACKBONE | HEAD
    block: str  # block1..block5, or "head"
    trained: bool  # trainable in a phase the run trained (frozen layers did not move at all)
    start_norm: float  # ||W0||
    change_norm: float  # ||W - W0||
    params: int

    @property
    def relative_change(self) -> float | None:
        """||W - W0|| / ||W0||; None where W0 is all zeros (a change relative to nothing has no size)."""
        if self.start_norm == 0:
            return 0.0 if self.change_norm == 0 else None
        return self.change_norm / self.start_norm

    def to_dict(self) -> JSONObject:
        return {
            "name": self.name,
            "part": self.part,
            "block": self.block,
            "trained": self.trained,
            # NaN (a diverged run's weights) is not JSON: null, like a change relative to nothing.
            "relative_change": _number(self.relative_change),
            "start_norm": _number(self.start_norm),
            "change_norm": _number(self.change_norm),
            "params": self.params,
        }


@dataclass(frozen=True)
class WeightChanges:
    """Every layer with weights of a run, input side first, and how far it moved."""

    run_id: str
    layers: tuple[LayerChange, ...]
    trained_from: int  # the freeze point of the deepest phase that trained: backbone layers after it trained
    weights: str  # where the run started: "none", "imagenet" or a file path
    seconds: float = 0.0  # rebuilding W0, loading the model and comparing
    representations: RepresentationChanges | None = None  # the conv layers' CKA, when asked for

    @property
    def conv_layers_trained(self) -> int:
        return sum(1 for layer in self.layers if layer.part == BACKBONE and layer.trained)

    @property
    def head_only(self) -> bool:
        """No VGG16 layer trained: only the head can have changed."""
        return self.conv_layers_trained == 0

    @property
    def summary(self) -> str:
        """One sentence a learner reads under the bars."""
        if self.head_only:
            return "Only the head trained in this run: every VGG16 layer was frozen, so only the head changed."
        trained = [layer for layer in self.layers if layer.part == BACKBONE and layer.trained]
        frozen = sum(1 for layer in self.layers if layer.part == BACKBONE and not layer.trained)
        moved = _sizes(trained)
        head = _sizes([layer for layer in self.layers if layer.part == HEAD])
        text = f"{len(trained)} VGG16 conv layer(s) trained, {frozen} stayed frozen (unchanged)"
        if moved:
            text += f"; the trained ones moved {_percent(min(moved))} to {_percent(max(moved))} of their size"
        if head:
            text += f", the head {_percent(min(head))} to {_percent(max(head))}"
        return text + "."

    def to_dict(self) -> JSONObject:
        """The command line's JSON; with the CKA, each layer's `cka` (null for the head: it started random)."""
        similarity = self.representations.by_layer() if self.representations else None
        out: JSONObject = {
            "run_id": self.run_id,
            "weights": self.weights,
            "trained_from": self.trained_from,
            "conv_layers_trained": self.conv_layers_trained,
            "head_only": self.head_only,
            "summary": self.summary,
            "seconds": round(self.seconds, 3),
            "layers": [
                {**layer.to_dict(), **({"cka": _number(similarity.get(layer.name))} if similarity is not None else {})}
                for layer in self.layers
            ],
        }
        if self.representations is not None:
            out["cka_estimator"] = ESTIMATOR
            out["cka_images"] = self.representations.images
            out["cka_summary"] = self.representations.summary
            out["cka_unreadable"] = list(self.representations.unreadable)
        return out


@dataclass(frozen=True)
class LayerSimilarity:
    """How alike one VGG16 conv layer's activations are before and after a run (linear CKA, 1: unchanged)."""

    name: str
    block: str
    trained: bool  # False: below the freeze point, so 1 by construction (not measured)
    cka: float


@dataclass(frozen=True)
class RepresentationChanges:
    """Linear CKA (`tlcore.cka.ESTIMATOR`) per VGG16 conv layer between a run's start and end, on its validation
    images."""

    run_id: str
    layers: tuple[LayerSimilarity, ...]
    trained_from: int
    images: int  # validation images compared on
    unreadable: tuple[str, ...] = ()  # validation files that could not be read now, with why
    seconds: float = 0.0

    def by_layer(self) -> dict[str, float]:
        return {layer.name: layer.cka for layer in self.layers}

    @property
    def summary(self) -> str:
        """Sentences that read the measured values, for under the chart."""
        trained = [layer for layer in self.layers if layer.trained and math.isfinite(layer.cka)]
        frozen = len(self.layers) - len([layer for layer in self.layers if layer.trained])
        text = f"Measured on {self.images} validation images."
        if frozen:
            text += f" The first {frozen} conv layers stayed frozen: their CKA is 1 by construction (no bar)."
        if not trained:
            return text + " No conv layer trained, so every layer computes what it computed before."
        low, high = min(trained, key=lambda t: t.cka), max(trained, key=lambda t: t.cka)
        text += f" Of the {len(trained)} trained conv layers, {high.name} kept most (CKA {cka_words(high.cka)})"
        text += f" and {low.name} changed most ({cka_words(low.cka)})."
        values = [layer.cka for layer in trained]
        if len(values) > 1 and all(b <= a + 0.1 * (1 - a) for a, b in itertools.pairwise(values)):
            text += " The deeper the layer, the more its representation changed."
        if low.cka > 0.95:
            text += (
                " Every trained layer still computes nearly what it computed before: training adjusted these "
                "features rather than replacing them."
            )
        return text


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _sizes(layers: list[LayerChange]) -> list[float]:
    return [change for layer in layers if (change := layer.relative_change) is not None and math.isfinite(change)]


def _percent(value: float) -> str:
    """A share in percent with two significant digits: 0.012%, 3.4%, 120%."""
    return f"{value * 100:.2g}%" if value * 100 < 100 else f"{value * 100:.0f}%"


def measurable_record(run_dir: str | os.PathLike) -> RunRecord:
    """A run's record, once its files say its changes can be measured: finished, with a saved model and the
    start it was recorded with (its weights file, if any, unchanged). TensorFlow-free: the command line
    refuses a run that cannot be measured before TensorFlow loads.

    Raises:
        FileNotFoundError: not a run folder.
        ChangesUnavailable: still training, no saved model, no start record, or a missing or changed weights file.
    """
    run_dir = Path(run_dir)
    try:
        record = load_record(run_dir)
    except ValueError as err:
        raise ChangesUnavailable(str(err)) from None
    if record.status == RUNNING:
        raise ChangesUnavailable(f"Run {record.run_id} is still training: its weights are not final yet.")
    if not (run_dir / MODEL_FILE).is_file():
        raise ChangesUnavailable(f"Run {record.run_id} saved no model ({MODEL_FILE}), so there is nothing to compare.")
    check_start_weights(start_of(record))
    return record


def start_of(record: RunRecord) -> StartRecord:
    """The run's start record.

    Raises:
        ChangesUnavailable: the run was saved before runs recorded where they started.
    """
    if record.start is None:
        raise ChangesUnavailable(NO_START_RECORD)
    return record.start


def trained_from(record: RunRecord) -> int:
    """The freeze point of the deepest phase that trained: the smallest freeze point in the history.

    A fine-tuning phase that never ran (the run stopped in phase 1) trained nothing,
    so the history, not the config, says which layers moved.
    """
    if record.history:
        return min(row.freeze_at for row in record.history)
    if record.config is None:
        raise ChangesUnavailable(f"Run {record.run_id} has no readable configuration: its layers cannot be told apart.")
    return record.config.freeze_at


def check_start_weights(start: StartRecord) -> None:
    """That the weights file the run started from is still there, with the same content.

    Raises:
        ChangesUnavailable: the file is missing or its content changed (the message names it).
    """
    try:
        identity = weights_identity(start.weights)
    except WeightsError:
        missing = start.weights_file or str(weights_file(start.weights) or start.weights)
        raise ChangesUnavailable(
            f"The weights file this run started from is missing ({missing}), so its starting weights cannot be "
            "rebuilt. Put the file back where it was to see what fine-tuning changed."
        ) from None
    if identity != start.weights_identity:
        raise ChangesUnavailable(
            f"The weights file this run started from ({weights_file(start.weights)}) has changed since the run "
            f"(its content is now {identity[:19]}…, the run recorded {start.weights_identity[:19]}…), so the "
            "run's starting weights cannot be rebuilt. Put the original file back to see what fine-tuning changed."
        )


def norms_mismatch(start: StartRecord, rebuilt: dict[str, float], rel_tol: float = 1e-6) -> str:
    """Why a rebuild of W0 is not the run's W0 ('' when every layer's norm matches the recorded one)."""
    if set(rebuilt) != set(start.layer_norms):
        return f"the rebuilt model's layers ({', '.join(rebuilt)}) are not the run's ({', '.join(start.layer_norms)})"
    for name, norm in rebuilt.items():
        recorded = float(start.layer_norms[name])
        if not math.isclose(norm, recorded, rel_tol=rel_tol, abs_tol=1e-12):
            return f"layer {name}'s starting weights have norm {norm:.6g} now, the run recorded {recorded:.6g}"
    return ""
