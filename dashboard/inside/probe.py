"""The See inside page's probe and map: where transferable knowledge lives, and the same features as a map.

Both read one set of pooled features, computed in the background once per
dataset, image size and weights (`dashboard.tasks`), so moving the freeze
slider or clicking elsewhere redraws at once and never restarts the pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import tasks
from dashboard.chart_cache import show_chart
from dashboard.charts import feature_map_chart, probe_chart
from dashboard.dataset_source import dataset_is_shared
from dashboard.identity import run_store
from dashboard.state import K
from dashboard.tables import describe_run
from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.data_problems import display_path
from tlcore.inside import SIDE_TITLES, Comparison
from tlcore.probe import PROBE_BOUNDARIES, PROBE_CLASSIFIER, ProbeResult, layer_at, probe_accuracy, project_2d
from tlcore.run_folder import MODEL_FILE
from tlcore.runs import runs_with_models

if TYPE_CHECKING:  # the TensorFlow side: imported only in the tasks
    from tlcore.tf.pipeline import PreparedData
    from tlcore.tf.probe import FeatureSet

EVERY_DEPTH = tuple(range(1, VGG16_LAYERS + 1))  # one pass gives them all: the map follows the freeze slider
NO_RUN = "(none)"
HeadMap = tuple[str, float, pd.DataFrame] | None  # (layer, probe accuracy, points); None: no hidden layer


@dataclass
class InsideFeatures:
    """What the background pass gives: the probe at block boundaries, pooled features at every depth."""

    probe: ProbeResult
    features: FeatureSet
    maps: dict[tuple[str, int], tuple[float, pd.DataFrame]] = field(default_factory=dict)  # drawn maps, kept


def _task_key(info: DatasetInfo, comparison: Comparison, image_size: int) -> tasks.TaskKey[InsideFeatures]:
    sides = ";".join(f"{w.side}={w.weights}@{_mtime(w.weights)}/{w.seed}" for w in comparison.weightings)
    return tasks.TaskKey(f"inside|{info.root}|{info.fingerprint()}|{image_size}|{sides}")


def _mtime(path: str) -> float:
    return Path(path).stat().st_mtime if Path(path).is_file() else 0.0


def _inside_features(
    info: DatasetInfo, comparison: Comparison, image_size: int, seed: int
) -> tasks.Task[InsideFeatures]:
    def compute(progress: tasks.ProgressFn) -> InsideFeatures:
        from tlcore.tf.probe import extract_inside_features, probe_features
        from tlcore.tf.training import prepare_data

        data = prepare_data(info, image_size)
        feature_set = extract_inside_features(data, comparison, EVERY_DEPTH, progress)
        return InsideFeatures(probe_features(feature_set, comparison, seed, PROBE_BOUNDARIES), feature_set)

    key = _task_key(info, comparison, image_size)
    return tasks.start(key, "Putting every image through VGG16", compute, shared=dataset_is_shared())


def probe_section(info: DatasetInfo, comparison: Comparison, image_size: int, freeze_at: int) -> None:
    """The probe chart, then the map of features at the freeze point (and of a run's head)."""
    st.subheader("Where transferable knowledge lives")
    st.write(
        "A *linear probe* asks how well a straight line can already separate your classes using a "
        "layer's features, before any training. If ImageNet's features win at a depth, the knowledge "
        "there transfers: freezing up to that depth keeps it for free."
    )
    if not info.num_images(VALIDATION):
        st.info("The probe is scored on validation images, and this dataset has none.")
        return
    seed = int(st.session_state[K.seed])
    task = _inside_features(info, comparison, image_size, seed)
    inside = tasks.result_when_ready(task)
    if inside is None:
        return
    probe = inside.probe
    frame = pd.DataFrame(
        [
            {"freeze point": s.freeze_at, "layer": s.layer, "weights": w.title, "accuracy": s.of(w.side)}
            for s in probe.boundaries
            for w in comparison.weightings
        ]
    )
    show_chart(probe_chart, frame, chance=1 / len(info.class_names))
    st.caption(
        f"Fitted on {probe.num_train} training images, scored on {probe.num_validation} validation images "
        f"at {image_size} px; {PROBE_CLASSIFIER}. Features took {task.seconds:.0f} s; "
        f"`python -m tlcore probe --data DIR` prints the same figures."
    )
    if note := probe.random_ahead_note():
        st.info(note)
    _map_section(info, comparison, inside, freeze_at, seed)


def _map_section(info: DatasetInfo, comparison: Comparison, inside: InsideFeatures, freeze_at: int, seed: int) -> None:
    st.subheader("The same features as a map")
    st.write(
        "Each image becomes one point: its pooled features squeezed to two dimensions (PCA). "
        "Where classes form separate clouds, a simple head on top has an easy job."
    )
    depth = freeze_at if freeze_at > 0 else VGG16_LAYERS
    if freeze_at == 0:
        st.caption(f"Nothing is frozen at freeze point 0: the map shows the top of VGG16 ({layer_at(depth)}).")
    columns = st.columns(2)  # half width even for one side: a full-width map is mostly empty space
    for column, weighting in zip(columns, comparison.weightings):
        accuracy, points = _backbone_map(inside, weighting.side, depth, info, seed)
        lines = [f"probe accuracy {accuracy:.0%}", f"{layer_at(depth)}, freeze point {depth}"]
        with column:
            show_chart(feature_map_chart, points, SIDE_TITLES[weighting.side], info.class_names, lines)
    _head_map(info, seed)


def _backbone_map(
    inside: InsideFeatures, side: str, depth: int, info: DatasetInfo, seed: int
) -> tuple[float, pd.DataFrame]:
    key = (side, depth)
    if key not in inside.maps:  # a probe and a PCA: tens of milliseconds, once per side and depth
        train_x, val_x = inside.features.at(side, depth)
        inside.maps[key] = _map(train_x, val_x, inside.features.data, info, seed)
    return inside.maps[key]


def _map(
    train_x: np.ndarray, val_x: np.ndarray, data: PreparedData, info: DatasetInfo, seed: int
) -> tuple[float, pd.DataFrame]:
    """The probe accuracy on these features, and their 2-D map with each image's class, split and name."""
    accuracy = probe_accuracy(train_x, data.train.labels, val_x, data.validation.labels, seed)
    train_xy, val_xy = project_2d(train_x, val_x)
    rows = []
    for split, images, xy in ((TRAIN, data.train, train_xy), (VALIDATION, data.validation, val_xy)):
        for (x, y), label, path in zip(xy, images.labels, images.paths):
            rows.append({"x": x, "y": y, "class": info.class_names[label], "split": split, "image": display_path(path)})
    return accuracy, pd.DataFrame(rows)


# --- a trained run's head ---------------------------------------------------------------


def _head_map(info: DatasetInfo, seed: int) -> None:
    """The map of a finished run's last hidden head layer, for a run trained on these classes."""
    records = {
        run_dir: record
        for run_dir, record in runs_with_models(run_store()).items()
        if record.class_names == info.class_names
    }
    st.markdown("**After training: the head's last hidden layer**")
    if not records:
        st.caption("Train a model on these classes, and its head's own map appears here.")
        return
    run_dir = st.selectbox("Run", list(records), format_func=lambda d: describe_run(records[d]), key="inside_head_run")
    model_path = Path(run_dir) / MODEL_FILE
    key: tasks.TaskKey[HeadMap] = tasks.TaskKey(f"head|{run_dir}|{model_path.stat().st_mtime}|{info.fingerprint()}")

    def compute(progress: tasks.ProgressFn) -> HeadMap:
        from tlcore.tf.inference import image_size_of
        from tlcore.tf.model import load_model
        from tlcore.tf.probe import hidden_features, hidden_layer_name
        from tlcore.tf.training import prepare_data

        model = load_model(model_path)
        name = hidden_layer_name(model)
        if name is None:
            return None
        data = prepare_data(info, image_size_of(model))
        total = len(data.train) + len(data.validation)
        train_x = hidden_features(model, data.train, name, progress=lambda n: progress(n, total))
        val_x = hidden_features(model, data.validation, name, progress=lambda n: progress(len(data.train) + n, total))
        accuracy, points = _map(train_x, val_x, data, info, seed)
        return name, accuracy, points

    task = tasks.start(key, "Putting every image through the trained model", compute)
    result = tasks.result_when_ready(task)
    if task.finished.is_set() and not task.error and result is None:
        st.info(
            "This run's head has no dense layer (dense: none): its pooled features go straight to the "
            "output layer, so there is no hidden layer to map."
        )
    if result is None:
        return
    name, accuracy, points = result
    lines = [f"probe accuracy {accuracy:.0%}", f"{name}, the last layer before the output"]
    st.altair_chart(feature_map_chart(points, "Trained head", info.class_names, lines), width="stretch")
