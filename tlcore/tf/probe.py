"""Pooled features at several depths of VGG16 from one forward pass per image, and the probes on them.

See `tlcore.probe` for what a probe is and why; this module runs the images
through the backbones (pretrained and random) and through a trained run's head.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from tlcore.architecture import OUTPUT_LAYER
from tlcore.inside import Comparison, Weighting
from tlcore.probe import PROBE_BOUNDARIES, ProbeResult, layer_at, probe_accuracy, scores_table
from tlcore.tf.backbones import backbone_for, outputs_model
from tlcore.tf.pipeline import ImageSet, PreparedData, predict_outputs

# Images per batch of a pass: the dashboard's pages go first between batches (dashboard.foreground), and 8
# images at 128 px are a few tenths of a second on 2 cores, where 32 held a page up for over a second.
PASS_BATCH = 8

FeatureProgressFn = Callable[[int, int], None]  # (images done, images in all)
BackboneFn = Callable[[Weighting, int], keras.Model]  # (weighting, image size) -> convolutional base


@dataclass
class FeatureSet:
    """Pooled features of both splits: {side: {freeze_at: (train (n, channels), validation (m, channels))}}."""

    data: PreparedData
    features: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]

    def at(self, side: str, freeze_at: int) -> tuple[np.ndarray, np.ndarray]:
        return self.features[side][freeze_at]


def pooled_model(base: keras.Model, freeze_points: Sequence[int]) -> keras.Model:
    """Raw pixels in; each freeze point's output averaged over its feature map out (one vector per image)."""
    outputs_at = outputs_model(base, [layer_at(k) for k in freeze_points])
    pooled = [keras.layers.GlobalAveragePooling2D()(output) for output in outputs_at.outputs]
    return keras.Model(outputs_at.inputs, pooled, name="pooled_features")


def extract_inside_features(
    data: PreparedData,
    comparison: Comparison,
    freeze_points: Sequence[int] = PROBE_BOUNDARIES,
    progress: FeatureProgressFn | None = None,
    backbone: BackboneFn | None = None,
) -> FeatureSet:
    """Pooled features at every freeze point for each side of the comparison, one pass per side and split.

    Args:
        backbone: where the convolutional bases come from (the dashboard passes its shared, cached ones).
    """
    backbone = backbone or (lambda weighting, size: backbone_for(weighting, size))
    points = sorted(set(freeze_points))
    total = len(comparison.weightings) * (len(data.train) + len(data.validation))
    done = 0
    features: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for weighting in comparison.weightings:
        model = pooled_model(backbone(weighting, data.train.image_size), points)
        split_features = []
        for images in (data.train, data.validation):
            offset = done
            split_features.append(
                _forward(model, images, progress=progress and (lambda n, o=offset: progress(o + n, total)))
            )
            done += len(images)
        train, validation = split_features
        features[weighting.side] = {k: (train[i], validation[i]) for i, k in enumerate(points)}
    return FeatureSet(data, features)


def probe_features(
    feature_set: FeatureSet, comparison: Comparison, seed: int = 0, freeze_points: Sequence[int] | None = None
) -> ProbeResult:
    """A probe at each of the freeze points (default: all the feature set has), for each side."""
    started = time.perf_counter()
    train_y, val_y = feature_set.data.train.labels, feature_set.data.validation.labels
    points = sorted(freeze_points or next(iter(feature_set.features.values())))
    accuracies = {
        side: {k: probe_accuracy(by_point[k][0], train_y, by_point[k][1], val_y, seed) for k in points}
        for side, by_point in feature_set.features.items()
    }
    return ProbeResult(
        scores_table(accuracies, points),
        image_size=feature_set.data.train.image_size,
        num_train=len(train_y),
        num_validation=len(val_y),
        reason=comparison.reason,
        seconds=time.perf_counter() - started,
    )


def run_probe(
    data: PreparedData,
    comparison: Comparison,
    freeze_points: Sequence[int] = PROBE_BOUNDARIES,
    seed: int = 0,
    progress: FeatureProgressFn | None = None,
) -> ProbeResult:
    """Probe accuracies at the freeze points for both sides: features, then probes (timed together)."""
    started = time.perf_counter()
    feature_set = extract_inside_features(data, comparison, freeze_points, progress)
    return dataclasses.replace(probe_features(feature_set, comparison, seed), seconds=time.perf_counter() - started)


# --- a trained run's head ---------------------------------------------------------------


def hidden_layer_name(model: keras.Model) -> str | None:
    """The head's last hidden Dense layer (the one before the output), or None for a head with none."""
    dense = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    hidden = [name for name in dense if name != OUTPUT_LAYER]
    return hidden[-1] if hidden else None


def hidden_features(
    model: keras.Model,
    images: ImageSet,
    name: str,
    batch_size: int = PASS_BATCH,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The output of the model's layer `name` (e.g. `hidden_layer_name(model)`) for every image."""
    to_hidden = keras.Model(model.inputs, model.get_layer(name).output, name="to_hidden")
    return _forward(to_hidden, images, batch_size, progress)[0]


def _forward(
    model: keras.Model, images: ImageSet, batch_size: int = PASS_BATCH, progress: Callable[[int], None] | None = None
) -> list[np.ndarray]:
    outputs = predict_outputs(model, images, batch_size, progress)
    assert outputs is not None  # no stop flag was given
    return outputs
