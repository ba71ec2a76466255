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
from tlcore.tf.gradcam import Explainer, blank_map_message, gradcam, gradcam_overlay, is_blank
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
    heatmap: np.ndarray | None  # Grad-CAM for top_class in [0, 1] at the conv layer's resolution
    overlay: np.ndarray | None  # the heatmap blended over `display`; None without a map or with a blank one
    gradcam_note: str | None = None  # why there is no overlay to show when the map came out blank

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
) -> tuple[list[Explanation], list[tuple[str, str]]]:
    """Predict and explain named images; a file that is not a usable image is reported, not raised.

    Args:
        grad_model: from `tlcore.tf.gradcam.explainer_for(model)`; None skips Grad-CAM (heatmap and overlay
            are None). A blank map (no region raised the class's score) has no overlay but a `gradcam_note`.
        sources: (name, image) pairs; an image is anything `to_pixels` reads.
        display_size: the size of the copy shown to people (at least the model's input size).

    Returns:
        (explanations, problems): one Explanation per usable image in input
        order, and (name, reason) for every image that could not be used.
    """
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
    probs = probabilities(model, np.stack([pixels for _, pixels, _ in decoded]))
    if probs.shape[1] != len(class_names):
        raise ValueError(f"The model predicts {probs.shape[1]} classes but {len(class_names)} class names were given")
    explanations = []
    for (name, pixels, display), row in zip(decoded, probs):
        best = int(np.argmax(row))
        heatmap = gradcam(model, pixels, best, grad_model=grad_model)[0] if grad_model is not None else None
        blank = heatmap is not None and is_blank(heatmap)
        explanations.append(
            Explanation(
                probabilities={c: float(p) for c, p in zip(class_names, row)},
                top_class=class_names[best],
                top_probability=float(row[best]),
                name=name,
                display=display,
                heatmap=heatmap,
                overlay=gradcam_overlay(display, heatmap) if heatmap is not None and not blank else None,
                gradcam_note=blank_map_message(class_names[best]) if blank else None,
            )
        )
    return explanations, problems


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
        order = np.argsort(-self.losses)[:k]
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
