"""Build backbone + head as one flat chain of layers; freeze points; the layer table.

The model takes raw RGB pixels 0..255. Its layers are, in order: the input,
the backbone's preprocessing layer, the backbone's layers (its spec's
num_layers), then the head. Because it is a flat chain (no nested backbone
model), it can be cut at any freeze point into a frozen prefix and a trainable suffix that share
layer objects, and Grad-CAM can reach the last conv layer of a model fresh
from training or reloaded from `.keras`.

Importing this module does not import TensorFlow (building or loading a
model does); the layer table of a model not built yet is
`tlcore.architecture.layer_table`.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

# counts_at and with_freeze_point live in the TensorFlow-free tlcore.architecture; importable from here as before.
from tlcore.architecture import (INPUT_LAYER, OUTPUT_LAYER, PREPROCESS_LAYER, HeadLayer, counts_at,  # noqa: F401
                                 head_layers, with_freeze_point)
from tlcore.backbone_facts import DEFAULT_BACKBONE, IMAGE_CHANNELS
from tlcore.backbones import BackboneSpec, get_backbone, load_backbone
from tlcore.config import HeadConfig

if TYPE_CHECKING:
    import keras  # imported where a model is built or loaded: importing this module stays TensorFlow-free


def build_model(
    num_classes: int,
    image_size: int = 128,
    weights: str = "none",
    head: HeadConfig = HeadConfig(),
    freeze_at: int | None = None,
    backbone: str = DEFAULT_BACKBONE,
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
    import keras

    spec = get_backbone(backbone)
    base = load_backbone(spec, image_size, weights)

    inputs = keras.Input(shape=(image_size, image_size, IMAGE_CHANNELS), name=INPUT_LAYER)
    x = spec.preprocess_layer()(inputs)
    for layer in base.layers[1:]:
        # Fresh copies applied one by one: a flat graph with one node per
        # layer, not a nested model (which breaks gradient models across it).
        copy = layer.__class__.from_config(layer.get_config())
        x = copy(x)
        copy.set_weights(layer.get_weights())
    # The head's layers come from the same description the TensorFlow-free layer table reads.
    for layer in head_layers(head, num_classes):
        x = _keras_head_layer(layer)(x)
    model = keras.Model(inputs, x, name=f"{spec.name}_transfer")
    set_freeze_point(model, spec.num_layers if freeze_at is None else freeze_at, spec)
    return model


def _keras_head_layer(layer: HeadLayer) -> keras.layers.Layer:
    import keras

    if layer.type == "Dense":
        return keras.layers.Dense(layer.units, activation=layer.activation, name=layer.name)
    if layer.type == "Dropout":
        return keras.layers.Dropout(layer.rate, name=layer.name)
    return getattr(keras.layers, layer.type)(name=layer.name)  # the pooling: Flatten or a global pooling


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
    compile again before training (tlcore.training does).
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


# --- loading untrusted model files -------------------------------------------------

MAX_MODEL_BYTES = 4 << 30  # uncompressed, all entries: VGG16 with a large Flatten head is well below
_MODEL_ENTRIES = {"metadata.json", "config.json", "model.weights.h5"}  # what `model.save("x.keras")` writes
# Classes whose deserialization runs Python code or loads other files; none is in a model this app builds.
_UNSAFE_CLASSES = {  # class_name -> (what it is, why it is refused)
    "Lambda": ("a Lambda layer", "arbitrary Python code"),
    "__lambda__": ("Python bytecode", "arbitrary Python code"),
    "function": ("the Python function", "code outside Keras' layers"),
    "TFSMLayer": ("a TFSMLayer", "it loads a TensorFlow SavedModel from another path"),
}
_TRUSTED_MODULES = ("keras", "tlcore.layers")


class ModelLoadError(ValueError):
    """A model file that is refused or cannot be loaded; the message says why."""


def check_model_file(path: str | os.PathLike) -> None:
    """Refuse a file before Keras deserializes anything from it.

    Accepts only a local `.keras` zip with the entries Keras writes, whose
    config names Keras' own classes (or ours) and nothing that runs code.

    Raises:
        ModelLoadError: with the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"No model file at {path}.")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            legacy = handle.read(8) == b"\x89HDF\r\n\x1a\n"
        raise ModelLoadError("This is a legacy HDF5 (.h5) model; only .keras files are loaded." if legacy else
                             "This is not a .keras model file (a .keras file is a zip archive; this one is not, "
                             "or it is truncated).")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            unexpected = sorted({i.filename for i in infos} - _MODEL_ENTRIES)
            if unexpected or "config.json" not in archive.namelist():
                raise ModelLoadError(f"This .keras file holds {', '.join(map(repr, unexpected)) or 'no config.json'}; "
                                     f"a model saved by Keras holds only {', '.join(sorted(_MODEL_ENTRIES))}.")
            # Declared sizes bound what zipfile yields (it stops there and checks the CRC).
            if sum(i.file_size for i in infos) > MAX_MODEL_BYTES:
                raise ModelLoadError(f"This .keras file expands to more than {MAX_MODEL_BYTES >> 30} GiB.")
            config = json.loads(archive.read("config.json"))
    except RecursionError:  # before RuntimeError, its base class
        raise ModelLoadError("This .keras file's config.json is nested too deeply to be a model.") from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, RuntimeError, NotImplementedError) as err:
        raise ModelLoadError(f"This .keras file is corrupt or truncated ({err}).") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"This .keras file's config.json is not valid JSON ({err}).") from None
    _check_config(config)


def _check_config(config: Any) -> None:
    """Walk the whole config (layers, nested models, compile config) for classes that are not safe."""
    pending = [config]  # a loop, not recursion: a crafted config may nest deeper than Python's stack
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            _check_node(node)
            pending.extend(node.values())


def _check_node(node: dict[str, Any]) -> None:
    class_name, module = node.get("class_name"), node.get("module")
    inner = node.get("config")
    layer = f" {inner['name']!r}" if isinstance(inner, dict) and isinstance(inner.get("name"), str) else ""
    if isinstance(class_name, str) and class_name in _UNSAFE_CLASSES:
        what, why = _UNSAFE_CLASSES[class_name]
        which = f" {module}.{inner}" if class_name == "function" else layer
        raise ModelLoadError(f"The model contains {what}{which} ({why}); refused for safety, nothing in it was run. "
                             "Models built by this app have no such layers.")
    if module is not None and not (isinstance(module, str) and
                                   any(module == m or module.startswith(m + ".") for m in _TRUSTED_MODULES)):
        raise ModelLoadError(f"The model names {class_name!r} from Python module {module!r}, which is neither Keras "
                             "nor this app; refused for safety, nothing in it was run.")


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a `.keras` model file that may come from anyone.

    `check_model_file` refuses it first if it could run code, then Keras loads
    it in safe mode (our own custom layers are registered).

    Raises:
        ModelLoadError: refused, or Keras cannot load it; the message says why.
    """
    import tlcore.layers  # noqa: F401  (registers CaffePreprocess for deserialization)

    import keras

    check_model_file(path)
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as err:  # Keras raises many types for a file it cannot rebuild
        text = " ".join(str(err).split()) or type(err).__name__
        raise ModelLoadError(f"Keras cannot load this model: {text[:300]}") from err
