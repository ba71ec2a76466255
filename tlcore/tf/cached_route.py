"""The cached route: the frozen layers' output computed once per phase, so each epoch trains only the layers above.

With augmentation off the frozen prefix computes the same activations every epoch; when they fit a memory
budget (`tlcore.route`) they are extracted once or read from the feature store (`tlcore.feature_store`), the
head's pooling is applied to them once (`split_fixed`), and `tlcore.tf.compiled_epochs` trains the rest.
Features are kept as float32 whatever precision computed them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from tlcore.backbones import BackboneSpec, get_backbone
from tlcore.config import TrainConfig
from tlcore.feature_store import FeatureKey, FeatureStore, StoredFeatures, format_time
from tlcore.progress import FeaturesReused, ProgressFn, StepProgress, StopFlag
from tlcore.route import CACHED, DEFAULT_FEATURE_BUDGET_BYTES, END_TO_END, choose_route
from tlcore.run_result import FeatureLine
from tlcore.tf.devices import replicas
from tlcore.tf.model import backbone_layers
from tlcore.tf.pipeline import ImageSet, PreparedData, make_dataset

# Why a phase that could use cached features runs end to end under MirroredStrategy: the compiled epochs of
# the cached route (tlcore.tf.compiled_epochs) run on one device, outside the strategy's replicas.
SEVERAL_REPLICAS = "{} replicas train together (MirroredStrategy), which the cached route does not do"


def route_for(
    config: TrainConfig,
    model: keras.Model,
    freeze_at: int,
    data: PreparedData,
    feature_budget_bytes: int = DEFAULT_FEATURE_BUDGET_BYTES,
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[str, str]:
    """The route a phase at `freeze_at` takes on this data (`tlcore.route.choose_route`), and why.

    The features' size is that of the model's layer at the freeze point, for every image of both splits.
    Several replicas train end to end (SEVERAL_REPLICAS).
    """
    boundary = backbone_layers(model, get_backbone(config.backbone))[freeze_at - 1] if freeze_at else None
    floats = int(np.prod(boundary.output.shape[1:])) if boundary is not None else 0
    route, why = choose_route(config, freeze_at, floats, len(data.train) + len(data.validation), feature_budget_bytes)
    if route == CACHED and replicas(strategy) > 1:
        return END_TO_END, SEVERAL_REPLICAS.format(replicas(strategy))
    return route, why


def cut(model: keras.Model, freeze_at: int, spec: BackboneSpec) -> tuple[keras.Model, keras.Model]:
    """Split the chain after `freeze_at` layers of the model's backbone (`spec`) into (prefix, suffix).

    Both share the model's layer objects, so training the suffix trains the model.
    """
    if not 1 <= freeze_at <= spec.num_layers:
        raise ValueError(f"A cut needs 1 <= freeze_at <= {spec.num_layers}. Received: freeze_at={freeze_at}")
    boundary = backbone_layers(model, spec)[freeze_at - 1]
    prefix = keras.Model(model.inputs, boundary.output, name=f"prefix_{freeze_at}")
    after = model.layers[model.layers.index(boundary) + 1 :]
    features = keras.Input(shape=tuple(boundary.output.shape[1:]), name="features")
    x = features
    for layer in after:
        x = layer(x)
    suffix = keras.Model(features, x, name=f"suffix_{freeze_at}")
    return prefix, suffix


# Layers without weights that compute the same in training as in inference: on cached features
# their output is the same every epoch.
_FIXED_LAYERS = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Flatten,
)


def split_fixed(suffix: keras.Model) -> tuple[keras.Model | None, keras.Model]:
    """Split a chain `suffix` into (its leading layers that never change, the rest); (None, suffix) if none.

    Above the whole VGG16 base the head starts with its pooling: on cached
    features it is computed once, with the features, and every epoch trains
    the rest on pooled features (a 16th of block 5's at 128 px). The rest
    shares the suffix's layer objects, so training it trains the model.
    """
    layers = [layer for layer in suffix.layers if not isinstance(layer, keras.layers.InputLayer)]
    count = next((i for i, layer in enumerate(layers) if not isinstance(layer, _FIXED_LAYERS)), len(layers))
    if count == 0 or count == len(layers):
        return None, suffix
    fixed = keras.Model(suffix.inputs[0], _chain(layers[:count], suffix.inputs[0]), name=f"{suffix.name}_fixed")
    rest_input = keras.Input(shape=tuple(fixed.output.shape[1:]), name="fixed_features")
    rest = keras.Model(rest_input, _chain(layers[count:], rest_input), name=suffix.name)
    return fixed, rest


def _chain(layers: Sequence[keras.layers.Layer], x: keras.KerasTensor) -> keras.KerasTensor:
    for layer in layers:
        x = layer(x)
    return x


def apply_fixed(fixed: keras.Model | None, features: np.ndarray, chunk: int = 256) -> np.ndarray:
    """`fixed`'s output on every row of `features` (in chunks, to bound the memory of a large set)."""
    if fixed is None:
        return features
    if not len(features):
        return np.zeros((0, *fixed.output.shape[1:]), dtype=np.float32)
    return np.concatenate([_float32(fixed(features[i : i + chunk])) for i in range(0, len(features), chunk)])


def _float32(tensor: tf.Tensor | np.ndarray) -> np.ndarray:
    """Features as a float32 array, whatever precision computed them.

    The feature store and the route's memory budget count 4 bytes a value; the layers above cast them to
    their own compute dtype.
    """
    return np.asarray(tensor, dtype=np.float32)  # as tlcore.tf.pipeline.predict_outputs keeps them


def extract_features(
    prefix: keras.Model,
    images: ImageSet,
    batch_size: int = 32,
    progress: ProgressFn | None = None,
    stop: StopFlag | None = None,
    done_before: int = 0,
    total: int | None = None,
) -> np.ndarray | None:
    """Run the frozen prefix once over every image; None if stopped."""
    total = total or len(images)
    outputs = []
    done = done_before
    for x, _ in make_dataset(images, batch_size):
        if stop is not None and stop.is_set():
            return None
        outputs.append(_float32(prefix.predict_on_batch(x)))
        done += int(x.shape[0])
        if progress:
            progress(StepProgress("extract", done, total))
    if not outputs:
        return np.zeros((0, *prefix.output.shape[1:]), dtype=np.float32)
    return np.concatenate(outputs)


def feature_key(config: TrainConfig, data: PreparedData, freeze_at: int) -> FeatureKey:
    """What the frozen features of `config`'s model at `freeze_at` depend on (see tlcore.feature_store)."""
    return FeatureKey.of(config, data.fingerprint, freeze_at, data.train.image_size)


@dataclass
class PhaseFeatures:
    """A cached phase's (training, validation) features, its line for the run record, and the seconds spent."""

    arrays: tuple[np.ndarray, np.ndarray] | None  # None: Stop came during extraction
    line: FeatureLine | None  # None when stopped
    extract_seconds: float = 0.0


def phase_features(
    prefix: keras.Model,
    config: TrainConfig,
    data: PreparedData,
    phase: int,
    freeze_at: int,
    store: FeatureStore | None,
    report: ProgressFn,
    stop: StopFlag | None,
) -> PhaseFeatures:
    """A cached phase's features: from the store when an earlier run kept them, else extracted (and kept there)."""
    key = feature_key(config, data, freeze_at) if store is not None else None
    problems = len(store.problems) if store is not None else 0
    stored = _stored_features(store, key, prefix, data)
    if stored is not None:
        report(FeaturesReused(phase, freeze_at, stored.created_text))
        reused: FeatureLine = {"phase": phase, "freeze_at": freeze_at, "reused": True, "created": stored.created_text}
        return PhaseFeatures((stored.train, stored.validation), reused)
    t0 = time.perf_counter()
    total = len(data.train) + len(data.validation)
    x_train = extract_features(prefix, data.train, 32, report, stop, 0, total)
    x_val = (
        None if x_train is None else extract_features(prefix, data.validation, 32, report, stop, len(x_train), total)
    )
    seconds = time.perf_counter() - t0
    if x_train is None or x_val is None:
        return PhaseFeatures(None, None, seconds)
    created = time.time()  # the record and the store's entry say the same moment
    line: FeatureLine = {"phase": phase, "freeze_at": freeze_at, "reused": False, "created": format_time(created)}
    if store is not None and len(store.problems) > problems:  # a damaged entry: said in the record
        line["problem"] = store.problems[-1]
    if store is not None and key is not None:
        try:  # a store that cannot be written costs the next run time, never this run
            store.put(key, x_train, x_val, created)
        except OSError as err:
            line["store_error"] = f"{store.root}: {err.strerror or err}"
    return PhaseFeatures((x_train, x_val), line, seconds)


def _stored_features(
    store: FeatureStore | None, key: FeatureKey | None, prefix: keras.Model, data: PreparedData
) -> StoredFeatures | None:
    """The store's features for `key` when they fit this model and data; None means compute them."""
    if store is None or key is None:
        return None
    stored = store.get(key)
    shape = tuple(prefix.output.shape[1:])
    if stored is None or stored.train.shape != (len(data.train), *shape):
        return None
    return stored if stored.validation.shape == (len(data.validation), *shape) else None
