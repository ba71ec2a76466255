"""Inference page: try a trained model on images (or the camera), see where it looked (Grad-CAM), compare runs
on one image, evaluate it."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.identity import run_store
from dashboard.inference_panel import explained_class_picker, image_sources
from dashboard.models import choose_model, class_names_or_stop, load_or_stop
from dashboard.state import K, current_dataset, page_intro
from tlcore.data import DatasetInfo
from tlcore.runs import runs_with_models

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
model, explainer = load_or_stop(choice, model_path)
# TensorFlow is imported only now that there is a model: the page's first screen comes without it.
from dashboard.compare_panel import compare_section  # noqa: E402
from dashboard.evaluation_panel import evaluation_section  # noqa: E402
from dashboard.inference_panel import predictions_section  # noqa: E402
from tlcore.tf.inference import num_classes_of  # noqa: E402

names = class_names_or_stop(record, num_classes_of(model), model_path)
info = current_dataset()
usable = info if isinstance(info, DatasetInfo) and list(info.class_names) == names else None

st.subheader("Try it on images")
st.write(
    "Upload photos, pick validation images or take one with the camera: each gets the model's probabilities and "
    "a Grad-CAM map of where it looked. Pick another class for the map to ask why it was *not* that class."
)
items = image_sources(usable, names, record)
explained = explained_class_picker(names) if items else None  # the picker comes with images
shown = predictions_section(model, explainer, items, names, explained, record)

compare_section(records, choice, shown, names, explained)
evaluation_section(model, explainer, model_path, record, usable, names)
