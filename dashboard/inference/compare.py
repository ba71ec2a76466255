"""The Inference page's comparison: one image under two or three runs side by side (Grad-CAM, prediction, run)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from dashboard.inference.models import run_model
from dashboard.inference.predictions import THUMB, Source, overlay_caption
from dashboard.tables import describe_run, setup_text
from tlcore.imageio import ImageProblem
from tlcore.modelfile import ModelLoadError
from tlcore.records import RunRecord
from tlcore.run_folder import MODEL_FILE
from tlcore.runs import class_mismatch

if TYPE_CHECKING:
    from tlcore.tf.inference import Explanation

RUNS_KEY, IMAGE_KEY = "inference_compare_runs", "inference_compare_image"
PICKED_KEY = "inference_compare_picked"  # True once the learner has changed the runs
MAX_COMPARED = 3


def compare_section(
    records: dict[str, RunRecord], chosen: str, images: list[Source], names: Sequence[str], explained: str | None
) -> None:
    """Pick two or three runs and one of the images above; one column per run: overlay, prediction, the run."""
    st.subheader("Compare runs on one image")
    st.write(
        "The same picture under a pretrained, a fine-tuned and a from-scratch run shows what transfer changes: "
        "where each model looks, and how sure it is. Each run sees the image at its own input size and explains "
        "the class picked above."
    )
    if not records:
        st.caption("No saved run to compare: train a few first.")
        return
    picks = st.session_state.get(RUNS_KEY)
    # Until the learner picks, the comparison starts from the model chosen above; a run deleted since starts it again.
    if picks is None or not st.session_state.get(PICKED_KEY) or not set(picks) <= set(records):
        st.session_state[RUNS_KEY] = [chosen] if chosen in records else []
        st.session_state[PICKED_KEY] = False
    runs_column, image_column = st.columns([3, 2])
    picked = runs_column.multiselect(
        f"Runs (up to {MAX_COMPARED})",
        list(records),
        format_func=lambda path: run_tag(records[path]),
        max_selections=MAX_COMPARED,
        key=RUNS_KEY,
        on_change=st.session_state.update,
        kwargs={PICKED_KEY: True},
        placeholder="Pick runs, e.g. pretrained, fine-tuned and from scratch",
    )
    if not images:
        image_column.info("Upload, pick or take a picture above to compare the runs on it.")
        return
    by_name = dict(images)
    if st.session_state.get(IMAGE_KEY) not in by_name:
        st.session_state[IMAGE_KEY] = images[0][0]
    name = image_column.selectbox("Image", list(by_name), key=IMAGE_KEY)
    shown = []
    for path in picked:
        reason = class_mismatch(records[path], names)
        if reason is None:
            shown.append(path)
        else:
            st.warning(f"**{describe_run(records[path])}** cannot be compared here: {reason}.")
    if len(shown) < 2:
        st.caption(f"Pick two or three runs of {', '.join(names)} to see them side by side.")
        return
    try:
        results = _explained(tuple(_stamped(path) for path in shown), name, by_name[name], tuple(names), explained)
    except (ModelLoadError, OSError) as err:  # a run's file refused, or deleted meanwhile
        st.error(f"A run's model cannot be loaded: {err}")
        return
    except ImageProblem as err:
        st.error(f"**{name}** cannot be used: {err}")
        return
    for column, path, result in zip(st.columns(len(shown), gap="medium"), shown, results):
        _show(column, records[path], result)


def run_tag(record: RunRecord) -> str:
    """A short name for a picked run (the picker's chips are narrow): its id's tail, setting, size and accuracy."""
    acc = record.history.final_val_accuracy
    parts = [(record.run_id or "?")[-6:]]
    if record.config:
        parts += [setup_text(record.config), f"{record.config.image_size} px"]
    return " · ".join([*parts, f"val acc {'—' if acc is None else f'{acc:.0%}'}"])


def _stamped(run_dir: str) -> tuple[str, float]:
    """A run folder and its model file's mtime: a model saved again is a new cache entry."""
    return run_dir, os.path.getmtime(Path(run_dir) / MODEL_FILE)


@st.cache_data(max_entries=16, show_spinner="Explaining the image with each run...")
def _explained(
    runs: tuple[tuple[str, float], ...], name: str, source: bytes | str, names: tuple[str, ...], explained: str | None
) -> list[Explanation]:
    """Each run's explanation of one image (cached per runs, image, classes and class explained)."""
    from tlcore.tf.inference import explain_with_each

    models = [run_model(run_dir) for run_dir, _ in runs]
    return explain_with_each(models, (name, source), names, display_size=THUMB, explained_class=explained)


def _show(column: st.delta_generator.DeltaGenerator, record: RunRecord, r: Explanation) -> None:
    with column:
        config = record.config
        st.markdown(f"##### {f'{setup_text(config)} · {config.image_size} px' if config else record.run_id}")
        st.caption(describe_run(record))
        if r.overlay is not None:
            st.image(r.overlay, width="content", caption=overlay_caption(r))
        else:
            st.image(r.display, width="content", caption=r.name)
            if r.gradcam_note:
                st.info(r.gradcam_note)
        st.metric("Predicts", r.top_class, f"{r.top_probability:.1%} probability", delta_color="off", delta_arrow="off")
