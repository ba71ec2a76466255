"""What fine-tuning changed in what layers compute: linear CKA of each VGG16 conv layer, before against after.

Before is the run's starting model (ImageNet, rebuilt as `tlcore.tf.weight_changes.starting_model` does),
after its saved model, both on the run's own validation images. The layers below the freeze point are the
same in both: their activations are computed once and their CKA is 1 by construction, not measured.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import keras
import numpy as np

from tlcore.architecture import PREPROCESS_LAYER
from tlcore.backbones import BackboneSpec
from tlcore.cka import cka_of_grams, gram
from tlcore.records import RunRecord
from tlcore.tf.model import backbone_layers
from tlcore.weight_changes import LayerSimilarity, RepresentationChanges, trained_from

BATCH = 8  # images through a layer at a time: a page waits for at most one batch (tlcore.tf.probe.PASS_BATCH)


def _through(layer: keras.layers.Layer, x: np.ndarray) -> np.ndarray:
    """One layer applied to every image, a batch at a time, as float32 (mixed precision computes in 16 bits)."""
    parts = [keras.ops.convert_to_numpy(layer(x[i : i + BATCH])).astype(np.float32) for i in range(0, len(x), BATCH)]
    return np.concatenate(parts)


def representation_changes(
    record: RunRecord,
    spec: BackboneSpec,
    initial: keras.Model,
    final: keras.Model,
    images: np.ndarray,
    unreadable: Sequence[str] = (),
) -> RepresentationChanges:
    """Linear CKA between the starting and the final model's activations of every backbone conv layer on `images`."""
    started = time.perf_counter()
    boundary = trained_from(record)
    before = after = _through(initial.get_layer(PREPROCESS_LAYER), images.astype(np.float32))  # the same in both
    layers: list[LayerSimilarity] = []
    for index, (a, b) in enumerate(zip(backbone_layers(initial, spec), backbone_layers(final, spec)), start=1):
        if index <= boundary:  # frozen in every phase: the same weights on the same input
            before = after = _through(a, before)
            if a.weights:
                layers.append(LayerSimilarity(a.name, spec.layer_blocks[index - 1], trained=False, cka=1.0))
            continue
        before, after = _through(a, before), _through(b, after)
        if a.weights:
            value = cka_of_grams(gram(before), gram(after))
            layers.append(LayerSimilarity(a.name, spec.layer_blocks[index - 1], trained=True, cka=value))
    return RepresentationChanges(
        run_id=record.run_id,
        layers=tuple(layers),
        trained_from=boundary,
        images=len(images),
        unreadable=tuple(unreadable),
        seconds=time.perf_counter() - started,
    )
