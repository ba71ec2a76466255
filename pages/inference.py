"""Inference page: try a trained model on images (or the camera), see where it looked (Grad-CAM), compare runs
on one image, evaluate it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from dashboard.dataset_source import current_dataset
from dashboard.identity import run_store
from dashboard.inference.compare import compare_section
from dashboard.inference.evaluation import evaluation_section
from dashboard.inference.models import UPLOAD, choose_model, class_names_or_stop, load_or_stop
from dashboard.inference.predictions import explained_class_picker, image_sources, predictions_section
from dashboard.state import K, page_intro
from tlcore.data import DatasetInfo
from tlcore.runs import runs_with_models

if TYPE_CHECKING:
    from dashboard.inference.models import LoadedModel

page_intro(
    "Inference",
    "A trained model meets new images: what it predicts, how sure it is, and which part of "
    "the picture drove the decision (Grad-CAM). Then the honest test: the validation images it never "
    "trained on.",
)
last = str(Path(st.session_state[K.last_run_dir]).resolve()) if st.session_state.get(K.last_run_dir) else None
records = runs_with_models(run_store(), last)  # the run just trained may sit in another runs folder
if not records:
    st.info("No trained model yet. Train one first, or upload a .keras model exported from this app.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/show_chart:")
choice, model_path, record = choose_model(records, last)


def load() -> LoadedModel:
    """The chosen model and its explainer, loaded (and TensorFlow imported) only once something needs them:
    a class of thirty opening this page must not load thirty models to show a picker."""
    return load_or_stop(choice, model_path)


if choice != UPLOAD and record.class_names is not None:  # the lab's own run names its classes
    names = list(record.class_names)
else:  # only the model itself says how many classes an upload has
    from tlcore.tf.inference import num_classes_of

    names = class_names_or_stop(record, num_classes_of(load()[0]), model_path)
info = current_dataset()
usable = info if isinstance(info, DatasetInfo) and list(info.class_names) == names else None

st.subheader("Try it on images")
st.write(
    "Upload photos, pick validation images or take one with the camera: each gets the model's probabilities and "
    "a Grad-CAM map of where it looked. Pick another class for the map to ask why it was *not* that class."
)
items = image_sources(usable, names, record)
explained = explained_class_picker(names) if items else None  # the picker comes with images
shown = predictions_section(*load(), items, names, explained, record) if items else []

compare_section(records, choice, shown, names, explained)
evaluation_section(load, model_path, record, usable, names)
