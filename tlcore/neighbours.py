"""Explained by examples: the training images a model finds most like a new one (no TensorFlow).

A run's training images, each as the vector its head receives (VGG16's output pooled as the head pools),
normalised to length 1; an image's neighbours are those with the highest cosine similarity to its own vector.
The vectors are computed by `tlcore.tf.neighbours` and kept in the run's folder (NEIGHBOURS_FILE).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tlcore.jsontypes import JSONObject
from tlcore.records import RunRecord

NEIGHBOURS_FILE = "neighbours.npz"  # in the run's folder: the training images' vectors, for its model file
DEFAULT_NEIGHBOURS = 5


class NoNeighbours(Exception):
    """A run whose training images cannot be shown as neighbours; the message says why."""


@dataclass(frozen=True)
class Neighbour:
    """One training image near the one asked about."""

    file: str  # absolute path
    label: str
    similarity: float  # cosine, -1..1

    def to_dict(self) -> JSONObject:
        return {"file": self.file, "label": self.label, "similarity": round(self.similarity, 6)}


@dataclass(frozen=True)
class TrainingVectors:
    """A run's training images as unit vectors at its head's input, row i for files[i]."""

    files: tuple[str, ...]
    labels: tuple[str, ...]
    vectors: np.ndarray  # (n, d) float32, each row of length 1

    def nearest(self, vector: np.ndarray, k: int = DEFAULT_NEIGHBOURS) -> list[Neighbour]:
        """The k training images most like `vector` (any length: it is normalised here), most similar first."""
        unit = unit_rows(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]
        similarity = self.vectors @ unit
        order = np.argsort(-similarity, kind="stable")[:k]
        return [Neighbour(self.files[i], self.labels[i], float(similarity[i])) for i in order]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its length (a zero row stays zero: similar to nothing)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def training_files(record: RunRecord) -> tuple[list[str], list[str]]:
    """(absolute paths, labels) of the images the run trained on; a label is the file's class folder.

    Raises:
        NoNeighbours: a run recorded before runs kept their training files, or whose files are gone.
    """
    if record.train_files is None or record.dataset is None:
        raise NoNeighbours(
            f"Run {record.run_id} was saved before runs recorded their training images, so it cannot show "
            "which of them look alike. Train it again to see them."
        )
    root = Path(record.dataset.root)
    names = set(record.class_names or ())
    files = [str(root / name) for name in record.train_files if (root / name).is_file()]
    if not files:
        raise NoNeighbours(f"Run {record.run_id}'s training images are no longer in {root}.")
    labels = [Path(f).parent.name if Path(f).parent.name in names else "?" for f in files]
    return files, labels
