"""The Inference page's evaluation: accuracy, confusion matrix and hardest images on the validation split."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.typing import VegaLiteState

from dashboard.charts import CONFUSION_CELL, confusion_matrix_chart
from tlcore.data import DatasetInfo, same_held_out_split, split_files
from tlcore.records import RunRecord

if TYPE_CHECKING:
    from dashboard.inference.models import LoadedModel
    from tlcore.tf.inference import Evaluation, ExplainedLoss

TOP_LOSS_KEY = "inference_top_loss_cams"  # (evaluation key, the hardest images explained)
CELL_KEY = "inference_cell_cams"  # ((evaluation key, cell), the clicked cell's images explained)
TOP_LOSSES, CELL_SHOWN, THUMB = 8, 8, 160


def evaluation_key(model_path: str | os.PathLike, info: DatasetInfo) -> str:
    """Names an evaluation in the session: the model file (and its mtime), the dataset root and its validation files."""
    split_id = hashlib.sha256("\n".join(sorted(split_files(info))).encode()).hexdigest()[:16]
    return f"{model_path}|{Path(model_path).stat().st_mtime}|{info.root}|{split_id}"


def evaluation_section(
    load: Callable[[], LoadedModel], model_path: str, record: RunRecord, info: DatasetInfo | None, names: list[str]
) -> None:
    """Evaluate on request (a button), then show the results until the model or the dataset changes.

    `load` gives (model, explainer): called only once the evaluation is asked for or shown.
    """
    st.subheader("Evaluate on the validation split")
    if info is None:
        st.caption("Needs the dataset this model was trained on (see above).")
        return
    if not same_held_out_split({"validation_files": record.validation_files}, info):  # tlcore.data reads dicts
        st.warning(
            "This validation split is not the one this run held out (different folder, files or split "
            "fraction): some of these images may have been trained on, so accuracy can look too good."
        )
    key, cached = evaluation_key(model_path, info), st.session_state.get("inference_eval")
    if (cached is None or cached[0] != key) and st.session_state.get("inference_eval_wanted") == key:
        with st.spinner("Predicting every validation image..."):
            from tlcore.tf.inference import evaluate_split  # TensorFlow: only once an evaluation is asked for

            cached = st.session_state["inference_eval"] = (key, evaluate_split(load()[0], info, names))
    if cached is None or cached[0] != key:
        # A callback, not `if st.button(...)`: the request survives a rerun that happens before this line.
        st.button(
            "Evaluate on the validation split",
            key="inference_evaluate",
            on_click=st.session_state.update,
            kwargs={"inference_eval_wanted": key},
        )
        return
    ev = cached[1]
    st.metric("Validation accuracy", f"{ev.accuracy:.1%}", help=f"{int(ev.confusion.sum())} images")
    # One above the other: side by side, the matrix's own width ran under the table at 1024 and 1280 px.
    st.caption("Click a cell to see its images, with where the model looked for the true and the predicted class.")
    event = st.altair_chart(
        confusion_matrix_chart(ev.confusion, names, clickable=True),
        width="content",
        theme="streamlit",
        on_select="rerun",
        selection_mode=CONFUSION_CELL,
        key="inference_confusion",
    )
    cell_images(load, ev, key, picked_cell(event))
    st.dataframe(
        ev.per_class_table(),
        hide_index=True,
        column_config={"accuracy": st.column_config.ProgressColumn(format="percent", max_value=1.0)},
    )
    st.write(
        "**Where it struggles:** the validation images with the highest loss, confident mistakes first "
        "(✗ wrong, ✓ right but unsure), each with where the model looked for the class it predicted and for the "
        "true one: what it took for the wrong class, and what it missed of the right one."
    )
    cams = st.session_state.get(TOP_LOSS_KEY)
    if cams is None or cams[0] != key:
        with st.spinner("Grad-CAM of the hardest images..."):
            from tlcore.tf.inference import explain_top_losses

            cams = st.session_state[TOP_LOSS_KEY] = (key, explain_top_losses(*load(), ev, TOP_LOSSES, THUMB))
    for hard in cams[1]:
        _show_hard_image(list(st.columns(3)), hard)


def picked_cell(event: VegaLiteState) -> tuple[str, str] | None:
    """(true class, predicted class) of the clicked cell, from st.altair_chart's selection event; None: none."""
    points = event.selection.get(CONFUSION_CELL) or []
    if not points:
        return None
    return str(points[0]["true class"]), str(points[0]["predicted class"])


def cell_images(load: Callable[[], LoadedModel], ev: Evaluation, key: str, cell: tuple[str, str] | None) -> None:
    """The clicked cell's first CELL_SHOWN images, each with Grad-CAM for its true and its predicted class."""
    if cell is None:
        return
    true_class, predicted_class = cell
    items = ev.cell(true_class, predicted_class)
    verdict = "right" if true_class == predicted_class else "wrong"
    st.markdown(
        f"**True “{true_class}”, predicted “{predicted_class}”** ({verdict}): {len(items)} image(s)"
        + (f", the first {CELL_SHOWN} by loss" if len(items) > CELL_SHOWN else "")
    )
    if not items:
        return
    cams = st.session_state.get(CELL_KEY)
    if cams is None or cams[0] != (key, cell):
        with st.spinner("Grad-CAM of this cell's images..."):
            from tlcore.tf.inference import explain_items

            explained = explain_items(*load(), items[:CELL_SHOWN], ev.class_names, THUMB)
            cams = st.session_state[CELL_KEY] = ((key, cell), explained)
    for hard in cams[1]:
        _show_hard_image(list(st.columns(3)), hard)


def _show_hard_image(slot: list[DeltaGenerator], hard: ExplainedLoss) -> None:
    """One row per image, large enough for a projector: the image, then its map for each class."""
    item = hard.item
    caption = (
        f"{'✓' if item['true'] == item['predicted'] else '✗'} true: {item['true']} · "
        f"predicted: {item['predicted']} ({item['probability']:.0%})"
    )
    if hard.display is None:  # changed on disk since the evaluation
        slot[0].caption(f"{Path(item['path']).name}: {hard.problem} — {caption}")
        return
    slot[0].image(hard.display, caption=caption)
    for column, (name, overlay) in zip(slot[1:], hard.overlays.items()):
        role = " and ".join(r for r, c in (("predicted", item["predicted"]), ("true", item["true"])) if c == name)
        if overlay is None:
            column.caption(f"No region raised the score of “{name}” ({role}).")
        else:
            column.image(overlay, caption=f"where it looked for “{name}” ({role})")
