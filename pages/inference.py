"""Inference page: try a trained model on images, see where it looked (Grad-CAM), evaluate it."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.charts import gradcam_colorbar, probabilities_chart
from dashboard.models import cached_model, uploaded_model
from dashboard.state import K, current_dataset, page_intro
from dashboard.tables import describe_run
from tlcore.data import DatasetInfo
from tlcore.imageio import IMAGE_EXTENSIONS
from tlcore.modelfile import ModelLoadError
from tlcore.runs import MODEL_FILE, RunStore, runs_with_models

UPLOAD, SHOWN, THUMB = "upload", 12, 224


def run_label(path: str) -> str:
    if path == UPLOAD:
        return "Upload a .keras file…"
    return f"{'★ just trained · ' if path == last else ''}{describe_run(records[path])}"


def short(path: str) -> str:
    return f"{Path(path).parent.name}/{Path(path).name}"


page_intro(
    "Inference",
    "A trained model meets new images: what it predicts, how sure it is, and which part of "
    "the picture drove the decision (Grad-CAM). Then the honest test: the validation images it never "
    "trained on.",
)
last = str(Path(st.session_state[K.last_run_dir]).resolve()) if st.session_state.get(K.last_run_dir) else None
records = runs_with_models(RunStore(), last)  # the run just trained may sit in another runs folder
if not records:
    st.info("No trained model yet. Train one first, or upload a .keras model exported from this app.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/show_chart:")
if last in records and st.session_state.get("inference_seen_last") != last:  # a new run: show it
    st.session_state["inference_seen_last"] = st.session_state["inference_model"] = last
if st.session_state.get("inference_model") not in [*records, UPLOAD]:
    st.session_state.pop("inference_model", None)  # deleted since: fall back to the newest
choice = st.selectbox("Model", [*records, UPLOAD], format_func=run_label, key="inference_model")
model_path, record = uploaded_model() if choice == UPLOAD else (str(Path(choice) / MODEL_FILE), records[choice])
try:
    model, explainer = cached_model(model_path, Path(model_path).stat().st_mtime)
except (ModelLoadError, OSError) as err:  # refused, or the run's file deleted meanwhile
    if choice == UPLOAD:
        Path(model_path).unlink(missing_ok=True)  # keep no copy of a file that is not a usable model
    st.error(f"This model cannot be loaded: {err}")
    st.stop()
# TensorFlow is imported only now that there is a model: the page's first screen comes without it.
from dashboard.evaluation_panel import evaluation_section  # noqa: E402
from tlcore.tf.gradcam import colorbar_colours  # noqa: E402
from tlcore.tf.inference import explain, image_size_of, num_classes_of  # noqa: E402

size, outputs, names = image_size_of(model), num_classes_of(model), record.class_names
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

st.subheader("Try it on images")
left, right = st.columns(2)
uploads = left.file_uploader(
    "Upload images", type=sorted(e[1:] for e in IMAGE_EXTENSIONS), accept_multiple_files=True, key="inference_images"
)
info = current_dataset()
usable, picked = isinstance(info, DatasetInfo) and list(info.class_names) == list(names), None
if usable:
    picked = right.selectbox(
        "…or pick a validation image",
        [str(p) for p in info.items("validation")[0]],
        index=None,
        key="inference_pick",
        format_func=short,
        placeholder="Choose a class/file",
    )
else:
    trained_on = record.dataset.root if record.dataset else None
    right.info(
        f"To pick validation images and evaluate, choose in the sidebar the dataset this model was trained on"
        f"{f' (`{trained_on}`)' if trained_on else ''}: its classes are {', '.join(names)}."
    )
items = [(u.name, u.getvalue()) for u in uploads or []] + ([(short(picked), picked)] if picked else [])
if len(items) > SHOWN:
    st.warning(f"Showing the first {SHOWN} of {len(items)} images.")
results, problems = explain(model, explainer, items[:SHOWN], names, display_size=THUMB)
for name, reason in problems:
    st.error(f"**{name}** cannot be used: {reason}")
if results and results[0].heatmap is not None:
    grid = "x".join(str(side) for side in results[0].heatmap.shape)
    st.caption(
        f"Grad-CAM: red marks the regions whose features raised the predicted class's score (before the "
        f"softmax or sigmoid). At {size} px VGG16's last convolution sees a {grid} grid, so the map is coarse."
    )
for r in results:
    st.markdown(f"**{r.name}**")
    original, heat, chart = st.columns([1, 1, 1.4])
    original.image(r.display, width=THUMB, caption=f"the image ({size} px to the model)")
    if r.overlay is not None:
        heat.image(r.overlay, width=THUMB, caption=f"where it looked for “{r.top_class}”")
        heat.altair_chart(gradcam_colorbar(THUMB, colorbar_colours(THUMB)), width="content", theme="streamlit")
    elif r.gradcam_note:
        heat.info(r.gradcam_note)
    with chart:
        st.metric(
            "Prediction", r.top_class, f"{r.top_probability:.1%} probability", delta_color="off", delta_arrow="off"
        )
        st.altair_chart(probabilities_chart(r.probabilities, r.top_class), width="stretch", theme="streamlit")

evaluation_section(model, model_path, record, info if usable else None, names)
