"""The Inference page's models: a run's or an uploaded .keras, loaded once and shared."""

from __future__ import annotations

from typing import Any

import streamlit as st

from tlcore.runs import RunRecord, read_run_json
from tlcore.uploads import save_uploaded_model


@st.cache_resource(max_entries=4, show_spinner="Loading the model...")
def cached_model(path: str, mtime: float) -> tuple[Any, Any]:
    """The model at path (checked, safe mode) and its Grad-CAM explainer, shared by every session."""
    # Keyed on mtime too, so a re-saved file is reloaded. Sharing is safe: each
    # run's model is its own file, and inference only reads the weights.
    from tlcore.tf.gradcam import explainer_for  # the TensorFlow side: only once a model is chosen
    from tlcore.tf.inference import check_image_classifier
    from tlcore.tf.model import load_model

    model = load_model(path)  # refuses files that could run code (Lambda layers, foreign modules)
    check_image_classifier(model)
    return model, explainer_for(model)


def uploaded_model() -> tuple[str, RunRecord]:
    """The uploaded model's path (named after its content, so reruns reuse the loaded copy) and its run.json."""
    upload = st.file_uploader("A .keras model exported from this app", type=["keras"], key="inference_model_upload")
    record = st.file_uploader(
        "Its run.json (optional)",
        type=["json"],
        key="inference_record_upload",
        help="A .keras file holds weights but not class names; run.json from the same "
        "run folder does. Without it, name the classes below.",
    )
    if upload is None:
        st.stop()
    path = str(save_uploaded_model(upload.getvalue()))
    if record is None:
        return path, RunRecord()
    try:
        return path, read_run_json(record.getvalue())
    except ValueError:
        st.warning(f"{record.name} is not a run.json from this app; name the classes below.")
        return path, RunRecord()
