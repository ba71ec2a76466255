"""The vectors behind "explained by examples": images at a run's head input, pooled as its head pools.

The training images' vectors are computed once per model file and kept in the run's folder
(`tlcore.neighbours.NEIGHBOURS_FILE`, with the model file's size and modification time), so a later
view reads them instead of passing every training image through VGG16 again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from tlcore.architecture import HEAD_POOLING
from tlcore.imageio import ImageProblem
from tlcore.jsontypes import JSONObject, JSONValue
from tlcore.neighbours import (
    DEFAULT_NEIGHBOURS,
    NEIGHBOURS_FILE,
    Neighbour,
    NoNeighbours,
    TrainingVectors,
    training_files,
    unit_rows,
)
from tlcore.records import RunRecord
from tlcore.run_folder import MODEL_FILE
from tlcore.tf.inference import ImageInput, image_size_of, to_pixels
from tlcore.tf.probe import PASS_BATCH

POOLING_LAYERS = {name for name, _ in HEAD_POOLING.values()}


def head_input_model(model: keras.Model) -> keras.Model:
    """The model up to its head's pooling: what the head's first Dense layer receives.

    Raises:
        NoNeighbours: a model without one of the lab's pooling layers (an upload built elsewhere).
    """
    for layer in model.layers:
        if layer.name in POOLING_LAYERS:
            return keras.Model(model.inputs, layer.output)
    raise NoNeighbours(f"Model {model.name!r} has no head pooling layer ({', '.join(sorted(POOLING_LAYERS))}).")


def vectors_of(embedder: keras.Model, pixels: np.ndarray) -> np.ndarray:
    """Unit vectors of raw RGB images, PASS_BATCH at a time (a page waits for at most one batch)."""
    parts = [
        np.asarray(embedder.predict_on_batch(pixels[i : i + PASS_BATCH].astype(np.float32)), dtype=np.float32)
        for i in range(0, len(pixels), PASS_BATCH)
    ]
    flat = np.concatenate(parts).reshape(len(pixels), -1) if parts else np.zeros((0, 1), np.float32)
    return unit_rows(flat)


def _model_stamp(run_dir: Path) -> np.ndarray:
    stat = (run_dir / MODEL_FILE).stat()
    return np.array([stat.st_size, stat.st_mtime_ns], dtype=np.int64)


def training_vectors(run_dir: str | os.PathLike, record: RunRecord, model: keras.Model) -> TrainingVectors:
    """The run's training images as vectors: read from its folder when made for this model file, else computed
    (and kept there; a folder that cannot take the file only loses the speed-up).

    Raises:
        NoNeighbours: the run recorded no training files, or none can be read now.
    """
    run_dir = Path(run_dir)
    files, labels = training_files(record)
    kept, stamp = run_dir / NEIGHBOURS_FILE, _model_stamp(run_dir)
    try:
        with np.load(kept) as saved:
            if np.array_equal(saved["model"], stamp) and list(saved["asked"]) == files:
                kept_files = [str(f) for f in saved["files"]]
                kept_labels = [labels[files.index(f)] for f in kept_files]
                return TrainingVectors(tuple(kept_files), tuple(kept_labels), saved["vectors"])
    except (OSError, KeyError, ValueError):
        pass  # not made yet, or for another model file: made again below
    size, pixels, readable = image_size_of(model), [], []
    for index, path in enumerate(files):
        try:
            pixels.append(to_pixels(path, size))
            readable.append(index)
        except (ImageProblem, OSError):
            continue  # an unreadable training image is simply never a neighbour
    if not pixels:
        raise NoNeighbours(f"None of run {record.run_id}'s training images can be read now.")
    vectors = vectors_of(head_input_model(model), np.stack(pixels))
    asked, files, labels = files, [files[i] for i in readable], [labels[i] for i in readable]
    try:
        with kept.open("wb") as out:
            np.savez(out, model=stamp, asked=np.array(asked), files=np.array(files), vectors=vectors)
    except OSError:
        pass
    return TrainingVectors(tuple(files), tuple(labels), vectors)


@dataclass(frozen=True)
class Examples:
    """A model's training images ready to be shown as neighbours of new images, or why there are none."""

    vectors: TrainingVectors | None
    embedder: keras.Model | None
    image_size: int
    note: str = ""  # why there are no neighbours

    @classmethod
    def of(cls, run_dir: str | os.PathLike, record: RunRecord, model: keras.Model) -> Examples:
        try:
            return cls(training_vectors(run_dir, record, model), head_input_model(model), image_size_of(model))
        except NoNeighbours as err:
            return cls(None, None, image_size_of(model), str(err))

    def nearest(self, image: ImageInput, k: int = DEFAULT_NEIGHBOURS) -> list[Neighbour]:
        """The k training images most like `image` ([] when there are none).

        Raises:
            ImageProblem: `image` is not a usable image.
        """
        if self.vectors is None or self.embedder is None:
            return []
        return self.vectors.nearest(vectors_of(self.embedder, to_pixels(image, self.image_size)[None])[0], k)

    def like(self, image: ImageInput) -> JSONObject:
        """`predict --json`'s part: "neighbours", a list of {file, label, similarity}, and a note when empty."""
        found: list[JSONValue] = [n.to_dict() for n in self.nearest(image)]
        return {"neighbours": found, **({"neighbours_note": self.note} if self.note else {})}
