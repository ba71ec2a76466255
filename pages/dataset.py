"""Dataset page: the images, class balance, skipped files and augmentation.

Renders without TensorFlow: only the augmentation preview loads it, and only
when the learner asks for it.
"""

from __future__ import annotations

import inspect

import streamlit as st

import tlcore.data
from dashboard.chart_cache import show_chart
from dashboard.charts import class_counts_chart
from dashboard.dataset.panels import augmentation_section, grid_tile, show_tile
from dashboard.dataset.photo_maker import photo_maker
from dashboard.dataset_source import require_dataset
from dashboard.identity import where
from dashboard.skipped import skipped_files
from dashboard.state import SOURCE_PHOTOS, K, balance_classes_toggle, page_intro
from tlcore.advisor import imbalance_warnings
from tlcore.data import TRAIN, VALIDATION, sample_grid


def _next_sample() -> None:
    st.session_state[K.grid_seed] += 1


page_intro(
    "Dataset",
    "Transfer learning starts from your images, one folder per class. Look at them before "
    "training: the model can only learn what the pictures show, and problems found here (a lopsided "
    "class, broken files, too few images) turn up later as poor accuracy.",
)
if st.session_state[K.source] == SOURCE_PHOTOS:
    photo_maker()
info = require_dataset()
size = int(st.session_state[K.image_size])
counts = info.counts()
st.markdown(
    f"**{len(info.class_names)} classes:** {', '.join(info.class_names)} — {info.num_images(TRAIN):,} "
    f"training and {info.num_images(VALIDATION):,} validation images in "
    + ("your photos." if st.session_state[K.source] == SOURCE_PHOTOS else where(info.root, f"`{info.root.name}`") + ".")
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
                show_tile(grid_tile(path, size), name)

with stats_col:
    st.subheader("Images per class")
    show_chart(class_counts_chart, counts)
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
        skipped_files(info.skipped, info.root)
    else:
        st.success("Every image file could be read.")
    st.caption(
        f"{len(info.ignored)} other file(s) ignored: hidden files, files that are not images by their "
        "extension, and files outside the class folders."
    )
    for warning in info.warnings:
        st.warning(warning)

augmentation_section(samples, size)

with st.expander("Show the code: how the folder is scanned"):
    st.code(inspect.getsource(tlcore.data.scan), language="python")
