"""Backbone registry and weights policy (ImageNet download, a local file, or none).

Importing this module does not import TensorFlow; building a backbone does.
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlparse

if TYPE_CHECKING:
    import keras

WEIGHTS_ENV = "TLLAB_WEIGHTS"
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
    imagenet_file: str
    imagenet_url: str
    imagenet_md5: str
    constructor: Callable[..., "keras.Model"]
    preprocess_layer: Callable[[], "keras.layers.Layer"]

    @property
    def num_layers(self) -> int:
        return len(self.layer_blocks)

    @property
    def block_boundaries(self) -> tuple[int, ...]:
        """Freeze points that fall between blocks, 0 and num_layers included."""
        ends = [i + 1 for i in range(self.num_layers - 1) if self.layer_blocks[i] != self.layer_blocks[i + 1]]
        return (0, *ends, self.num_layers)

    def build(self, image_size: int) -> "keras.Model":
        """The convolutional base without weights."""
        if image_size < self.min_image_size:
            raise ValueError(
                f"{self.name} needs images of at least {self.min_image_size} px. Received: image_size={image_size}"
            )
        return self.constructor(include_top=False, weights=None, input_shape=(image_size, image_size, 3))


def _vgg16(**kwargs):
    import keras

    return keras.applications.VGG16(**kwargs)


def _caffe_preprocess():
    from tlcore.layers import CaffePreprocess

    return CaffePreprocess(name="preprocess")


_VGG_BLOCKS = tuple(
    f"block{b}" for b, convs in enumerate((2, 2, 3, 3, 3), start=1) for _ in range(convs + 1)
)

REGISTRY: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(
        name="vgg16",
        default_image_size=224,
        min_image_size=32,
        layer_blocks=_VGG_BLOCKS,
        last_conv_layer="block5_conv3",
        imagenet_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        imagenet_url=(
            "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
        ),
        imagenet_md5="6d6bbae143d832006294945121d1f1fc",
        constructor=_vgg16,
        preprocess_layer=_caffe_preprocess,
    )
}


def get_backbone(name: str) -> BackboneSpec:
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"Unknown backbone. Expected one of {sorted(REGISTRY)}. Received: backbone={name!r}") from None


# --- weights -----------------------------------------------------------------


def default_weights() -> str:
    """TLLAB_WEIGHTS when set (a file for offline machines), else ImageNet."""
    return os.environ.get(WEIGHTS_ENV) or IMAGENET


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


def weights_status(choice: str, spec: BackboneSpec | None = None) -> tuple[bool, str]:
    """Whether the chosen weights can be used now without the network, in plain words."""
    spec = spec or REGISTRY["vgg16"]
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
    if not path.is_file():
        return False, f"Weights file not found: {path}"
    return True, f"Weights file {path.name} ({path.stat().st_size / 1e6:.0f} MB)."


def can_reach(url: str, timeout: float = REACHABILITY_TIMEOUT_S) -> bool:
    """True when a TCP connection to the URL's host opens within timeout seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def download_imagenet(spec: BackboneSpec) -> Path:
    """Download (or find cached) ImageNet weights; fails within seconds when offline."""
    cached = imagenet_cached_path(spec)
    if cached:
        return cached
    ways_out = (
        f"Either give a weights file (--weights PATH, or set {WEIGHTS_ENV}; e.g. a copy of "
        f"{spec.imagenet_file}), or start from random weights, no transfer (--weights none)."
    )
    host = urlparse(spec.imagenet_url).hostname
    if not can_reach(spec.imagenet_url):
        raise WeightsError(f"ImageNet weights could not be downloaded: {host} is not reachable (offline?). {ways_out}")
    import keras

    try:
        path = keras.utils.get_file(
            spec.imagenet_file, spec.imagenet_url, cache_subdir="models", file_hash=spec.imagenet_md5
        )
    except Exception as err:  # Keras raises a bare Exception for fetch failures
        raise WeightsError(f"ImageNet weights could not be downloaded ({err}). {ways_out}") from None
    return Path(path)


def load_backbone(spec: BackboneSpec, image_size: int, weights: str) -> "keras.Model":
    """Build the convolutional base and load the chosen weights into it."""
    weights = normalize_weights(weights)
    model = spec.build(image_size)
    if weights == NO_WEIGHTS:
        return model
    path = download_imagenet(spec) if weights == IMAGENET else Path(weights)
    load_weights_file(model, path, spec)
    return model


def load_weights_file(model: "keras.Model", path: Path, spec: BackboneSpec) -> None:
    """Load a Keras 3 `.weights.h5` or a legacy Keras `.h5` weights file, checked first.

    Raises:
        WeightsError: the file is missing, unreadable, or does not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Weights file not found: {path}")
    shapes, legacy = _read_weight_shapes(path)
    expected = sorted(tuple(w.shape) for w in model.weights)
    if sorted(shapes) != expected:
        raise WeightsError(
            f"Weights file {path} does not fit {spec.name} (no top): it holds {len(shapes)} arrays, "
            f"{spec.name} needs {len(expected)} with different shapes. Use "
            f"{spec.imagenet_file} or a .weights.h5 saved from {spec.name}(include_top=False)."
        )
    # Keras picks the reader by file name; give it the name that matches the content.
    suffix = ".h5" if legacy else ".weights.h5"
    try:
        if path.name.endswith(suffix) and not (legacy and path.name.endswith(".weights.h5")):
            model.load_weights(str(path))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                link = Path(tmp) / f"weights{suffix}"
                link.symlink_to(path.resolve())
                model.load_weights(str(link))
    except Exception as err:
        raise WeightsError(f"Weights file {path} could not be loaded into {spec.name}: {err}") from None


def _read_weight_shapes(path: Path) -> tuple[list[tuple[int, ...]], bool]:
    """Shapes of all arrays in a weights file, and whether it is the legacy layout."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            legacy = "layer_names" in f.attrs
            shapes: list[tuple[int, ...]] = []

            def collect(_name, obj):
                if isinstance(obj, h5py.Dataset):
                    shapes.append(tuple(obj.shape))

            (f if legacy else f.get("layers", f)).visititems(collect)
            return shapes, legacy
    except OSError as err:
        raise WeightsError(f"Weights file {path} is not a readable HDF5 weights file ({err}).") from None
