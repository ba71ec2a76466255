"""Dataset page: the images, class balance, skipped files and augmentation.

Renders without TensorFlow: only the augmentation preview loads it, and only
when the learner asks for it.
"""

from __future__ import annotations

import inspect
import os

import numpy as np
import pandas as pd
import streamlit as st

import tlcore.data
from dashboard.charts import class_counts_chart
from dashboard.state import K, augment_from_state, balance_classes_toggle, page_intro, require_dataset
from tlcore.advisor import imbalance_warnings
from tlcore.data import TRAIN, VALIDATION, display_path, sample_grid
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


def _load(path, image_size: int) -> np.ndarray | str:
    return _pixels(str(path), image_size, os.path.getmtime(path) if os.path.exists(path) else 0.0)


def _tile(pixels: np.ndarray | str, caption: str) -> None:
    if isinstance(pixels, str):
        st.warning(pixels)
    else:
        st.image(pixels, caption=caption, width="stretch")


def _next_sample() -> None:
    st.session_state[K.grid_seed] += 1


def _remember_preview() -> None:
    st.session_state[PREVIEW_ON] = st.session_state[PREVIEW_KEY]


page_intro(
    "Dataset",
    "Transfer learning starts from your images, one folder per class. Look at them before "
    "training: the model can only learn what the pictures show, and problems found here (a lopsided "
    "class, broken files, too few images) turn up later as poor accuracy.",
)
info = require_dataset()
size = int(st.session_state[K.image_size])
counts = info.counts()
st.markdown(
    f"**{len(info.class_names)} classes:** {', '.join(info.class_names)} — {info.num_images(TRAIN):,} "
    f"training and {info.num_images(VALIDATION):,} validation images in `{info.root}`."
)

grid_col, stats_col = st.columns([3, 2], gap="large")
with grid_col:
    st.subheader("A sample of the training images")
    st.caption(
        f"16 images, balanced across classes, at {size} × {size} px: exactly what VGG16 gets "
        "(the image size is in the sidebar)."
    )
    st.button("New sample", key="new_sample", icon=":material/shuffle:", on_click=_next_sample)
    samples = sample_grid(info, n=16, split=TRAIN, seed=int(st.session_state[K.grid_seed]))
    for row in range(0, len(samples), 4):
        for column, (path, name) in zip(st.columns(4), samples[row : row + 4]):
            with column:
                _tile(_load(path, size), name)

with stats_col:
    st.subheader("Images per class")
    st.altair_chart(class_counts_chart(counts), width="stretch", theme="streamlit")
    imbalances = imbalance_warnings(counts)
    for message in imbalances:
        st.warning(f"Imbalanced classes: {message}")
    if imbalances:
        st.caption(
            "A model trained on imbalanced classes leans towards the bigger one, and accuracy flatters "
            "it. Collect more of the smaller class, balance the classes in training, or judge the model per "
            "class (Inference page)."
        )
        balance_classes_toggle()
    st.subheader("Files left out")
    if info.skipped:
        # display_path: a name that is not UTF-8 would stop the whole page
        files = [display_path(os.path.relpath(f.path, info.root)) for f in info.skipped]
        st.dataframe(pd.DataFrame({"file": files, "reason": [f.reason for f in info.skipped]}), hide_index=True)
    else:
        st.success("Every image file could be read.")
    st.caption(
        f"{len(info.ignored)} other file(s) ignored: hidden files, files that are not images by their "
        "extension, and files outside the class folders."
    )
    for warning in info.warnings:
        st.warning(warning)

st.subheader("Augmentation")
st.write(
    "Augmentation shows the model a randomly flipped, rotated, zoomed, shifted or re-contrasted version "
    "of every training image in every epoch, so a small dataset goes further. Validation images are never "
    "augmented. The catch: the frozen layers then see new pixels every epoch, so their features cannot be "
    "computed once and cached, and epochs get much slower."
)
for key in (K.rotation, K.zoom, K.translation, K.contrast):  # a loaded config may exceed the sliders' range
    st.session_state[key] = min(float(st.session_state[key]), AUGMENT_MAX)
controls, preview = st.columns([1, 2], gap="large")
with controls:
    st.toggle("Use augmentation when training", key=K.augment)
    st.checkbox("Horizontal flip", key=K.flip)
    st.slider("Rotation (fraction of a full turn)", 0.0, AUGMENT_MAX, step=0.05, key=K.rotation)
    st.slider("Zoom", 0.0, AUGMENT_MAX, step=0.05, key=K.zoom)
    st.slider("Shift (fraction of width and height)", 0.0, AUGMENT_MAX, step=0.05, key=K.translation)
    st.slider("Contrast", 0.0, AUGMENT_MAX, step=0.05, key=K.contrast)
s = st.session_state
augment = augment_from_state(s)
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
        original = _load(path, size)
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

with st.expander("Show the code: how the folder is scanned"):
    st.code(inspect.getsource(tlcore.data.scan), language="python")
