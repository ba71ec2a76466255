"""Build backbone + head as one flat chain of layers; freeze points; the layer table.

The model takes raw RGB pixels 0..255. Its layers are, in order: the input,
the backbone's preprocessing layer, the backbone's layers (its spec's
num_layers), then the head. Because it is a flat chain (no nested backbone
model), it can be cut at any freeze point into a frozen prefix and a trainable suffix that share
layer objects, and Grad-CAM can reach the last conv layer of a model fresh
from training or reloaded from `.keras`.

The layer table of a model not built yet is `tlcore.architecture.layer_table`.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from keras.src.saving import saving_lib

import tlcore.tf.layers  # noqa: F401  (registers CaffePreprocess for deserialization)
from tlcore.architecture import INPUT_LAYER, OUTPUT_LAYER, PREPROCESS_LAYER, HeadLayer, head_layers, model_name
from tlcore.backbone_facts import DEFAULT_BACKBONE, IMAGE_CHANNELS
from tlcore.backbones import BackboneSpec, get_backbone
from tlcore.config import HeadConfig
from tlcore.devices import FLOAT32
from tlcore.modelfile import ModelLoadError, add_labels, check_model_file
from tlcore.run_folder import MODEL_FILE
from tlcore.tf.backbones import load_backbone, preprocess_layer


def build_model(
    num_classes: int,
    image_size: int = 128,
    weights: str = "none",
    head: HeadConfig = HeadConfig(),
    freeze_at: int | None = None,
    backbone: str = DEFAULT_BACKBONE,
    precision: str = FLOAT32,
) -> keras.Model:
    """A classifier for num_classes on a pretrained (or random) backbone.

    Args:
        weights: "imagenet", "none" (random init: no transfer) or a weights file path.
        freeze_at: backbone layers frozen from the input side; None = all of them.
        precision: the dtype policy of the backbone's and the head's hidden layers (`tlcore.devices.PRECISIONS`).
            Each layer gets its own policy, never the process-global one: several jobs train in one process.
            The preprocessing and the output layer stay float32, so the probabilities and the loss are float32.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2. Received: num_classes={num_classes}")
    if head.output == "sigmoid" and num_classes != 2:
        raise ValueError(f"A sigmoid output needs exactly 2 classes. Received: num_classes={num_classes}")
    spec = get_backbone(backbone)
    base = load_backbone(spec, image_size, weights)

    inputs = keras.Input(shape=(image_size, image_size, IMAGE_CHANNELS), name=INPUT_LAYER)
    x = preprocess_layer(spec)(inputs)
    policy = keras.DTypePolicy(precision)  # mixed: float32 variables, float16/bfloat16 arithmetic
    for layer in base.layers[1:]:
        # Fresh copies applied one by one: a flat graph with one node per
        # layer, not a nested model (which breaks gradient models across it).
        copy = layer.__class__.from_config({**layer.get_config(), "dtype": policy})
        x = copy(x)
        copy.set_weights(layer.get_weights())
    # The head's layers come from the same description the TensorFlow-free layer table reads.
    for layer in head_layers(head, num_classes):
        # The output in float32: softmax and the loss need its range and precision (Keras' mixed precision guide).
        x = _keras_head_layer(layer, FLOAT32 if layer.name == OUTPUT_LAYER else policy)(x)
    model = keras.Model(inputs, x, name=model_name(spec.name))
    set_freeze_point(model, spec.num_layers if freeze_at is None else freeze_at, spec)
    return model


def _keras_head_layer(layer: HeadLayer, dtype: str | keras.DTypePolicy) -> keras.layers.Layer:
    if layer.type == "Dense":
        return keras.layers.Dense(layer.units, activation=layer.activation, name=layer.name, dtype=dtype)
    if layer.type == "Dropout":
        return keras.layers.Dropout(layer.rate, name=layer.name, dtype=dtype)
    return getattr(keras.layers, layer.type)(name=layer.name, dtype=dtype)  # the pooling: Flatten or a global one


def _backbone_start(model: keras.Model) -> int:
    names = [layer.name for layer in model.layers]
    if PREPROCESS_LAYER not in names:
        raise ValueError(f"Model {model.name!r} was not built by tlcore (no '{PREPROCESS_LAYER}' layer).")
    return names.index(PREPROCESS_LAYER) + 1


def backbone_layers(model: keras.Model, spec: BackboneSpec | None = None) -> list[keras.layers.Layer]:
    """The layers a freeze point counts over, input side first."""
    spec = spec or get_backbone(DEFAULT_BACKBONE)
    start = _backbone_start(model)
    return model.layers[start : start + spec.num_layers]


def set_freeze_point(model: keras.Model, freeze_at: int, spec: BackboneSpec | None = None) -> None:
    """Freeze the first freeze_at backbone layers; everything after them trains.

    Keras only honours a change of `trainable` at the next compile: callers
    compile again before training (tlcore.tf.training does).
    """
    spec = spec or get_backbone(DEFAULT_BACKBONE)
    if not 0 <= freeze_at <= spec.num_layers:
        raise ValueError(f"freeze_at must be between 0 and {spec.num_layers}. Received: freeze_at={freeze_at}")
    for i, layer in enumerate(backbone_layers(model, spec)):
        layer.trainable = i >= freeze_at
    start = _backbone_start(model) + spec.num_layers
    for layer in model.layers[start:]:
        layer.trainable = True


def freeze_point_of(model: keras.Model, spec: BackboneSpec | None = None) -> int:
    """How many backbone layers are frozen, counted from the input side."""
    layers = backbone_layers(model, spec)
    return next((i for i, layer in enumerate(layers) if layer.trainable), len(layers))


def param_counts(model: keras.Model) -> tuple[int, int]:
    """(trainable, frozen) parameter counts, as Keras counts them."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return trainable, frozen


def layers_with_weights(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers that hold weights, input side first: the backbone's convolutions and the head's Dense layers."""
    return [layer for layer in model.layers if layer.weights]


def weights_norm(arrays: Sequence[np.ndarray]) -> float:
    """A layer's ||W||: the Euclidean norm of all its arrays together (kernel and bias), summed in float64."""
    return math.sqrt(sum(float(np.sum(np.square(np.asarray(a, dtype=np.float64)))) for a in arrays))


def layer_weight_norms(model: keras.Model) -> dict[str, float]:
    """||W|| of every layer with weights, by layer name, input side first."""
    return {layer.name: weights_norm(layer.get_weights()) for layer in layers_with_weights(model)}


def layer_table(model: keras.Model, spec: BackboneSpec | None = None) -> pd.DataFrame:
    """One row per layer: name, type, output shape, params, trainable, block, part.

    `freeze_index` is a backbone layer's position (1-based) in the count that
    a freeze point uses: layer i is frozen when freeze_at >= i.
    """
    spec = spec or get_backbone(DEFAULT_BACKBONE)
    start = _backbone_start(model)
    rows = []
    for position, layer in enumerate(model.layers):
        in_backbone = start <= position < start + spec.num_layers
        if position < start:
            part, block = ("input", "input")
        elif in_backbone:
            part, block = ("backbone", spec.layer_blocks[position - start])
        else:
            part, block = ("head", "head")
        shape = tuple(layer.output.shape[1:]) if hasattr(layer, "output") else ()
        rows.append(
            {
                "freeze_index": position - start + 1 if in_backbone else None,
                "name": layer.name,
                "type": type(layer).__name__,
                "output_shape": "x".join(str(d) for d in shape),
                "params": int(layer.count_params()) if layer.built else 0,
                "trainable": bool(layer.trainable) and part != "input",
                "block": block,
                "part": part,
            }
        )
    table = pd.DataFrame(rows)
    table["freeze_index"] = table["freeze_index"].astype("Int64")
    return table


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a `.keras` model file that may come from anyone.

    `check_model_file` refuses it first if it could run code, then Keras loads
    it in safe mode (our own custom layers are registered).

    Raises:
        ModelLoadError: refused, or Keras cannot load it; the message says why.
    """
    check_model_file(path)
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises many types for a file it cannot rebuild
        text = " ".join(str(err).split()) or type(err).__name__
        raise ModelLoadError(f"Keras cannot load this model: {text[:300]}") from err


def load_run_model(run_dir: str | os.PathLike) -> keras.Model:
    """The run's model.keras, loaded in Keras safe mode."""
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Run {Path(run_dir).name} has no saved model ({path} is missing)")
    return load_model(str(path))


def model_to_bytes(model: keras.Model, class_names: list[str]) -> bytes:
    """A model as the bytes of a .keras file with its class names, built in memory (when the disk cannot take it)."""
    # keras.saving.save_model accepts only paths; saving_lib writes the same
    # zip archive to any file object.
    buffer = io.BytesIO()
    saving_lib.save_model(model, buffer)
    add_labels(buffer, class_names, int(model.input_shape[1]))
    return buffer.getvalue()
