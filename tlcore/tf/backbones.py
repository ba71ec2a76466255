"""Backbones built in Keras: the convolutional base, its preprocessing layer, its weights loaded.

What a backbone is (layers, blocks, weight shapes, where its ImageNet weights live) is
`tlcore.backbones`' spec, readable without TensorFlow; this module turns a spec into Keras objects.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlparse

import keras
import numpy as np

from tlcore.architecture import INPUT_LAYER, PREPROCESS_LAYER, layer_flops
from tlcore.backbone_facts import DEFAULT_BACKBONE, IMAGE_CHANNELS, VGG16
from tlcore.backbones import (
    IMAGENET,
    LEGACY_LAYOUT,
    NO_WEIGHTS,
    WEIGHTS_ENV,
    BackboneSpec,
    WeightsError,
    can_reach,
    check_weights_to_load,
    get_backbone,
    imagenet_cached_path,
    normalize_weights,
)
from tlcore.inside import Weighting
from tlcore.tf.layers import CaffePreprocess

# Per backbone: the Keras application that builds its base, and its own input preprocessing as a layer.
_APPLICATIONS: dict[str, Callable[..., keras.Model]] = {VGG16: keras.applications.VGG16}
_PREPROCESSING: dict[str, Callable[..., keras.layers.Layer]] = {VGG16: CaffePreprocess}


def build_base(spec: BackboneSpec, image_size: int) -> keras.Model:
    """The convolutional base without weights."""
    if image_size < spec.min_image_size:
        raise ValueError(
            f"{spec.name} needs images of at least {spec.min_image_size} px. Received: image_size={image_size}"
        )
    return _APPLICATIONS[spec.name](
        include_top=False, weights=None, input_shape=(image_size, image_size, IMAGE_CHANNELS)
    )


def preprocess_layer(spec: BackboneSpec) -> keras.layers.Layer:
    """The backbone's own preprocess_input as a serializable layer (raw RGB 0..255 in)."""
    return _PREPROCESSING[spec.name](name=PREPROCESS_LAYER)


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
    try:
        path = keras.utils.get_file(
            spec.imagenet_file, spec.imagenet_url, cache_subdir="models", file_hash=spec.imagenet_md5
        )
    except Exception as err:  # Keras raises a bare Exception for fetch failures
        raise WeightsError(f"ImageNet weights could not be downloaded ({err}). {ways_out}") from None
    return Path(path)


def load_backbone(spec: BackboneSpec, image_size: int, weights: str) -> keras.Model:
    """Build the convolutional base and load the chosen weights into it."""
    weights = normalize_weights(weights)
    model = build_base(spec, image_size)
    if weights == NO_WEIGHTS:
        return model
    path = download_imagenet(spec) if weights == IMAGENET else Path(weights)
    load_weights_file(model, path, spec)
    return model


# Keras draws initial weights from process-wide random state: two models built at once (a job's run, a
# rebuild of some run's starting weights, an inside view's random side) would interleave their draws and
# neither would be its seed's. Whoever seeds and builds holds this lock.
SEEDED_BUILD = threading.Lock()


def random_backbone(spec: BackboneSpec, image_size: int, seed: int) -> keras.Model:
    """The base with Keras' own random initialisation drawn from `seed`: the same network a run
    with random weights and this seed starts from (`tlcore.tf.training.build_for` seeds the same way)."""
    with SEEDED_BUILD:
        keras.utils.set_random_seed(seed)
        return load_backbone(spec, image_size, NO_WEIGHTS)


def backbone_for(weighting: Weighting, image_size: int, spec: BackboneSpec | None = None) -> keras.Model:
    """The base one side of an inside view looks through."""
    spec = spec or get_backbone(DEFAULT_BACKBONE)
    if weighting.weights == NO_WEIGHTS:
        return random_backbone(spec, image_size, weighting.seed)
    return load_backbone(spec, image_size, weighting.weights)


def outputs_model(base: keras.Model, layer_names: Sequence[str], spec: BackboneSpec | None = None) -> keras.Model:
    """A model from raw RGB pixels 0..255 (the base's own preprocessing first) to the named layers' outputs.

    It calls the base's layers again on a new input, sharing their weights, so one
    forward pass gives every named layer (in the order named) and the graph stays flat.
    """
    spec = spec or get_backbone(DEFAULT_BACKBONE)
    known = [layer.name for layer in base.layers[1:]]
    unknown = [name for name in layer_names if name not in known]
    if unknown:
        raise ValueError(f"{spec.name} has no layer {unknown[0]!r}. Its layers: {', '.join(known)}")
    inputs = keras.Input(shape=base.input_shape[1:], name=INPUT_LAYER)
    x = preprocess_layer(spec)(inputs)
    outputs = {}
    last = max(known.index(name) for name in layer_names)
    for layer in base.layers[1 : last + 2]:
        x = layer(x)
        outputs[layer.name] = x
    return keras.Model(inputs, [outputs[name] for name in layer_names], name=f"{base.name}_outputs")


def load_weights_file(model: keras.Model, path: Path, spec: BackboneSpec) -> None:
    """Load a Keras 3 `.weights.h5` or a legacy Keras `.h5` weights file, checked first.

    Raises:
        WeightsError: the file is missing, unreadable, or does not fit the model.
    """
    path = Path(path)
    legacy = check_weights_to_load(path, spec) == LEGACY_LAYOUT
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


# --- this machine's speed on the backbone ------------------------------------------------


def measure_gflops(image_size: int = 64, batch: int = 16, repeats: int = 2) -> float:
    """This machine's sustained GFLOP/s on VGG16 convolutions through TensorFlow (best of a few batches).

    The reference `tlcore.estimate.machine_gflops` is calibrated against; imports TensorFlow and builds VGG16 (seconds).
    """
    base = build_base(get_backbone(DEFAULT_BACKBONE), image_size)
    x = np.random.default_rng(0).uniform(0, 255, (batch, image_size, image_size, IMAGE_CHANNELS)).astype("float32")
    base.predict_on_batch(x)  # first call traces the graph
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        base.predict_on_batch(x)
        best = min(best, time.perf_counter() - t0)
    return sum(layer_flops(image_size)) * batch / best / 1e9
