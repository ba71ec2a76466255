"""Checking a `.keras` file that may come from anyone, before Keras deserializes anything (no TensorFlow).

`tlcore.tf.model.load_model` runs this check first; the Inference page shows its refusals.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from tlcore.jsontypes import JSONValue

MAX_MODEL_BYTES = 4 << 30  # uncompressed, all entries: VGG16 with a large Flatten head is well below
# The lab's own entry beside Keras' (which Keras ignores when loading): what the model's outputs mean, so a
# downloaded model predicts named classes wherever it is opened.
LABELS_ENTRY = "tllab.json"
_KERAS_ENTRIES = {"metadata.json", "config.json", "model.weights.h5"}  # what `model.save("x.keras")` writes
_MODEL_ENTRIES = _KERAS_ENTRIES | {LABELS_ENTRY}
MAX_LABELS_BYTES = 1 << 20
_NAMED = 3  # entries a refusal names before it says how many more
# Classes whose deserialization runs Python code or loads other files; none is in a model this app builds.
_UNSAFE_CLASSES = {  # class_name -> (what it is, why it is refused)
    "Lambda": ("a Lambda layer", "arbitrary Python code"),
    "__lambda__": ("Python bytecode", "arbitrary Python code"),
    "function": ("the Python function", "code outside Keras' layers"),
    "TFSMLayer": ("a TFSMLayer", "it loads a TensorFlow SavedModel from another path"),
}
# Models saved before the TensorFlow side had its own package name tlcore.layers.
_TRUSTED_MODULES = ("keras", "tlcore.tf.layers", "tlcore.layers")


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
        raise ModelLoadError(
            "This is a legacy HDF5 (.h5) model; only .keras files are loaded."
            if legacy
            else "This is not a .keras model file (a .keras file is a zip archive; this one is not, "
            "or it is truncated)."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            unexpected = sorted({i.filename for i in infos} - _MODEL_ENTRIES)
            if "config.json" not in archive.namelist():
                raise ModelLoadError(
                    f"This is not a Keras model: a zip archive of {len(infos)} file(s)"
                    f"{_named(unexpected)} with no config.json (a model saved by Keras holds "
                    f"{', '.join(sorted(_KERAS_ENTRIES))})."
                )
            if unexpected:
                raise ModelLoadError(
                    f"This .keras file holds {_named(unexpected)[2:]}; "
                    f"a model saved by Keras holds only {', '.join(sorted(_KERAS_ENTRIES))}."
                )
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


def _named(entries: list[str]) -> str:
    """ ", e.g. 'a', 'b', 'c' and 7 more": a few names of a long list, never all of them."""
    if not entries:
        return ""
    more = f" and {len(entries) - _NAMED} more" if len(entries) > _NAMED else ""
    return ", " + ", ".join(map(repr, entries[:_NAMED])) + more


def add_labels(path: str | os.PathLike | BinaryIO, class_names: list[str], image_size: int) -> None:
    """Write what the model's outputs mean into its .keras file (`LABELS_ENTRY`), replacing none."""
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(LABELS_ENTRY, json.dumps({"class_names": list(class_names), "image_size": image_size}))


def model_labels(path: str | os.PathLike) -> list[str] | None:
    """The class names a .keras file of this lab carries (None for another model, or one saved before)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(LABELS_ENTRY)
            if info.file_size > MAX_LABELS_BYTES:
                return None
            names = json.loads(archive.read(info)).get("class_names")
    except (KeyError, OSError, ValueError, zipfile.BadZipFile, AttributeError):
        return None
    return [str(n) for n in names] if isinstance(names, list) and names else None


def _check_config(config: JSONValue) -> None:
    """Walk the whole config (layers, nested models, compile config) for classes that are not safe."""
    pending: list[JSONValue] = [config]  # a loop, not recursion: a crafted config may nest deeper than Python's stack
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            _check_node(node)
            pending.extend(node.values())


def _check_node(node: Mapping[str, JSONValue]) -> None:
    class_name, module = node.get("class_name"), node.get("module")
    inner = node.get("config")
    layer = f" {inner['name']!r}" if isinstance(inner, dict) and isinstance(inner.get("name"), str) else ""
    if isinstance(class_name, str) and class_name in _UNSAFE_CLASSES:
        what, why = _UNSAFE_CLASSES[class_name]
        which = f" {module}.{inner}" if class_name == "function" else layer
        raise ModelLoadError(
            f"The model contains {what}{which} ({why}); refused for safety, nothing in it was run. "
            "Models built by this app have no such layers."
        )
    if module is not None and not (
        isinstance(module, str) and any(module == m or module.startswith(m + ".") for m in _TRUSTED_MODULES)
    ):
        raise ModelLoadError(
            f"The model names {class_name!r} from Python module {module!r}, which is neither Keras "
            "nor this app; refused for safety, nothing in it was run."
        )
