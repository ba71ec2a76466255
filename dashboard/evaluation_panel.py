"""The Inference page's evaluation: accuracy, confusion matrix and hardest images on the validation split."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from dashboard.charts import confusion_matrix_chart
from tlcore.data import DatasetInfo, same_held_out_split, split_files
from tlcore.imageio import ImageProblem
from tlcore.records import RunRecord
from tlcore.tf.inference import evaluate_split, to_pixels

if TYPE_CHECKING:
    import keras


def evaluation_key(model_path: str | os.PathLike, info: DatasetInfo) -> str:
    """Names an evaluation in the session: the model file (and its mtime), the dataset root and its validation files."""
    split_id = hashlib.sha256("\n".join(sorted(split_files(info))).encode()).hexdigest()[:16]
    return f"{model_path}|{Path(model_path).stat().st_mtime}|{info.root}|{split_id}"


def evaluation_section(
    model: keras.Model, model_path: str, record: RunRecord, info: DatasetInfo | None, names: list[str]
) -> None:
    """Evaluate on request (a button), then show the results until the model or the dataset changes."""
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
            cached = st.session_state["inference_eval"] = (key, evaluate_split(model, info, names))
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
    matrix, table = st.columns([2, 3])
    matrix.altair_chart(confusion_matrix_chart(ev.confusion, names), width="content", theme="streamlit")
    table.dataframe(
        ev.per_class_table(),
        hide_index=True,
        column_config={"accuracy": st.column_config.ProgressColumn(format="percent", max_value=1.0)},
    )
    st.write(
        "**Where it struggles:** the validation images with the highest loss, confident mistakes first "
        "(✗ wrong, ✓ right but unsure)."
    )
    for column, item in zip(st.columns(4) * 2, ev.top_losses(8)):
        caption = (
            f"{'✓' if item['true'] == item['predicted'] else '✗'} true: {item['true']} · "
            f"predicted: {item['predicted']} ({item['probability']:.0%})"
        )
        try:
            column.image(to_pixels(item["path"], 160), caption=caption)
        except ImageProblem as err:  # changed on disk since the evaluation
            column.caption(f"{Path(item['path']).name}: {err} — {caption}")
