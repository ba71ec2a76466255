"""What fine-tuning changed, computed: rebuild a run's starting weights W0 and compare its saved model to them.

W0 is never stored: `build_for` rebuilds it from the run's start record (the
weights file, checked by its content, and the seed that drew the head and
any random layers), and each layer's recorded ||W0|| confirms the rebuild.
The result types are `tlcore.weight_changes`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import keras

from tlcore.backbones import get_backbone
from tlcore.config import TrainConfig
from tlcore.modelfile import ModelLoadError
from tlcore.records import RunRecord
from tlcore.tf.build import build_for
from tlcore.tf.inference import run_validation_images
from tlcore.tf.model import backbone_layers, layer_weight_norms, layers_with_weights, load_run_model, weights_norm
from tlcore.tf.representations import representation_changes
from tlcore.weight_changes import (
    BACKBONE,
    HEAD,
    ChangesUnavailable,
    LayerChange,
    WeightChanges,
    check_start_weights,
    measurable_record,
    norms_mismatch,
    start_of,
    trained_from,
)


def starting_model(record: RunRecord) -> keras.Model:
    """The model exactly as the run started (W0), rebuilt from its start record and checked against it.

    Raises:
        ChangesUnavailable: no start record, the weights file is missing or changed, or the rebuild
            gives other numbers than the run started from (the message says which).
    """
    start = start_of(record)
    config = _config_of(record)
    check_start_weights(start)
    config = config.replace(weights=start.weights, seed=start.seed)
    model = build_for(config, len(record.class_names or ()))
    problem = norms_mismatch(start, layer_weight_norms(model))
    if problem:
        versions = (
            f" The run used Keras {start.keras}, this is Keras {keras.__version__}: random initialisation may differ."
            if start.keras != keras.__version__
            else ""
        )
        raise ChangesUnavailable(
            f"The starting weights rebuilt for run {record.run_id} are not the ones it started from ({problem}), "
            f"so what it changed cannot be measured.{versions}"
        )
    return model


def _config_of(record: RunRecord) -> TrainConfig:
    if record.config is None or not record.class_names:
        raise ChangesUnavailable(f"Run {record.run_id} has no readable configuration or class names to rebuild from.")
    return record.config


def weight_changes(run_dir: str | os.PathLike, cka: bool = False) -> WeightChanges:
    """How far each layer's weights moved in a finished run: ||W - W0|| / ||W0||, input side first.

    `cka`: also how alike each conv layer's activations are before and after, on the run's validation
    images (`tlcore.tf.representations`).

    One entry per layer with weights (VGG16's convolutions, then the head's
    Dense layers); a layer frozen in every phase that ran comes out exactly 0.
    For a two-phase run W0 is where phase 1 began.

    Raises:
        FileNotFoundError: not a run folder.
        ChangesUnavailable: the run is still training or saved no model, it was saved before runs
            recorded where they started, or its starting weights cannot be rebuilt (the message says why).
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    record = measurable_record(run_dir)
    boundary = trained_from(record)
    initial = starting_model(record)
    try:
        final = load_run_model(run_dir)
    except ModelLoadError as err:
        raise ChangesUnavailable(f"Run {record.run_id}'s model cannot be loaded: {err}") from None
    spec = get_backbone(_config_of(record).backbone)
    backbone = [layer.name for layer in backbone_layers(initial, spec)]
    blocks = dict(zip(backbone, spec.layer_blocks))
    trained_backbone = set(backbone[boundary:])
    final_layers = {layer.name: layer for layer in layers_with_weights(final)}
    changes = []
    for layer in layers_with_weights(initial):
        if layer.name not in final_layers:
            raise ChangesUnavailable(f"Run {record.run_id}'s model has no layer {layer.name!r} to compare.")
        start, end = layer.get_weights(), final_layers[layer.name].get_weights()
        part = BACKBONE if layer.name in blocks else HEAD
        changes.append(
            LayerChange(
                name=layer.name,
                part=part,
                block=blocks.get(layer.name, HEAD),
                trained=layer.name in trained_backbone or part == HEAD,
                start_norm=weights_norm(start),
                change_norm=weights_norm([w - w0 for w, w0 in zip(end, start)]),
                params=sum(int(w0.size) for w0 in start),
            )
        )
    representations = None
    if cka:
        try:
            images, unreadable = run_validation_images(record, _config_of(record).image_size)
        except ValueError as err:
            raise ChangesUnavailable(f"{err} Its layers cannot be compared without them.") from None
        representations = representation_changes(record, spec, initial, final, images, unreadable)
    return WeightChanges(
        run_id=record.run_id,
        layers=tuple(changes),
        trained_from=boundary,
        weights=start_of(record).weights,
        seconds=time.perf_counter() - started,
        representations=representations,
    )
