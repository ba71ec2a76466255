"""A run's model for use elsewhere: the export formats, the check each export gets, and its card (no TensorFlow).

An export is a folder: the model (a SavedModel, or `model.tflite`), `labels.txt` (one class a line, in the
model's output order) and `export.json` (this card: classes, the input it expects, and how it compared with
the run's `.keras` model on the run's validation images). The work is `tlcore.tf.export`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tlcore.jsontypes import JSONObject

SAVEDMODEL, TFLITE, TFLITE_INT8 = "savedmodel", "tflite", "tflite-int8"
FORMATS = (SAVEDMODEL, TFLITE, TFLITE_INT8)
FORMAT_NAMES = {
    SAVEDMODEL: "TensorFlow SavedModel",
    TFLITE: "LiteRT / TFLite, float32",
    TFLITE_INT8: "LiteRT / TFLite, int8 weights (dynamic-range quantization)",
}
EXPORTS_DIR = "exports"  # inside a run's folder: one folder per format
CARD_FILE, LABELS_FILE, TFLITE_FILE = "export.json", "labels.txt", "model.tflite"
FLOAT_MAX_DP = 1e-4  # a float export's largest probability difference from the .keras model
INT8_MIN_AGREEMENT = 0.98  # an int8 export's share of images with the .keras model's top class
LATENCY_CALLS = 50  # single-image calls timed (after warm-up); the median is shown


def input_words(image_size: int) -> str:
    """What every export takes, in words (the model scales pixels itself, as the .keras model does)."""
    return f"one RGB image as float32 [1, {image_size}, {image_size}, 3], pixel values 0-255 (not scaled)"


@dataclass(frozen=True)
class ExportCheck:
    """An export beside the run's .keras model on the same images."""

    images: int
    same_top_class: int
    max_abs_dp: float  # the largest |p_export - p_keras| over every image and class
    export_ms: float  # median single-image call
    keras_ms: float

    @property
    def agreement(self) -> float:
        return self.same_top_class / self.images if self.images else 0.0


@dataclass(frozen=True)
class ExportResult:
    """One export of one run: where it is, what it carries, and how it compared."""

    run_id: str
    format: str
    path: Path  # the export's folder
    size_bytes: int  # the model itself (SavedModel: its whole folder but the card and labels)
    weights_bytes: int  # the model's weights as float32: what any export must carry at least (int8: a quarter)
    keras_size_bytes: int  # the run's .keras file, which may also keep the optimizer's state
    class_names: tuple[str, ...]
    image_size: int
    check: ExportCheck
    seconds: float = 0.0  # converting and checking

    @property
    def passed(self) -> bool:
        """Float exports: the same top class everywhere and max |Δp| within FLOAT_MAX_DP; int8: INT8_MIN_AGREEMENT."""
        if self.format == TFLITE_INT8:
            return self.check.agreement >= INT8_MIN_AGREEMENT
        return self.check.same_top_class == self.check.images and self.check.max_abs_dp <= FLOAT_MAX_DP

    @property
    def summary(self) -> str:
        """One sentence a user reads beside the download."""
        c = self.check
        verdict = "predicts the same" if self.passed else "does NOT predict the same"
        return (
            f"{FORMAT_NAMES[self.format]}: {verdict} as the run's model on {c.images} validation images "
            f"(same top class on {c.same_top_class}, largest probability difference {c.max_abs_dp:.1e}); "
            f"{self.size_bytes / 1e6:.1f} MB for {self.weights_bytes / 1e6:.1f} MB of float32 weights; "
            f"{c.export_ms:.1f} ms an image against {c.keras_ms:.1f} ms (median of {LATENCY_CALLS})."
        )

    def to_dict(self) -> JSONObject:
        """export.json's object, and the command line's --json."""
        return {
            "run_id": self.run_id,
            "format": self.format,
            "path": str(self.path),
            "class_names": list(self.class_names),
            "input": input_words(self.image_size),
            "image_size": self.image_size,
            "size_bytes": self.size_bytes,
            "weights_bytes": self.weights_bytes,
            "keras_size_bytes": self.keras_size_bytes,
            "images": self.check.images,
            "same_top_class": self.check.same_top_class,
            "agreement": self.check.agreement,
            "max_abs_dp": self.check.max_abs_dp,
            "export_ms": self.check.export_ms,
            "keras_ms": self.check.keras_ms,
            "passed": self.passed,
            "summary": self.summary,
            "seconds": round(self.seconds, 3),
        }


def write_card(result: ExportResult) -> None:
    """labels.txt and export.json beside the model, so the export says what it is wherever it goes."""
    (result.path / LABELS_FILE).write_text("".join(f"{name}\n" for name in result.class_names), encoding="utf-8")
    (result.path / CARD_FILE).write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")


def read_cards(run_dir: Path) -> list[JSONObject]:
    """The cards of a run's exports, in FORMATS order (those that exist and read)."""
    cards = []
    for fmt in FORMATS:
        try:
            card = json.loads((run_dir / EXPORTS_DIR / fmt / CARD_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(card, dict):
            cards.append(card)
    return cards
