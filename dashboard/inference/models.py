"""The Inference page's models: a run's or an uploaded .keras, chosen, loaded once and shared, with its class names."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import streamlit as st

from dashboard import housekeeping
from dashboard.identity import owner
from dashboard.tables import describe_run
from tlcore.modelfile import ModelLoadError, model_labels
from tlcore.process_memory import collect_garbage
from tlcore.records import RunRecord
from tlcore.run_folder import MODEL_FILE
from tlcore.runs import read_run_json
from tlcore.uploads import save_uploaded_model

if TYPE_CHECKING:  # the TensorFlow side: imported once a model is chosen
    import keras

    from tlcore.tf.gradcam import Explainer

    LoadedModel: TypeAlias = tuple[keras.Model, Explainer | None]  # a model and its Grad-CAM explainer, if any

UPLOAD = "upload"  # the model picker's last option: a .keras file from the user
MODEL_KEY, SEEN_LAST_KEY = "inference_model", "inference_seen_last"


@st.cache_resource(max_entries=4, show_spinner="Loading the model...", on_release=collect_garbage)
def cached_model(path: str, mtime: float) -> LoadedModel:
    """The model at path (checked, safe mode) and its Grad-CAM explainer, shared by every session."""
    # Keyed on mtime too, so a re-saved file is reloaded. Sharing is safe: each
    # run's model is its own file, and inference only reads the weights.
    from tlcore.tf.gradcam import explainer_for  # the TensorFlow side: only once a model is chosen
    from tlcore.tf.inference import check_image_classifier
    from tlcore.tf.model import load_model

    model = load_model(path)  # refuses files that could run code (Lambda layers, foreign modules)
    check_image_classifier(model)
    return model, explainer_for(model)


def run_model(run_dir: str) -> LoadedModel:
    """`cached_model` of a run folder's model file.

    Raises:
        ModelLoadError, OSError: refused, or deleted since the runs were listed.
    """
    path = Path(run_dir) / MODEL_FILE
    return cached_model(str(path), path.stat().st_mtime)


def choose_model(records: dict[str, RunRecord], last: str | None) -> tuple[str, str, RunRecord]:
    """The model picker: (the choice, its model file, its record). A run just trained is chosen for the learner."""
    if last in records and st.session_state.get(SEEN_LAST_KEY) != last:  # a new run: show it
        st.session_state[SEEN_LAST_KEY] = st.session_state[MODEL_KEY] = last
    if st.session_state.get(MODEL_KEY) not in [*records, UPLOAD]:
        st.session_state.pop(MODEL_KEY, None)  # deleted since: fall back to the newest

    def label(path: str) -> str:
        if path == UPLOAD:
            return "Upload a .keras file…"
        return f"{'★ just trained · ' if path == last else ''}{describe_run(records[path])}"

    choice = st.selectbox("Model", [*records, UPLOAD], format_func=label, key=MODEL_KEY)
    if choice == UPLOAD:
        return (choice, *uploaded_model())
    return choice, str(Path(choice) / MODEL_FILE), records[choice]


def load_or_stop(choice: str, model_path: str) -> LoadedModel:
    """`cached_model` of the chosen file; a file that cannot be loaded is said in words and the page stops."""
    try:
        return cached_model(model_path, Path(model_path).stat().st_mtime)
    except (ModelLoadError, OSError) as err:  # refused, or the run's file deleted meanwhile
        if choice == UPLOAD:
            Path(model_path).unlink(missing_ok=True)  # keep no copy of a file that is not a usable model
        st.error(f"This model cannot be loaded: {err}")
        st.stop()


def class_names_or_stop(record: RunRecord, outputs: int, model_path: str) -> list[str]:
    """The model's class names: from its record, else typed by the learner; a count that does not fit stops."""
    names = record.class_names
    if names is None:
        text = st.text_input(
            "Class names, in training order",
            ", ".join(f"class {i}" for i in range(outputs)),
            key=f"inference_names_{Path(model_path).stem}",
        )
        names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) != outputs:
        st.error(f"The model predicts {outputs} classes but {len(names)} class names were given: {names}")
        st.stop()
    return list(names)


def uploaded_model() -> tuple[str, RunRecord]:
    """The uploaded model's path (named after its content, so reruns reuse the loaded copy) and its record.

    A model downloaded from this lab names its classes itself (`tlcore.modelfile.model_labels`); for another
    one, its run.json or the names typed below. The copy goes when the session ends, like an uploaded .zip.
    """
    upload = st.file_uploader("A .keras model exported from this app", type=["keras"], key="inference_model_upload")
    record = st.file_uploader(
        "Its run.json (optional)",
        type=["json"],
        key="inference_record_upload",
        help="Models downloaded from this lab carry their class names. For an older one, run.json from the "
        "same run folder has them; without it, name the classes below.",
    )
    if upload is None:
        st.stop()
    path = str(save_uploaded_model(upload.getvalue()))
    housekeeping.tracker().track_model(path, housekeeping.session_id(), owner())
    if record is None:
        return path, RunRecord(class_names=model_labels(path))
    try:
        return path, read_run_json(record.getvalue())
    except ValueError:
        st.warning(f"{record.name} is not a run.json from this app; name the classes below.")
        return path, RunRecord()
