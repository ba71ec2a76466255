"""The Inference page's "Try it on images": images uploaded, picked from the validation split or taken with the
camera, each predicted and explained (Grad-CAM for its predicted class or for one the learner picks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from dashboard.charts import gradcam_colorbar, probabilities_chart
from tlcore.data import DatasetInfo
from tlcore.imageio import IMAGE_EXTENSIONS, ImageProblem, load_array
from tlcore.records import RunRecord
from tlcore.run_folder import MODEL_FILE

if TYPE_CHECKING:
    import keras

    from tlcore.tf.gradcam import Explainer
    from tlcore.tf.inference import Explanation
    from tlcore.tf.neighbours import Examples

UPLOAD_KEY, PICK_KEY, CAMERA_ON_KEY, CAMERA_KEY, EXPLAINED_KEY = (
    "inference_images",
    "inference_pick",
    "inference_camera_on",
    "inference_camera",
    "inference_explained_class",
)
SHOWN, THUMB, NEIGHBOUR_THUMB = 12, 224, 112
CAMERA_NAME = "camera snapshot"
PREDICTED = "\x00predicted"  # the class picker's first option: each image's own prediction (no class is named so)
CAMERA_HELP = (
    "Browsers give a page the camera only on localhost or over HTTPS: opened as http://<address>:8501 "
    "from another computer, the camera stays off (upload a photo instead)."
)

Source = tuple[str, bytes | str]  # (the name people see, the image's bytes or its path)


def short(path: str) -> str:
    """A validation image as "class/file"."""
    return f"{Path(path).parent.name}/{Path(path).name}"


def image_sources(info: DatasetInfo | None, names: Sequence[str], record: RunRecord) -> list[Source]:
    """The images to try, camera snapshot first: uploads, a validation image (`info`: the dataset the model was
    trained on, None when the sidebar's is another) and, behind a toggle, the camera.

    Nothing is written anywhere: the snapshot's and the uploads' bytes live in the session only.
    """
    left, right = st.columns(2)
    uploads = left.file_uploader(
        "Upload images", type=sorted(e[1:] for e in IMAGE_EXTENSIONS), accept_multiple_files=True, key=UPLOAD_KEY
    )
    picked = None
    if info is not None:
        picked = right.selectbox(
            "…or pick a validation image",
            [str(p) for p in info.items("validation")[0]],
            index=None,
            key=PICK_KEY,
            format_func=short,
            placeholder="Choose a class/file",
        )
    else:
        trained_on = record.dataset.root if record.dataset else None
        right.info(
            f"To pick validation images and evaluate, choose in the sidebar the dataset this model was trained on"
            f"{f' (`{trained_on}`)' if trained_on else ''}: its classes are {', '.join(names)}."
        )
    with right:
        snapshot = camera_snapshot()
    return (
        ([(CAMERA_NAME, snapshot)] if snapshot else [])
        + [(u.name, u.getvalue()) for u in uploads or []]
        + ([(short(picked), picked)] if picked else [])
    )


def camera_snapshot() -> bytes | None:
    """A photo from the camera, behind a toggle so that the browser asks for the camera only when wanted."""
    if not st.toggle("…or take a photo with the camera", key=CAMERA_ON_KEY, help=CAMERA_HELP):
        st.caption("Browsers give the camera only on localhost or over HTTPS. Photos are not stored.")
        return None
    shot = st.camera_input("Camera", key=CAMERA_KEY, label_visibility="collapsed", help=CAMERA_HELP)
    st.caption(
        "Nothing is stored: the photo stays in this browser tab's session. No picture? "
        "Browsers give the camera only on localhost or over HTTPS."
    )
    return shot.getvalue() if shot is not None else None


def explained_class_picker(names: Sequence[str]) -> str | None:
    """Which class Grad-CAM explains: None for each image's predicted class ("why not the other class")."""
    options = [PREDICTED, *names]
    if st.session_state.get(EXPLAINED_KEY) not in options:  # another model, other classes
        st.session_state[EXPLAINED_KEY] = PREDICTED
    choice = st.radio(
        "Grad-CAM for",
        options,
        format_func=lambda c: "the predicted class" if c == PREDICTED else f"“{c}”",
        horizontal=True,
        key=EXPLAINED_KEY,
        help="Pick a class to see what in the image speaks for it, even when the model chose another.",
    )
    return None if choice == PREDICTED else choice


def known_classes_note(names: Sequence[str], output: str = "softmax") -> str:
    """The one line that says what a probability here cannot mean (`output`: the head's last activation)."""
    return (
        f"The model must choose among the classes it knows: its probabilities for {', '.join(names)} always add "
        f"up to 100 % ({output}), so a picture of none of them (a dessert shown to an animals/vehicles model) still "
        "gets a confident answer. A high probability says which known class fits best, not that the image is one."
    )


def predictions_section(
    model: keras.Model,
    explainer: Explainer | None,
    items: list[Source],
    names: Sequence[str],
    explained: str | None,
    record: RunRecord,
) -> list[Source]:
    """Predict and explain the images; returns the usable ones (the comparison below takes one of them)."""
    from tlcore.tf.gradcam import colorbar_colours  # TensorFlow: the page imports it once a model is loaded
    from tlcore.tf.inference import explain, image_size_of

    if len(items) > SHOWN:
        st.warning(f"Showing the first {SHOWN} of {len(items)} images.")
    results, problems = explain(model, explainer, items[:SHOWN], names, display_size=THUMB, explained_class=explained)
    for name, reason in problems:
        st.error(f"**{name}** cannot be used: {reason}")
    if not results:
        return []
    if results[0].heatmap is not None:
        grid = "x".join(str(side) for side in results[0].heatmap.shape)
        st.caption(
            f"Grad-CAM: red marks the regions whose features raised the class's score (before the softmax or "
            f"sigmoid); that class is each image's prediction unless you pick another. At {image_size_of(model)} px "
            f"VGG16's last convolution sees a {grid} grid, so the map is coarse."
        )
        # One colour bar for every overlay below: under each one it would not fit a narrow window's column.
        st.altair_chart(gradcam_colorbar(THUMB, colorbar_colours(THUMB)), width="content", theme="streamlit")
    output = record.config.head.output if record.config else "softmax"  # an upload without run.json: the usual
    st.caption(f":material/info: {known_classes_note(names, output)}")
    examples = examples_for(record, model)
    sources = dict(items)
    for r in results:
        _show(r, image_size_of(model))
        if examples is not None:
            neighbours_row(examples, sources[r.name])
    if examples is not None and examples.note:
        st.caption(examples.note)
    bad = {name for name, _ in problems}
    return [item for item in items[:SHOWN] if item[0] not in bad]


def overlay_caption(r: Explanation) -> str:
    """What an overlay shows: where the model looked for a class, and how likely it found that class if not its pick."""
    if r.explained_class == r.top_class:
        return f"where it looked for “{r.explained_class}”"
    return f"where it looked for “{r.explained_class}” ({r.probabilities[r.explained_class]:.0%}, not its pick)"


@st.cache_resource(max_entries=4, show_spinner="Finding the training images most like each one (once per model)...")
def _examples(run_dir: str, model_mtime_ns: int, _record: RunRecord, _model: keras.Model) -> Examples:
    """The run's training images as vectors (`tlcore.tf.neighbours`), once per run and model file."""
    from tlcore.tf.neighbours import Examples

    return Examples.of(run_dir, _record, _model)


def examples_for(record: RunRecord, model: keras.Model) -> Examples | None:
    """The lab's own run's training images as neighbours; None for a model uploaded from elsewhere."""
    model_file = record.run_dir / MODEL_FILE if record.run_dir else None
    if model_file is None or not model_file.is_file():
        return None
    return _examples(str(record.run_dir), model_file.stat().st_mtime_ns, record, model)


def neighbours_row(examples: Examples, image: bytes | str) -> None:
    """The five training images the model finds most like `image`, with their labels and cosine similarities."""
    found = examples.nearest(image)
    if not found:
        return
    st.caption("Most like it among the training images, as the head sees them (cosine similarity of the head's input):")
    # One row of squares as the model sees them (the Dataset grid's way), wrapping on a phone.
    tiles, captions = [], []
    for n in found:
        try:
            tiles.append(load_array(n.file, NEIGHBOUR_THUMB))
        except (ImageProblem, OSError):  # changed on disk since its vector was made: left out
            continue
        captions.append(f"{n.label} · {n.similarity:.2f}")
    if tiles:
        st.image(tiles, width=NEIGHBOUR_THUMB, caption=captions)


def _show(r: Explanation, size: int) -> None:
    st.markdown(f"**{r.name}**")
    original, heat, chart = st.columns([1, 1, 1.4])
    # "content": THUMB px, or the column's width when a narrow window makes it smaller.
    original.image(r.display, width="content", caption=f"the image ({size} px to the model)")
    if r.overlay is not None:
        heat.image(r.overlay, width="content", caption=overlay_caption(r))
    elif r.gradcam_note:
        heat.info(r.gradcam_note)
    with chart:
        st.metric(
            "Prediction", r.top_class, f"{r.top_probability:.1%} probability", delta_color="off", delta_arrow="off"
        )
        st.altair_chart(probabilities_chart(r.probabilities, r.top_class), width="stretch", theme="streamlit")
