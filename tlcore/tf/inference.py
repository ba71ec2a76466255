"""Use a trained model: class probabilities, explained predictions (Grad-CAM from `tlcore.tf.gradcam`), evaluation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import keras
import numpy as np
import pandas as pd
from PIL import Image

from tlcore.data import DatasetInfo
from tlcore.imageio import DEFAULT_MAX_PIXELS, ImageProblem, convert_to_rgb, open_rgb, resize_rgb
from tlcore.modelfile import ModelLoadError
from tlcore.records import RunRecord
from tlcore.tf.gradcam import Explainer, blank_map_message, gradcam_overlay, gradcams, is_blank
from tlcore.tf.pipeline import ImageSet, load_split, make_dataset

ImageInput = str | os.PathLike | BinaryIO | bytes | Image.Image | np.ndarray


def image_size_of(model: keras.Model) -> int:
    return int(model.input_shape[1])


def num_classes_of(model: keras.Model) -> int:
    """The classes a model tells apart: its outputs, or 2 for a single sigmoid output."""
    return max(2, int(model.output_shape[-1]))


def check_image_classifier(model: keras.Model) -> None:
    """Refuse a model this page cannot feed: it must map square RGB images to class scores.

    Raises:
        ModelLoadError: naming the shape that does not fit.
    """
    shape, out = model.input_shape, model.output_shape
    if not (
        isinstance(shape, tuple)
        and len(shape) == 4
        and isinstance(shape[1], int)
        and shape[1] == shape[2]
        and shape[3] == 3
    ):
        raise ModelLoadError(
            f"This model does not take square RGB images: its input shape is {shape}; expected (None, size, size, 3)."
        )
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], int)):
        raise ModelLoadError(
            f"This model does not output class scores: its output shape is {out}; expected (None, number of classes)."
        )


def to_pixels(image: ImageInput, image_size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Any supported image input -> uint8 (size, size, 3) raw RGB.

    Raises:
        tlcore.imageio.ImageProblem: a file or bytes that is not a usable image.
    """
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        if array.ndim != 3 or array.shape[-1] not in (3, 4):
            raise ValueError(f"Expected an (H, W, 3) RGB array. Received shape {array.shape}")
        if array.dtype != np.uint8:
            array = np.clip(array, 0, 255).astype(np.uint8)
        image = Image.fromarray(array[..., :3])
    if isinstance(image, Image.Image):
        return resize_rgb(convert_to_rgb(image), image_size)
    return resize_rgb(open_rgb(image, max_pixels, draft_size=image_size), image_size)


def run_validation_images(record: RunRecord, image_size: int) -> tuple[np.ndarray, list[str]]:
    """A run's held-out images (the files it recorded) at `image_size`, and the files that could not be read, why.

    Raises:
        ValueError: the run recorded no validation files, or fewer than two of them can be read now.
    """
    if not record.validation_files or record.dataset is None:
        raise ValueError(f"Run {record.run_id} recorded no validation files.")
    root, pixels, problems = Path(record.dataset.root), [], []
    for name in record.validation_files:
        try:
            pixels.append(to_pixels(root / name, image_size))
        except (ImageProblem, OSError) as err:
            problems.append(f"{name}: {err}")
    if len(pixels) < 2:
        raise ValueError(
            f"Run {record.run_id}'s validation images cannot be read from {root} any more ({len(problems)} of "
            f"{len(record.validation_files)} missing or unreadable)."
        )
    return np.stack(pixels), problems


def probabilities(model: keras.Model, pixels: np.ndarray) -> np.ndarray:
    """Class probabilities (n, num_classes) for a batch of raw RGB pixels.

    A sigmoid head's single output p is returned as [1 - p, p].
    """
    out = np.asarray(model.predict_on_batch(np.asarray(pixels, dtype=np.float32)), dtype=np.float64)
    if out.shape[-1] == 1:
        out = np.concatenate([1.0 - out, out], axis=-1)
    return out


@dataclass
class Prediction:
    probabilities: dict[str, float]  # class name -> probability, in class order
    top_class: str
    top_probability: float

    def top_k(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: kv[1], reverse=True)[:k]


def predict(model: keras.Model, images: Sequence[ImageInput], class_names: Sequence[str]) -> list[Prediction]:
    """Predictions for images given as paths, bytes, file objects, PIL images or arrays."""
    size = image_size_of(model)
    batch = np.stack([to_pixels(image, size) for image in images])
    probs = probabilities(model, batch)
    if probs.shape[1] != len(class_names):
        raise ValueError(f"The model predicts {probs.shape[1]} classes but {len(class_names)} class names were given")
    predictions = []
    for row in probs:
        best = int(np.argmax(row))
        predictions.append(
            Prediction(
                probabilities={name: float(p) for name, p in zip(class_names, row)},
                top_class=class_names[best],
                top_probability=float(row[best]),
            )
        )
    return predictions


@dataclass
class Explanation(Prediction):
    """A prediction for one named image, with what to show next to it."""

    name: str
    display: np.ndarray  # uint8 (display_size, display_size, 3): the image as people see it
    heatmap: np.ndarray | None  # Grad-CAM for `explained_class` in [0, 1] at the conv layer's resolution
    overlay: np.ndarray | None  # the heatmap blended over `display`; None without a map or with a blank one
    gradcam_note: str | None = None  # why there is no overlay to show when the map came out blank
    explained_class: str = ""  # the class the heatmap is for: top_class unless another was asked for

    def summary(self) -> dict[str, Any]:
        """Name, probabilities and top class: small, plain values to keep or compare."""
        return {"name": self.name, "probabilities": dict(self.probabilities), "top_class": self.top_class}


def explain(
    model: keras.Model,
    grad_model: Explainer | None,
    sources: Sequence[tuple[str, ImageInput]],
    class_names: Sequence[str],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    display_size: int = 224,
    explained_class: str | None = None,
) -> tuple[list[Explanation], list[tuple[str, str]]]:
    """Predict and explain named images; a file that is not a usable image is reported, not raised.

    Args:
        grad_model: from `tlcore.tf.gradcam.explainer_for(model)`; None skips Grad-CAM (heatmap and overlay
            are None). A blank map (no region raised the class's score) has no overlay but a `gradcam_note`.
        sources: (name, image) pairs; an image is anything `to_pixels` reads.
        display_size: the size of the copy shown to people (at least the model's input size).
        explained_class: the class whose Grad-CAM every image gets ("why not the other class");
            None explains each image's own predicted class.

    Returns:
        (explanations, problems): one Explanation per usable image in input
        order, and (name, reason) for every image that could not be used.

    Raises:
        ValueError: class names that do not match the model's outputs, or an explained class not among them.
    """
    if explained_class is not None and explained_class not in class_names:
        raise ValueError(f"Can only explain one of the classes {list(class_names)}. Received: {explained_class!r}")
    size, decoded, problems = image_size_of(model), [], []
    for name, source in sources:
        if hasattr(source, "read"):
            source = source.read()  # read twice below: a stream would be empty the second time
        try:  # the model sees `size` px; people see a larger copy
            pixels = to_pixels(source, size, max_pixels)
            decoded.append((name, pixels, to_pixels(source, max(size, display_size), max_pixels)))
        except ImageProblem as err:
            problems.append((name, str(err)))
    if not decoded:
        return [], problems
    batch = np.stack([pixels for _, pixels, _ in decoded])
    probs = probabilities(model, batch)
    if probs.shape[1] != len(class_names):
        raise ValueError(f"The model predicts {probs.shape[1]} classes but {len(class_names)} class names were given")
    tops = [int(np.argmax(row)) for row in probs]
    explained = tops if explained_class is None else [list(class_names).index(explained_class)] * len(tops)
    heatmaps = gradcams(model, batch, explained, grad_model=grad_model)[0] if grad_model is not None else None
    explanations = []
    for i, ((name, _, display), row) in enumerate(zip(decoded, probs)):
        heatmap = heatmaps[i] if heatmaps is not None else None
        blank = heatmap is not None and is_blank(heatmap)
        explanations.append(
            Explanation(
                probabilities={c: float(p) for c, p in zip(class_names, row)},
                top_class=class_names[tops[i]],
                top_probability=float(row[tops[i]]),
                name=name,
                display=display,
                heatmap=heatmap,
                overlay=gradcam_overlay(display, heatmap) if heatmap is not None and not blank else None,
                gradcam_note=blank_map_message(class_names[explained[i]]) if blank else None,
                explained_class=class_names[explained[i]],
            )
        )
    return explanations, problems


def explain_with_each(
    models: Sequence[tuple[keras.Model, Explainer | None]],
    source: tuple[str, ImageInput],
    class_names: Sequence[str],
    display_size: int = 224,
    explained_class: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[Explanation]:
    """One image explained by several models of the same classes, in order: runs side by side.

    Each model gets the image at its own input size, so runs trained at different sizes compare on the
    same picture; every explanation's `display` is the same copy at `display_size` (or the largest model's size).

    Raises:
        tlcore.imageio.ImageProblem: the image is not usable.
        ValueError: a model whose outputs do not match `class_names`.
    """
    name, image = source
    if hasattr(image, "read"):
        image = image.read()  # read once per model below
    display = max([display_size, *(image_size_of(model) for model, _ in models)])
    shown = []
    for model, explainer in models:
        results, problems = explain(
            model, explainer, [(name, image)], class_names, max_pixels, display, explained_class=explained_class
        )
        if problems:
            raise ImageProblem(problems[0][1])
        shown.append(results[0])
    return shown


# --- evaluation ------------------------------------------------------------------


@dataclass
class Evaluation:
    class_names: list[str]
    confusion: np.ndarray  # [true, predicted] counts
    probabilities: np.ndarray  # (n, num_classes)
    labels: np.ndarray
    losses: np.ndarray  # per-image cross-entropy
    paths: list[Path]

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.confusion.sum()))

    def per_class_accuracy(self) -> dict[str, float]:
        totals = self.confusion.sum(axis=1)
        return {
            name: float(self.confusion[i, i] / totals[i]) if totals[i] else float("nan")
            for i, name in enumerate(self.class_names)
        }

    def per_class_table(self) -> pd.DataFrame:
        """One row per class: its images, how many were predicted right, and the share (NaN with no images)."""
        return pd.DataFrame(
            {
                "class": self.class_names,
                "images": self.confusion.sum(axis=1),
                "correct": np.diag(self.confusion),
                "accuracy": list(self.per_class_accuracy().values()),
            }
        )

    def top_losses(self, k: int = 8) -> list[dict]:
        """The k images the model got most wrong (highest loss first)."""
        return self._items(np.argsort(-self.losses)[:k])

    def cell(self, true_class: str, predicted_class: str) -> list[dict]:
        """The images of one confusion-matrix cell (that true class, predicted as that class), highest loss first."""
        predicted = self.probabilities.argmax(axis=1)
        inside = (self.labels == self.class_names.index(true_class)) & (
            predicted == self.class_names.index(predicted_class)
        )
        order = [i for i in np.argsort(-self.losses) if inside[i]]
        return self._items(np.asarray(order, dtype=np.int64))

    def _items(self, order: np.ndarray) -> list[dict]:
        """The images at `order`, each with its path, true and predicted class, probability and loss."""
        predicted = self.probabilities.argmax(axis=1)
        return [
            {
                "path": self.paths[i],
                "true": self.class_names[self.labels[i]],
                "predicted": self.class_names[predicted[i]],
                "probability": float(self.probabilities[i, predicted[i]]),
                "loss": float(self.losses[i]),
            }
            for i in order
        ]


@dataclass
class ExplainedLoss:
    """One of the images the model got most wrong, with where it looked for the predicted and the true class."""

    item: dict[str, Any]  # its row of `Evaluation.top_losses`
    display: np.ndarray | None  # uint8 (display_size, display_size, 3); None when the file can no longer be read
    # Class name -> Grad-CAM overlay (None: a blank map): the predicted class, then the true class when it is
    # another. Empty without an explainer.
    overlays: dict[str, np.ndarray | None]
    problem: str | None = None  # why `display` is None (the file changed on disk since the evaluation)


def explain_top_losses(
    model: keras.Model,
    grad_model: Explainer | None,
    evaluation: Evaluation,
    k: int = 8,
    display_size: int = 160,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[ExplainedLoss]:
    """The k highest-loss images of an evaluation, each with Grad-CAM for its predicted class and its true class.

    A confident mistake's two maps say what the model took for the wrong class and what it missed of the
    right one.
    """
    return explain_items(model, grad_model, evaluation.top_losses(k), evaluation.class_names, display_size, max_pixels)


def explain_items(
    model: keras.Model,
    grad_model: Explainer | None,
    items: Sequence[dict],
    names: Sequence[str],
    display_size: int = 160,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[ExplainedLoss]:
    """Evaluation items (`Evaluation.top_losses`, `Evaluation.cell`), each with Grad-CAM for its predicted and
    its true class; all maps come from one pass over the batch (`gradcams`)."""
    size = image_size_of(model)
    shown: list[ExplainedLoss] = []
    pixels: list[np.ndarray] = []
    wanted: list[tuple[dict[str, np.ndarray | None], np.ndarray, str]] = []  # (overlays, display, class) per map
    for item in items:
        try:
            model_copy = to_pixels(item["path"], size, max_pixels)
            display = to_pixels(item["path"], max(size, display_size), max_pixels)
        except (ImageProblem, OSError) as err:
            shown.append(ExplainedLoss(item, None, {}, str(err)))
            continue
        shown.append(ExplainedLoss(item, display, {}))
        for name in dict.fromkeys([item["predicted"], item["true"]]):  # once when they are the same class
            pixels.append(model_copy)
            wanted.append((shown[-1].overlays, display, name))
    if grad_model is not None and pixels:
        heatmaps, _ = gradcams(model, np.stack(pixels), [names.index(c) for *_, c in wanted], grad_model=grad_model)
        for (overlays, display, name), heatmap in zip(wanted, heatmaps):
            overlays[name] = None if is_blank(heatmap) else gradcam_overlay(display, heatmap)
    return shown


def evaluate(model: keras.Model, images: ImageSet, class_names: Sequence[str], batch_size: int = 32) -> Evaluation:
    """Confusion matrix, per-image probabilities and losses on a split."""
    probs = [probabilities(model, x.numpy()) for x, _ in make_dataset(images, batch_size)]
    all_probs = np.concatenate(probs) if probs else np.zeros((0, len(class_names)))
    labels = np.asarray(images.labels)
    n = len(class_names)
    confusion = np.zeros((n, n), dtype=np.int64)
    predicted = all_probs.argmax(axis=1) if len(all_probs) else np.zeros(0, dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    picked = all_probs[np.arange(len(labels)), labels] if len(labels) else np.zeros(0)
    losses = -np.log(np.clip(picked, 1e-7, 1.0))
    return Evaluation(list(class_names), confusion, all_probs, labels, losses, list(images.paths))


def evaluate_split(
    model: keras.Model, info: DatasetInfo, class_names: Sequence[str], split: str = "validation", batch_size: int = 32
) -> Evaluation:
    """`evaluate` on a dataset's split, its images decoded at the model's input size."""
    return evaluate(model, load_split(info, split, image_size_of(model)), class_names, batch_size)
