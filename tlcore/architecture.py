"""VGG16 and the head as arithmetic: layer names, types, output shapes, parameters and FLOPs.

Everything a page shows about the model before training (the layer table,
trainable/frozen counts at any freeze point, the FLOPs behind the time
estimate) follows from a handful of facts about VGG16 (`tlcore.backbone_facts`),
so it is computed here without importing TensorFlow (seconds saved on every
first screen). `tlcore.tf.model` builds the Keras model from the same facts, and
the tests check this module against a built model.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tlcore.backbone_facts import IMAGE_CHANNELS, VGG16_CHAIN, VGG16_CHANNELS
from tlcore.config import HeadConfig

# Layer names the model builder gives the layers around the backbone.
INPUT_LAYER = "image"
PREPROCESS_LAYER = "preprocess"
OUTPUT_LAYER = "predictions"
HEAD_NORM_LAYER = "head_norm"  # LayerNormalization of the pooled features (HeadConfig.normalize)
PREPROCESS_TYPE = "CaffePreprocess"  # tlcore.tf.layers.CaffePreprocess
# The package a script written by `tlcore code` registers its own copy of that layer under; the lab reads
# the name as its own layer (the same arithmetic), so a model such a script saved opens in the lab too.
SCRIPT_PACKAGE = "train_py"
SCRIPT_PREPROCESS = f"{SCRIPT_PACKAGE}>{PREPROCESS_TYPE}"
# pooling option -> (layer name, Keras class name)
HEAD_POOLING = {
    "flatten": ("head_flatten", "Flatten"),
    "avg": ("head_avg_pool", "GlobalAveragePooling2D"),
    "max": ("head_max_pool", "GlobalMaxPooling2D"),
}
TABLE_COLUMNS = ["freeze_index", "name", "type", "output_shape", "params", "trainable", "block", "part"]


def model_name(backbone: str) -> str:
    """The name of the model built on a backbone ("vgg16_transfer")."""
    return f"{backbone}_transfer"


def input_sides(image_size: int) -> list[int]:
    """Side of the map entering each of VGG16's layers."""
    sides, side = [], image_size
    for layer in VGG16_CHAIN:
        sides.append(side)
        side = layer.output_side(side)
    return sides


def boundary_floats(image_size: int, freeze_at: int) -> int:
    """Floats per image that VGG16's first `freeze_at` layers put out (0 at freeze point 0): cached features."""
    if freeze_at == 0:
        return 0
    layer = VGG16_CHAIN[freeze_at - 1]
    side = layer.output_side(input_sides(image_size)[freeze_at - 1])
    return side * side * layer.out_channels


def feature_side(image_size: int) -> int:
    """Side of VGG16's last feature map (block5_pool), e.g. 4 at 128 px."""
    return VGG16_CHAIN[-1].output_side(input_sides(image_size)[-1])


def layer_flops(image_size: int) -> list[float]:
    """Forward FLOPs per image of each layer of VGG16's chain."""
    return [layer.flops(side) for layer, side in zip(VGG16_CHAIN, input_sides(image_size))]


@dataclass(frozen=True)
class HeadLayer:
    """One layer of the head: what tlcore.tf.model builds and what the table lists."""

    name: str
    type: str  # Keras class name
    units: int = 0  # Dense only
    rate: float = 0.0  # Dropout only
    activation: str | None = None  # Dense only


def head_layers(head: HeadConfig, num_classes: int) -> list[HeadLayer]:
    """The head's layers in order: pooling, normalisation, (dense [+ dropout]) per size, dropout without dense,
    output."""
    name, kind = HEAD_POOLING[head.pooling]
    layers = [HeadLayer(name, kind)]
    if head.normalize:
        layers.append(HeadLayer(HEAD_NORM_LAYER, "LayerNormalization"))
    for i, units in enumerate(head.dense, start=1):
        layers.append(HeadLayer(f"head_dense_{i}", "Dense", units=units, activation="relu"))
        if head.dropout > 0:
            layers.append(HeadLayer(f"head_dropout_{i}", "Dropout", rate=head.dropout))
    if head.dropout > 0 and not head.dense:
        layers.append(HeadLayer("head_dropout", "Dropout", rate=head.dropout))
    if head.output == "sigmoid":
        layers.append(HeadLayer(OUTPUT_LAYER, "Dense", units=1, activation="sigmoid"))
    else:
        layers.append(HeadLayer(OUTPUT_LAYER, "Dense", units=num_classes, activation="softmax"))
    return layers


def layer_table(
    num_classes: int, image_size: int, head: HeadConfig | None = None, freeze_at: int = len(VGG16_CHAIN)
) -> pd.DataFrame:
    """The table `tlcore.tf.model.layer_table` gives for `build_model(...)`, computed without building anything.

    One row per layer: freeze_index (a backbone layer's 1-based position in
    the freeze count), name, type, output_shape ('32x32x64'), params,
    trainable (at freeze_at), block, part (input / backbone / head).
    """
    head = head or HeadConfig()
    if not 0 <= freeze_at <= len(VGG16_CHAIN):
        raise ValueError(f"freeze_at must be between 0 and {len(VGG16_CHAIN)}. Received: freeze_at={freeze_at}")
    image_shape = f"{image_size}x{image_size}x{IMAGE_CHANNELS}"
    rows = [
        _row(None, INPUT_LAYER, "InputLayer", image_shape, 0, False, "input", "input"),
        _row(None, PREPROCESS_LAYER, PREPROCESS_TYPE, image_shape, 0, False, "input", "input"),
    ]
    for index, (layer, side) in enumerate(zip(VGG16_CHAIN, input_sides(image_size)), start=1):
        out = layer.output_side(side)
        rows.append(
            _row(
                index,
                layer.name,
                layer.type,
                f"{out}x{out}x{layer.out_channels}",
                layer.params,
                index > freeze_at,
                layer.block,
                "backbone",
            )
        )
    side = feature_side(image_size)
    width = side * side * VGG16_CHANNELS if head.pooling == "flatten" else VGG16_CHANNELS
    for head_layer in head_layers(head, num_classes):
        params = 0
        if head_layer.type == "Dense":
            params, width = width * head_layer.units + head_layer.units, head_layer.units
        elif head_layer.type == "LayerNormalization":
            params = 2 * width  # a scale and an offset per feature
        rows.append(_row(None, head_layer.name, head_layer.type, str(width), params, True, "head", "head"))
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["freeze_index"] = table["freeze_index"].astype("Int64")
    return table


def _row(
    index: int | None, name: str, kind: str, shape: str, params: int, trainable: bool, block: str, part: str
) -> dict:
    return dict(zip(TABLE_COLUMNS, (index, name, kind, shape, params, trainable, block, part)))


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
