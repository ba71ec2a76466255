"""See inside, what the frozen layers see: one image through one VGG16 layer, pretrained and random side by side."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard.inside.backbones import _file_stamp, backbone
from tlcore.backbones import WeightsError
from tlcore.data import DatasetInfo
from tlcore.featuremaps import DEFAULT_TOP, LAYER_NAMES, default_layer, default_layer_note, is_frozen, mosaic
from tlcore.imageio import IMAGE_EXTENSIONS, ImageProblem, load_array
from tlcore.inside import Comparison, Weighting

IMAGE_KEY, UPLOAD_KEY, LAYER_KEY, TOP_KEY = (
    "feature_maps_image",
    "feature_maps_upload",
    "feature_maps_layer",
    "feature_maps_top",
)
# The learner's picks as plain state: Streamlit forgets a widget's value while another page runs.
SAVED = "feature_maps_saved"
TOP_CHOICES = (4, 8, 16, 32, 64)
SPLITS = ("train", "validation")
DISPLAY_SIZE = 256  # px of the copy of the input people see (the network sees image_size px)
Saved = str | int | tuple[int, str]  # a pick kept in SAVED: an image, a count, (freeze point, layer)


@dataclass(frozen=True)
class ShownMaps:
    """One weighting's maps of one image at one layer, as the page shows them (plain values: cached)."""

    shape: tuple[int, int, int]  # the layer's output: height, width, channels
    shape_text: str
    channels: list[int]  # the channels shown, most active first
    mosaic: np.ndarray  # their maps, row by row


def feature_maps_section(info: DatasetInfo, comparison: Comparison, image_size: int, freeze_at: int) -> None:
    """Pick an image, a layer and how many maps; show the image, the layer's shape and each weighting's maps."""
    st.subheader("What the frozen layers see")
    st.write(
        "Each filter turns the image into a map, bright where it found its pattern: early layers respond to "
        "edges and colours that any photo has, deeper ImageNet layers to parts and textures, which is why frozen "
        "layers can serve your classes. Random weights were never taught a pattern, so their maps are smudged "
        "copies of the image near the input and noise-like deeper down."
    )
    if comparison.pretrained is None:
        st.caption("Random weights only (see why above): ImageNet's maps would appear beside them.")
    image_column, layer_column, top_column = st.columns([5, 4, 3])
    layer, top = _layer_controls(freeze_at, layer_column, top_column)
    source, name, stamp = _image_controls(info, image_column)
    if source is None:
        st.info("This dataset has no training or validation image to show.")
        return
    try:
        shown = [
            (w, _maps(source, stamp, w, _file_stamp(w.weights), image_size, layer, top)) for w in comparison.weightings
        ]
    except ImageProblem as err:
        st.error(f"**{name}** cannot be used: {err}")
        return
    except WeightsError as err:
        st.error(str(err))
        return
    first = shown[0][1]
    state = "is frozen: it keeps its weights while the head trains" if is_frozen(layer, freeze_at) else "trains"
    about, picture = st.columns([4, 1], gap="medium")
    with about:
        st.markdown(f"#### {layer} · {first.shape_text}")
        st.caption(
            f"Height × width × channels: {first.shape[2]} maps of {first.shape[0]} × {first.shape[1]}; "
            f"this layer {state}."
            + (f" {default_layer_note(freeze_at)}" if layer == default_layer(freeze_at) else "")
            + f" Below, its {len(first.channels)} most active maps (by mean activation), row by row, each scaled "
            "on its own: dark is its lowest value, yellow its highest."
        )
    picture.image(_display(source, stamp, image_size), caption=f"{name} · {image_size} px", width="stretch")
    # Half the width each, a side alone too: the maps keep one size, as large as a projector needs.
    for column, (weighting, maps) in zip(st.columns(2, gap="medium"), shown):
        with column:
            st.markdown(f"**{weighting.title}**")
            st.image(maps.mosaic, width="stretch")
            st.caption(f"Channels {', '.join(map(str, maps.channels))}")


def _image_controls(info: DatasetInfo, column: DeltaGenerator) -> tuple[str | bytes | None, str, float]:
    """(the image as a path or uploaded bytes, its file name, its file's mtime): picked in `column`, or uploaded."""
    paths = {
        str(path): f"{path.parent.name}/{path.name} ({split})" for split in SPLITS for path in info.items(split)[0]
    }
    if paths:
        _restore(IMAGE_KEY, next(iter(paths)), list(paths))
        uploaded = st.session_state.get(UPLOAD_KEY) is not None  # the upload is shown instead
        column.selectbox(
            "Image",
            list(paths),
            format_func=paths.__getitem__,
            key=IMAGE_KEY,
            on_change=_save,
            args=(IMAGE_KEY,),
            disabled=uploaded,
            help="Remove the uploaded image to pick one here again." if uploaded else None,
        )
    with st.expander("…or use your own image"):
        upload = st.file_uploader("An image file", type=sorted(e[1:] for e in IMAGE_EXTENSIONS), key=UPLOAD_KEY)
    if upload is not None:
        return upload.getvalue(), upload.name, 0.0
    if not paths:
        return None, "", 0.0
    path = st.session_state[IMAGE_KEY]
    return path, os.path.basename(path), os.path.getmtime(path) if os.path.exists(path) else 0.0


def _layer_controls(freeze_at: int, layer_column: DeltaGenerator, top_column: DeltaGenerator) -> tuple[str, int]:
    """The layer (the freeze point's until the learner picks another) and how many maps to show."""
    saved = st.session_state.get(SAVED, {}).get(LAYER_KEY)
    # A new freeze point brings its own layer back; a pick stays while the freeze point does.
    st.session_state[LAYER_KEY] = saved[1] if saved and saved[0] == freeze_at else default_layer(freeze_at)
    layer_column.selectbox(
        "Layer",
        LAYER_NAMES,
        format_func=lambda name: f"{name} · {'frozen' if is_frozen(name, freeze_at) else 'trains'}",
        key=LAYER_KEY,
        on_change=lambda: _remember(LAYER_KEY, (freeze_at, st.session_state[LAYER_KEY])),
        help="VGG16's 18 layers, input side first. Frozen layers keep their weights while the head trains.",
    )
    _restore(TOP_KEY, DEFAULT_TOP, TOP_CHOICES)
    top_column.select_slider("Maps shown", TOP_CHOICES, key=TOP_KEY, on_change=_save, args=(TOP_KEY,))
    return st.session_state[LAYER_KEY], int(st.session_state[TOP_KEY])


def _restore(key: str, default: Saved, options: Sequence[Saved]) -> None:
    saved = st.session_state.get(SAVED, {}).get(key, default)
    st.session_state[key] = saved if saved in options else default


def _save(key: str) -> None:
    _remember(key, st.session_state[key])


def _remember(key: str, value: Saved) -> None:
    st.session_state[SAVED] = {**st.session_state.get(SAVED, {}), key: value}


@st.cache_data(max_entries=64, show_spinner="Putting the image through VGG16...")
def _maps(
    source: str | bytes, stamp: float, weighting: Weighting, weights_stamp: float, image_size: int, layer: str, top: int
) -> ShownMaps:
    """One weighting's maps of one image at one layer.

    `stamp` (the image file's mtime) and `weights_stamp` (the weights file's) make an edited file a new entry;
    uploaded bytes are their own key.
    """
    from tlcore.tf.activations import feature_maps  # the TensorFlow side: only once the section computes

    maps = feature_maps(backbone(weighting, image_size), source, layer, top)
    return ShownMaps(maps.shape, maps.shape_text, maps.top_channels, mosaic(maps.maps))


@st.cache_data(max_entries=16, show_spinner=False)
def _display(source: str | bytes, stamp: float, image_size: int) -> np.ndarray:
    """The image as people see it, larger than the network's copy (stamp: the file's mtime)."""
    return load_array(source, max(image_size, DISPLAY_SIZE))
