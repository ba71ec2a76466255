"""Build backbone + head as one flat chain of layers; freeze points; the layer table.

The model takes raw RGB pixels 0..255. Its layers are, in order: the input,
the backbone's preprocessing layer, the backbone's layers (VGG16: 18), then
the head. Because it is a flat chain (no nested backbone model), it can be
cut at any freeze point into a frozen prefix and a trainable suffix that share
layer objects, and Grad-CAM can reach the last conv layer of a model fresh
from training or reloaded from `.keras`.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd

from tlcore.backbones import BackboneSpec, get_backbone, load_backbone
from tlcore.config import HeadConfig

PREPROCESS_LAYER = "preprocess"
OUTPUT_LAYER = "predictions"


def build_model(
    num_classes: int,
    image_size: int = 128,
    weights: str = "none",
    head: HeadConfig = HeadConfig(),
    freeze_at: int | None = None,
    backbone: str = "vgg16",
) -> keras.Model:
    """A classifier for num_classes on a pretrained (or random) backbone.

    Args:
        weights: "imagenet", "none" (random init: no transfer) or a weights file path.
        freeze_at: backbone layers frozen from the input side; None = all of them.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2. Received: num_classes={num_classes}")
    if head.output == "sigmoid" and num_classes != 2:
        raise ValueError(f"A sigmoid output needs exactly 2 classes. Received: num_classes={num_classes}")
    spec = get_backbone(backbone)
    base = load_backbone(spec, image_size, weights)

    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = spec.preprocess_layer()(inputs)
    for layer in base.layers[1:]:
        # Fresh copies applied one by one: a flat graph with one node per
        # layer, not a nested model (which breaks gradient models across it).
        copy = layer.__class__.from_config(layer.get_config())
        x = copy(x)
        copy.set_weights(layer.get_weights())
    pooling = {
        "flatten": keras.layers.Flatten(name="head_flatten"),
        "avg": keras.layers.GlobalAveragePooling2D(name="head_avg_pool"),
        "max": keras.layers.GlobalMaxPooling2D(name="head_max_pool"),
    }[head.pooling]
    x = pooling(x)
    for i, units in enumerate(head.dense, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")(x)
        if head.dropout > 0:
            x = keras.layers.Dropout(head.dropout, name=f"head_dropout_{i}")(x)
    if head.dropout > 0 and not head.dense:
        x = keras.layers.Dropout(head.dropout, name="head_dropout")(x)
    if head.output == "sigmoid":
        outputs = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(x)
    else:
        outputs = keras.layers.Dense(num_classes, activation="softmax", name=OUTPUT_LAYER)(x)
    model = keras.Model(inputs, outputs, name=f"{spec.name}_transfer")
    set_freeze_point(model, spec.num_layers if freeze_at is None else freeze_at, spec)
    return model


def _backbone_start(model: keras.Model) -> int:
    names = [layer.name for layer in model.layers]
    if PREPROCESS_LAYER not in names:
        raise ValueError(f"Model {model.name!r} was not built by tlcore (no '{PREPROCESS_LAYER}' layer).")
    return names.index(PREPROCESS_LAYER) + 1


def backbone_layers(model: keras.Model, spec: BackboneSpec | None = None) -> list[keras.layers.Layer]:
    """The layers a freeze point counts over, input side first."""
    spec = spec or get_backbone("vgg16")
    start = _backbone_start(model)
    return model.layers[start : start + spec.num_layers]


def set_freeze_point(model: keras.Model, freeze_at: int, spec: BackboneSpec | None = None) -> None:
    """Freeze the first freeze_at backbone layers; everything after them trains.

    Keras only honours a change of `trainable` at the next compile: callers
    compile again before training (tlcore.training does).
    """
    spec = spec or get_backbone("vgg16")
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


def layer_table(model: keras.Model, spec: BackboneSpec | None = None) -> pd.DataFrame:
    """One row per layer: name, type, output shape, params, trainable, block, part.

    `freeze_index` is a backbone layer's position (1-based) in the count that
    a freeze point uses: layer i is frozen when freeze_at >= i.
    """
    spec = spec or get_backbone("vgg16")
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


def counts_at(table: pd.DataFrame, freeze_at: int) -> tuple[int, int]:
    """(trainable, frozen) params if the first freeze_at backbone layers were frozen.

    Computed from the layer table alone: moving a freeze slider builds nothing.
    """
    frozen_mask = table["freeze_index"].notna() & (table["freeze_index"].fillna(0) <= freeze_at)
    frozen = int(table.loc[frozen_mask, "params"].sum())
    return int(table["params"].sum()) - frozen, frozen


def with_freeze_point(table: pd.DataFrame, freeze_at: int) -> pd.DataFrame:
    """The layer table with `trainable` as it would be at freeze_at."""
    out = table.copy()
    in_backbone = out["freeze_index"].notna()
    out.loc[in_backbone, "trainable"] = out.loc[in_backbone, "freeze_index"].astype(int) > freeze_at
    return out


def load_model(path: str) -> keras.Model:
    """Load a `.keras` model in Keras safe mode (our own custom layers are registered)."""
    import tlcore.layers  # noqa: F401  (registers CaffePreprocess for deserialization)

    return keras.models.load_model(path, safe_mode=True, compile=False)
