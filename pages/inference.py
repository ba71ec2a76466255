"""Inference page: try a trained model on images, see where it looked (Grad-CAM), evaluate it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from pages.ui import K, current_dataset, page_intro
from tlcore.data import DatasetInfo
from tlcore.imageio import IMAGE_EXTENSIONS, ImageProblem
from tlcore.inference import evaluate, gradcam, gradcam_model, image_size_of, probabilities, to_pixels
from tlcore.model import load_model
from tlcore.pipeline import load_split
from tlcore.plots import confusion_matrix_figure, gradcam_overlay
from tlcore.runs import MODEL_FILE, RunStore, atomic_write, load_record
from tlcore.uploads import UPLOAD_DIR_ENV

UPLOAD, SHOWN, THUMB = "upload", 12, 224


@st.cache_resource(max_entries=4, show_spinner="Loading the model...")
def cached_model(path: str, mtime: float):
    # Keyed on mtime too, so a re-saved file is reloaded. Sharing is safe: each
    # run's model is its own file, and inference only reads the weights.
    model = load_model(path)
    try:
        return model, gradcam_model(model)
    except ValueError:  # not a VGG16 from this app: no block5_conv3 to explain
        return model, None


def run_label(path: str, records: dict[str, dict], last: str | None) -> str:
    if path == UPLOAD:
        return "Upload a .keras file…"
    r = records[path]
    c, acc = r["config"], f"{r['history'][-1]['val_accuracy']:.0%}" if r["history"] else "—"
    try:  # stored in UTC; shown in local time, as on the Runs page
        created = datetime.fromisoformat(r["created"]).astimezone().strftime("%Y-%m-%d %H:%M")
    except (KeyError, ValueError):
        created = "?"
    freeze = f"{c['freeze_at']}→{c['fine_tune']['freeze_at']}" if c.get("fine_tune") else c["freeze_at"]
    start = "scratch" if c["weights"] == "none" else "pretrained"
    return (f"{'★ just trained · ' if path == last else ''}{created} · {Path(path).name[-6:]} · {start}, "
            f"freeze {freeze} · val acc {acc} · {r['status']}")


def uploaded_model() -> tuple[str, dict]:
    """Save an uploaded model under a name made from its content, so reruns reuse the loaded copy."""
    upload = st.file_uploader("A .keras model exported from this app", type=["keras"], key="inference_model_upload")
    record = st.file_uploader("Its run.json (optional)", type=["json"], key="inference_record_upload",
                              help="A .keras file holds weights but not class names; run.json from the same "
                                   "run folder does. Without it, name the classes below.")
    if upload is None:
        st.stop()
    data = upload.getvalue()
    folder = Path(os.environ.get(UPLOAD_DIR_ENV) or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"tllab-upload-{hashlib.sha256(data).hexdigest()[:16]}.keras"
    if not path.exists():
        atomic_write(path, data)
    try:
        parsed = json.loads(record.getvalue()) if record else {"class_names": None}
        if not isinstance(parsed, dict) or not isinstance(parsed.get("class_names"), (list, type(None))):
            raise ValueError("no class_names list")
        return str(path), parsed
    except ValueError:
        st.warning(f"{record.name} is not a run.json from this app; name the classes below.")
        return str(path), {}


def short(path: str) -> str:
    return f"{Path(path).parent.name}/{Path(path).name}"


def want_evaluation(key: str) -> None:
    st.session_state["inference_eval_wanted"] = key


page_intro("Inference", "A trained model meets new images: what it predicts, how sure it is, and which part of "
           "the picture drove the decision (Grad-CAM). Then the honest test: the validation images it never "
           "trained on.")
last = str(Path(st.session_state[K.last_run_dir]).resolve()) if st.session_state.get(K.last_run_dir) else None
records = {str(s.run_dir.resolve()): s.record for s in RunStore().list() if (s.run_dir / MODEL_FILE).is_file()}
if last and last not in records and (Path(last) / MODEL_FILE).is_file():  # trained into another runs folder
    records = {last: load_record(Path(last)), **records}
if not records:
    st.info("No trained model yet. Train one first, or upload a .keras model exported from this app.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/show_chart:")
if last in records and st.session_state.get("inference_seen_last") != last:  # a new run: show it
    st.session_state["inference_seen_last"] = st.session_state["inference_model"] = last
if st.session_state.get("inference_model") not in [*records, UPLOAD]:
    st.session_state.pop("inference_model", None)  # deleted since: fall back to the newest
choice = st.selectbox("Model", [*records, UPLOAD], format_func=lambda p: run_label(p, records, last),
                      key="inference_model")
model_path, record = uploaded_model() if choice == UPLOAD else (str(Path(choice) / MODEL_FILE), records[choice])
names = record.get("class_names")
try:
    model, explainer = cached_model(model_path, Path(model_path).stat().st_mtime)
except Exception as err:  # Keras raises many types for a file that is not a model it can load safely
    if choice == UPLOAD:
        Path(model_path).unlink(missing_ok=True)  # keep no copy of a file that is not a usable model
    st.error(f"This model cannot be loaded: {err}")
    st.stop()
size, outputs = image_size_of(model), max(2, int(model.output_shape[-1]))  # a sigmoid head is 2 classes
if names is None:
    text = st.text_input("Class names, in training order", ", ".join(f"class {i}" for i in range(outputs)),
                         key=f"inference_names_{Path(model_path).stem}")
    names = [n.strip() for n in text.split(",") if n.strip()]
if len(names) != outputs:
    st.error(f"The model predicts {outputs} classes but {len(names)} class names were given: {names}")
    st.stop()

st.subheader("Try it on images")
left, right = st.columns(2)
uploads = left.file_uploader("Upload images", type=sorted(e[1:] for e in IMAGE_EXTENSIONS),
                             accept_multiple_files=True, key="inference_images")
info = current_dataset()
usable = isinstance(info, DatasetInfo) and list(info.class_names) == list(names)
if usable:
    files = [str(p) for p in info.items("validation")[0]]
    picked = right.selectbox("…or pick a validation image", files, index=None, key="inference_pick",
                             format_func=short, placeholder="Choose a class/file")
else:
    picked = None
    trained_on = record.get("dataset", {}).get("root")
    right.info(f"To pick validation images and evaluate, choose in the sidebar the dataset this model was trained on"
               f"{f' (`{trained_on}`)' if trained_on else ''}: its classes are {', '.join(names)}.")
items = [(u.name, u.getvalue()) for u in uploads or []] + ([(short(picked), picked)] if picked else [])
if len(items) > SHOWN:
    st.warning(f"Showing the first {SHOWN} of {len(items)} images.")
decoded = []
for name, source in items[:SHOWN]:
    try:  # the model sees `size` px; people see a larger copy
        decoded.append((name, to_pixels(source, size), to_pixels(source, max(size, THUMB))))
    except ImageProblem as err:
        st.error(f"**{name}** cannot be used: {err}")
results = []
if decoded:
    probs = probabilities(model, np.stack([pixels for _, pixels, _ in decoded]))
    st.caption(f"Grad-CAM: red marks the regions whose features raised the predicted class's score. At {size} px "
               f"VGG16's last convolution sees a {size // 16}x{size // 16} grid, so the map is coarse.")
for (name, pixels, display), row in zip(decoded, probs if decoded else []):
    best = int(np.argmax(row))
    results.append({"name": name, "probabilities": dict(zip(names, map(float, row))), "top_class": names[best]})
    st.markdown(f"**{name}**")
    original, heat, chart = st.columns([1, 1, 1.4])
    original.image(display, width=THUMB, caption=f"the image ({size} px to the model)")
    if explainer is not None:
        heatmap, _ = gradcam(model, pixels, best, grad_model=explainer)
        heat.image(gradcam_overlay(display, heatmap), width=THUMB, caption=f"where it looked for “{names[best]}”")
    with chart:
        st.metric("Prediction", names[best], f"{row[best]:.1%} probability", delta_color="off", delta_arrow="off")
        st.bar_chart(pd.Series(row, index=names, name="probability"), horizontal=True, height=60 + 30 * len(names))
st.session_state["inference_results"] = results

st.subheader("Evaluate on the validation split")
if usable:
    files_now = {os.path.relpath(p, info.root) for p in info.items("validation")[0]}
    if record.get("validation_files") and files_now != set(record["validation_files"]):
        st.warning("This validation split is not the one this run held out (different folder, files or split "
                   "fraction): some of these images may have been trained on, so accuracy can look too good.")
    split_id = hashlib.sha256("\n".join(sorted(files_now)).encode()).hexdigest()[:16]
    key = f"{model_path}|{Path(model_path).stat().st_mtime}|{info.root}|{split_id}"
    cached = st.session_state.get("inference_eval")
    if (cached is None or cached[0] != key) and st.session_state.get("inference_eval_wanted") == key:
        with st.spinner("Predicting every validation image..."):
            images = load_split(info, "validation", size)
            cached = st.session_state["inference_eval"] = (key, evaluate(model, images, names))
    if cached is None or cached[0] != key:
        # A callback, not `if st.button(...)`: the request survives a rerun that happens before this line.
        st.button("Evaluate on the validation split", key="inference_evaluate", on_click=want_evaluation, args=(key,))
    else:
        ev = cached[1]
        st.metric("Validation accuracy", f"{ev.accuracy:.1%}", help=f"{int(ev.confusion.sum())} images")
        matrix, table = st.columns([2, 3])
        matrix.pyplot(confusion_matrix_figure(ev.confusion, names), clear_figure=True)
        per_class = pd.DataFrame({"class": names, "images": ev.confusion.sum(axis=1),
                                  "correct": np.diag(ev.confusion), "accuracy": list(ev.per_class_accuracy().values())})
        table.dataframe(per_class, hide_index=True,
                        column_config={"accuracy": st.column_config.ProgressColumn(format="percent", max_value=1.0)})
        st.write("**Where it struggles:** the validation images with the highest loss, confident mistakes first "
                 "(✗ wrong, ✓ right but unsure).")
        for column, item in zip(st.columns(4) * 2, ev.top_losses(8)):
            mark = "✓" if item["true"] == item["predicted"] else "✗"
            caption = f"{mark} true: {item['true']} · predicted: {item['predicted']} ({item['probability']:.0%})"
            try:
                column.image(to_pixels(item["path"], 160), caption=caption)
            except ImageProblem as err:  # changed on disk since the evaluation
                column.caption(f"{Path(item['path']).name}: {err} — {caption}")
else:
    st.caption("Needs the dataset this model was trained on (see above).")
