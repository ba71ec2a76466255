"""Use a trained model: class probabilities, Grad-CAM, evaluation on a split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence, Union

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from tlcore.backbones import get_backbone
from tlcore.imageio import DEFAULT_MAX_PIXELS, convert_to_rgb, open_rgb, resize_rgb
from tlcore.pipeline import ImageSet, make_dataset

ImageInput = Union[str, os.PathLike, BinaryIO, bytes, Image.Image, np.ndarray]


def image_size_of(model: keras.Model) -> int:
    return int(model.input_shape[1])


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


# --- Grad-CAM --------------------------------------------------------------------


def gradcam_model(model: keras.Model, layer_name: str | None = None) -> keras.Model:
    """A model from raw pixels to (last conv activations, predictions)."""
    layer_name = layer_name or get_backbone("vgg16").last_conv_layer
    return keras.Model(model.inputs, [model.get_layer(layer_name).output, model.output])


def gradcam(
    model: keras.Model,
    pixels: np.ndarray,
    class_index: int | None = None,
    layer_name: str | None = None,
    grad_model: keras.Model | None = None,
) -> tuple[np.ndarray, int]:
    """Grad-CAM heatmap of one image for one class (Selvaraju et al., 2017).

    Args:
        pixels: uint8 or float (size, size, 3) raw RGB.
        class_index: the class to explain; None = the predicted class.
        grad_model: reuse one from `gradcam_model` when explaining many images.

    Returns:
        (heatmap, class_index): heatmap is float32 in [0, 1] at the conv
        layer's resolution (e.g. 4x4 for 64 px input with VGG16's block5).
    """
    grad_model = grad_model or gradcam_model(model, layer_name)
    x = tf.convert_to_tensor(np.asarray(pixels, dtype=np.float32)[None])
    with tf.GradientTape() as tape:
        activations, preds = grad_model(x, training=False)
        if class_index is None:
            class_index = _predicted_class(preds)
        score = _class_score(preds, class_index)
    grads = tape.gradient(score, activations)
    weights = tf.reduce_mean(grads, axis=(1, 2))  # one weight per channel
    cam = tf.nn.relu(tf.reduce_sum(activations * weights[:, None, None, :], axis=-1))[0].numpy()
    peak = float(cam.max())
    heatmap = cam / peak if peak > 0 else np.zeros_like(cam)
    return heatmap.astype(np.float32), int(class_index)


def _predicted_class(preds: tf.Tensor) -> int:
    if preds.shape[-1] == 1:
        return int(preds[0, 0] >= 0.5)
    return int(tf.argmax(preds[0]))


def _class_score(preds: tf.Tensor, class_index: int) -> tf.Tensor:
    if preds.shape[-1] == 1:  # sigmoid head: class 1 is p, class 0 is 1 - p
        return preds[:, 0] if class_index == 1 else 1.0 - preds[:, 0]
    return preds[:, class_index]


def upsample_heatmap(heatmap: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a [0, 1] heatmap to size x size."""
    image = Image.fromarray(np.uint8(np.clip(heatmap, 0, 1) * 255))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


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
