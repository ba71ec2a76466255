"""Backbone registry (BACKBONES: name -> spec) and weights policy (ImageNet, a local file, or none).

Building a backbone and loading its weights is `tlcore.tf.backbones`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from tlcore import environment
from tlcore.backbone_facts import (
    DEFAULT_BACKBONE,
    VGG16,
    VGG16_CONVS,
    VGG16_DEFAULT_IMAGE_SIZE,
    VGG16_LAST_CONV,
    VGG16_LAYER_BLOCKS,
    VGG16_MIN_IMAGE_SIZE,
    block_boundaries,
)
from tlcore.environment import WEIGHTS_ENV

if TYPE_CHECKING:
    import h5py

NO_WEIGHTS = "none"
IMAGENET = "imagenet"
_NO_WEIGHTS_ALIASES = {"none", "scratch", "random", ""}
REACHABILITY_TIMEOUT_S = 3.0


class WeightsError(Exception):
    """Weights that cannot be used; the message says why and what to do instead."""


@dataclass(frozen=True)
class BackboneSpec:
    """What the app needs to know about a backbone."""

    name: str
    default_image_size: int
    min_image_size: int
    layer_blocks: tuple[str, ...]  # block of each layer a freeze point counts over
    last_conv_layer: str
    # (name, array shapes) of each layer with weights, input side first: what a weights file must hold
    weight_layers: tuple[tuple[str, tuple[tuple[int, ...], ...]], ...]
    imagenet_file: str
    imagenet_url: str
    imagenet_md5: str

    @property
    def num_layers(self) -> int:
        return len(self.layer_blocks)

    @property
    def block_boundaries(self) -> tuple[int, ...]:
        """Freeze points that fall between blocks, 0 and num_layers included."""
        return block_boundaries(self.layer_blocks)


BACKBONES: dict[str, BackboneSpec] = {
    VGG16: BackboneSpec(
        name=VGG16,
        default_image_size=VGG16_DEFAULT_IMAGE_SIZE,
        min_image_size=VGG16_MIN_IMAGE_SIZE,
        layer_blocks=VGG16_LAYER_BLOCKS,
        last_conv_layer=VGG16_LAST_CONV,
        weight_layers=tuple((layer.name, layer.weight_shapes) for layer in VGG16_CONVS),
        imagenet_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        imagenet_url=(
            "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
        ),
        imagenet_md5="6d6bbae143d832006294945121d1f1fc",
    )
}


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name.lower()]
    except KeyError:
        raise ValueError(
            f"Unknown backbone. Expected one of {sorted(BACKBONES)}. Received: backbone={name!r}"
        ) from None


# --- weights -----------------------------------------------------------------


def default_weights() -> str:
    """TLLAB_WEIGHTS when set (a file for offline machines), else ImageNet."""
    return environment.text(WEIGHTS_ENV) or IMAGENET


def normalize_weights(choice: str | None) -> str:
    """'imagenet', 'none' or an absolute file path; None means the default."""
    if choice is None:
        choice = default_weights()
    if choice.strip().lower() in _NO_WEIGHTS_ALIASES:
        return NO_WEIGHTS
    if choice.strip().lower() == IMAGENET:
        return IMAGENET
    return str(Path(choice).expanduser().resolve())


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "models"


def imagenet_cached_path(spec: BackboneSpec) -> Path | None:
    """The downloaded ImageNet weights in the Keras cache, if present."""
    path = keras_cache_dir() / spec.imagenet_file
    return path if path.is_file() and path.stat().st_size > 0 else None


def weights_file(weights: str, spec: BackboneSpec | None = None) -> Path | None:
    """The file the weights are read from: None for random weights, the Keras cache's file for ImageNet
    (None while it is not downloaded), else the file's absolute path (which may not exist)."""
    weights = normalize_weights(weights)
    if weights == NO_WEIGHTS:
        return None
    if weights == IMAGENET:
        return imagenet_cached_path(spec or get_backbone(DEFAULT_BACKBONE))
    return Path(weights)


def weights_identity(weights: str, spec: BackboneSpec | None = None) -> str:
    """What the weights are, by content: NO_WEIGHTS for random weights, else "sha256:<hex>" of their file.

    Two runs (or two feature extractions) with the same identity started from
    the same numbers, whatever the file is called. A file is hashed once per
    (path, size, modification time): asking again costs nothing, and an edited
    file is read again.

    Raises:
        WeightsError: the file is missing (for ImageNet: not downloaded).
    """
    weights = normalize_weights(weights)
    if weights == NO_WEIGHTS:
        return NO_WEIGHTS
    path = weights_file(weights, spec)
    if path is None:
        raise WeightsError("ImageNet weights are not downloaded: there is no file to identify.")
    if not path.is_file():
        raise WeightsError(f"Weights file not found: {path}")
    stat = path.stat()
    return f"sha256:{_file_sha256(str(path), stat.st_size, stat.st_mtime_ns)}"


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """The file's SHA-256 in hex; size and mtime_ns are only the cache key."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def weights_status(choice: str, spec: BackboneSpec | None = None) -> tuple[bool, str]:
    """Whether the chosen weights can be used now without the network, in plain words."""
    spec = spec or get_backbone(DEFAULT_BACKBONE)
    weights = normalize_weights(choice)
    if weights == NO_WEIGHTS:
        return True, "Random initialisation: no transfer (random weights)."
    if weights == IMAGENET:
        cached = imagenet_cached_path(spec)
        if cached:
            return True, f"ImageNet weights are in the Keras cache ({cached})."
        return False, (
            "ImageNet weights are not downloaded yet. Download them (about 58 MB), "
            "or choose a weights file, or random weights (no transfer)."
        )
    path = Path(weights)
    try:
        layout = check_weights_file(path, spec)
    except WeightsError as err:
        return False, str(err)
    return True, (
        f"Weights file {path.name} ({path.stat().st_size / 1e6:.0f} MB): "
        f"{spec.name}'s {len(spec.weight_layers)} conv layers, {layout} layout."
    )


def can_reach(url: str, timeout: float = REACHABILITY_TIMEOUT_S) -> bool:
    """True when a TCP connection to the URL's host opens within timeout seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- checking a weights file (h5py, no TensorFlow) ---------------------------------------

KERAS3_LAYOUT = "Keras 3 (.weights.h5)"
LEGACY_LAYOUT = "legacy Keras (.h5)"


def check_weights_file(path: Path, spec: BackboneSpec) -> str:
    """Whether a file holds `spec`'s weights, read with h5py (no TensorFlow); its layout when it does.

    Accepts both layouts Keras loads: the legacy one of the published
    `..._notop.h5` files (layers in order, named by the root's `layer_names`)
    and Keras 3's `.weights.h5` (`layers/<path>/vars/<i>`). The verdict is
    cached per (path, size, modification time): re-checking while a user types
    costs nothing, and an edited file is read again.

    Raises:
        WeightsError: naming the file and what is wrong (missing, not HDF5, which layer or shape does not fit).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Weights file not found: {path}")
    stat = path.stat()
    layout, problem = _weights_file_verdict(str(path), stat.st_size, stat.st_mtime_ns, spec.name)
    if problem:
        raise WeightsError(problem)
    return layout


def check_weights_to_load(path: Path, spec: BackboneSpec) -> str:
    """`check_weights_file` with the ways out in its message: what loading a weights file checks first.

    The command line calls it before TensorFlow loads, so a wrong file is refused at once.

    Raises:
        WeightsError: what is wrong with the file, then which files fit.
    """
    try:
        return check_weights_file(path, spec)
    except WeightsError as err:
        raise WeightsError(
            f"{err} Use {spec.imagenet_file} or a .weights.h5 saved from {spec.name}(include_top=False)."
        ) from None


@functools.lru_cache(maxsize=64)
def _weights_file_verdict(path: str, size: int, mtime_ns: int, backbone: str) -> tuple[str, str | None]:
    """(layout, None) for a fitting file, ("", why not) otherwise; size and mtime_ns are only the cache key."""
    import h5py

    spec, name = get_backbone(backbone), Path(path).name
    if size == 0:
        return "", f"Weights file {name} is empty (0 bytes), not a readable HDF5 weights file."
    if not h5py.is_hdf5(path):
        return "", f"Weights file {name} is not a readable HDF5 weights file (Keras weights files are HDF5)."
    try:
        with h5py.File(path, "r") as f:
            if "layer_names" in f.attrs:
                layout, found = LEGACY_LAYOUT, _legacy_layers(f)
            elif isinstance(f.get("layers"), h5py.Group):
                layout, found = KERAS3_LAYOUT, _keras3_layers(f)
            else:
                return "", (
                    f"Weights file {name} is HDF5 but not a Keras weights file: it has neither the Keras 3 "
                    "'layers' group nor the legacy 'layer_names'."
                )
    except (OSError, KeyError, ValueError, TypeError) as err:
        return "", f"Weights file {name} is not a readable HDF5 weights file ({err})."
    problem = _layers_problem(found, spec)
    return (
        (layout, None)
        if problem is None
        else ("", f"Weights file {name} does not fit {spec.name} (no top): {problem}.")
    )


def _legacy_layers(f: h5py.File) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(name, array shapes) of each layer with weights, in the order Keras' legacy loader assigns them."""
    found = []
    for layer in f.attrs["layer_names"]:
        layer = layer.decode() if isinstance(layer, bytes) else str(layer)
        group = f[layer]
        names = [w.decode() if isinstance(w, bytes) else str(w) for w in group.attrs.get("weight_names", [])]
        if names:
            found.append((layer, [tuple(group[w].shape) for w in names]))
    return found


def _keras3_layers(f: h5py.File) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(name, array shapes) of each layer with weights, in the order Keras 3 assigns them.

    Keras 3 names a layer's path after its class with a counter (conv2d,
    conv2d_1, ... conv2d_12) and loads by that path; the layer's own name is
    the `vars` group's `name` attribute.
    """
    import h5py  # loaded by the caller already; out of the module's imports, as in the caller

    found = []
    for key, group in f["layers"].items():
        arrays = group.get("vars") if isinstance(group, h5py.Group) else None
        if not isinstance(arrays, h5py.Group) or not len(arrays):
            continue
        base, _, counter = key.rpartition("_")
        order = (base, int(counter)) if base and counter.isdigit() else (key, 0)
        label = arrays.attrs.get("name", key)
        label = label.decode() if isinstance(label, bytes) else str(label)
        found.append((order, label, [tuple(arrays[i].shape) for i in sorted(arrays, key=int)]))
    return [(label, shapes) for _, label, shapes in sorted(found)]


def _layers_problem(found: list[tuple[str, list[tuple[int, ...]]]], spec: BackboneSpec) -> str | None:
    """What does not fit, naming the layer, or None when the file's layers are spec's, in order."""
    names = [name for name, _ in found]
    expected_names = [name for name, _ in spec.weight_layers]
    total = len(spec.weight_layers)
    for i, (expected, shapes) in enumerate(spec.weight_layers):
        if i < len(found) and tuple(found[i][1]) == shapes:
            continue
        if expected not in names and set(names) & set(expected_names):
            return f"it has no weights for {expected} (conv layer {i + 1} of {total})"
        if i >= len(found):
            return (
                f"it holds weights for {len(found)} layers; {spec.name} has {total}, "
                f"from {expected} on they are missing"
            )
        return (
            f"{expected} (conv layer {i + 1} of {total}) needs arrays {_shapes(shapes)}, the file's layer "
            f"{found[i][0]!r} holds {_shapes(found[i][1])}"
        )
    if len(found) > total:
        return (
            f"it holds weights for {len(found)} layers, {spec.name} has {total}: {found[total][0]!r} is not one of them"
        )
    return None


def _shapes(shapes: Sequence[tuple[int, ...]]) -> str:
    return " + ".join("x".join(str(d) for d in shape) for shape in shapes) or "none"
