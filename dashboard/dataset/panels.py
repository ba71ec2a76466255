"""The Dataset page's images: tiles of the grid, and the augmentation controls with their preview."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from dashboard.state import K, augment_from_state
from tlcore.imageio import ImageProblem, load_array
from tlcore.preview import augmentation_is_identity, describe_augmentation

PREVIEW_KEY = "preview_augmentation"  # the toggle: only this page shows the preview
# Whether the preview is on, as plain state: Streamlit forgets a widget's value while another page
# runs, and the toggle is set from this each run, so what it reads and what is shown never differ.
PREVIEW_ON = "preview_augmentation_on"
AUGMENT_MAX = 0.5


@st.cache_data(max_entries=256, show_spinner=False)
def _pixels(path: str, image_size: int, mtime: float) -> np.ndarray | str:
    """The image as the model receives it (square, image_size px), or why it cannot be read.

    mtime is part of the cache key, so a file edited on disk is decoded again.
    """
    try:
        return load_array(path, image_size)
    except ImageProblem as err:  # changed on disk since the scan
        return f"{os.path.basename(path)}: {err}"


def load_tile(path: str | os.PathLike[str], image_size: int) -> np.ndarray | str:
    """The image at the model's size (cached per file version), or why it cannot be read."""
    return _pixels(str(path), image_size, os.path.getmtime(path) if os.path.exists(path) else 0.0)


@st.cache_data(max_entries=256, show_spinner=False)
def _tile_png(path: str, image_size: int, mtime: float) -> bytes | str:
    pixels = _pixels(path, image_size, mtime)
    if isinstance(pixels, str):
        return pixels
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def grid_tile(path: str | os.PathLike[str], image_size: int) -> bytes | str:
    """A grid's tile as PNG bytes, encoded once per file version (the grid is redrawn on every rerun of
    every session), or why it cannot be read."""
    return _tile_png(str(path), image_size, os.path.getmtime(path) if os.path.exists(path) else 0.0)


def show_tile(png: bytes | str, caption: str) -> None:
    """One labelled image of a grid (grid_tile's bytes), or the reason it cannot be shown."""
    if isinstance(png, str):
        st.warning(png)
    else:
        st.image(png, caption=caption, width="stretch")


def _remember_preview() -> None:
    st.session_state[PREVIEW_ON] = st.session_state[PREVIEW_KEY]


def augmentation_section(samples: Sequence[tuple[Path, str]], size: int) -> None:
    """What augmentation is, its settings, and (on request) eight augmented copies of the first sample."""
    st.subheader("Augmentation")
    st.write(
        "Augmentation shows the model a randomly flipped, rotated, zoomed, shifted or re-contrasted version "
        "of every training image in every epoch, so a small dataset goes further. Validation images are never "
        "augmented. The catch: the frozen layers then see new pixels every epoch, so their features cannot be "
        "computed once and cached, and epochs get much slower."
    )
    for key in (K.rotation, K.zoom, K.translation, K.contrast):  # a loaded config may exceed the sliders' range
        st.session_state[key] = min(float(st.session_state[key]), AUGMENT_MAX)
    st.toggle("Use augmentation when training", key=K.augment)
    controls, preview = st.columns([1, 2], gap="large")
    with controls:
        st.checkbox("Horizontal flip", key=K.flip)
        st.slider("Rotation (fraction of a full turn)", 0.0, AUGMENT_MAX, step=0.05, key=K.rotation)
        st.slider("Zoom", 0.0, AUGMENT_MAX, step=0.05, key=K.zoom)
        st.slider("Shift (fraction of width and height)", 0.0, AUGMENT_MAX, step=0.05, key=K.translation)
        st.slider("Contrast", 0.0, AUGMENT_MAX, step=0.05, key=K.contrast)
    augment = augment_from_state(st.session_state)
    with preview:
        st.caption(
            f"Settings: {describe_augmentation(augment)}."
            + ("" if augment.enabled else " Augmentation is off for training; the preview shows what it would do.")
        )
        if not samples:
            st.info("No training image to preview.")
        else:  # the toggle reads what PREVIEW_ON says, however long the learner spent on other pages
            st.session_state[PREVIEW_KEY] = st.session_state.get(PREVIEW_ON, False)
        if samples and st.toggle(
            "Preview augmentation",
            key=PREVIEW_KEY,
            on_change=_remember_preview,
            help="Loads TensorFlow the first time (a few seconds).",
        ):
            path, name = samples[0]
            original = load_tile(path, size)
            if isinstance(original, str):
                st.warning(original)
            elif augmentation_is_identity(augment):
                st.info(
                    "Every augmentation is off, so images would reach the model unchanged. "
                    "Turn on the flip or move a slider to see what augmentation does."
                )
            else:
                with st.spinner("Augmenting (the first time loads TensorFlow)..."):
                    from tlcore.tf.augment import augment_preview  # the TensorFlow side, only when asked

                    images = augment_preview(original, augment, n=8, seed=int(st.session_state[K.grid_seed]))
                tiles = [(original, f"original ({name})")] + [(im, f"augmented {i}") for i, im in enumerate(images, 1)]
                for row in range(0, 9, 3):
                    for column, (pixels, caption) in zip(st.columns(3), tiles[row : row + 3]):
                        column.image(pixels, caption=caption, width="stretch")
