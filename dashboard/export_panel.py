"""Export a run's model from the Train and Runs pages: pick a format, export and check it, download the folder.

The work is `tlcore.tf.export.export_run` (seconds to a minute: VGG16 converted, then every validation image
through both models); what an earlier export found is read back from its card (`tlcore.exports.read_cards`).
"""

from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from dashboard.tables import describe_run
from tlcore.exports import EXPORTS_DIR, FLOAT_MAX_DP, FORMAT_NAMES, FORMATS, INT8_MIN_AGREEMENT, read_cards
from tlcore.records import RUNNING
from tlcore.run_folder import MODEL_FILE
from tlcore.runs import RunSummary

WHY = (
    "Take the model elsewhere: a **SavedModel** for TensorFlow and TensorFlow Serving, a **TFLite** file for "
    "phones and small boards, or TFLite with **int8** weights (about a quarter of the size). Each export is "
    "checked at once on the run's validation images against the model trained here: float exports must give "
    f"the same top class on every image and probabilities within {FLOAT_MAX_DP:g}; int8 the same top class on "
    f"at least {INT8_MIN_AGREEMENT:.0%}."
)


def zipped(folder: Path) -> bytes:
    """A folder as the bytes of a .zip, its files under the folder's own name."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    return buffer.getvalue()


def _request(key: str) -> None:
    st.session_state[f"{key}_requested"] = True


def export_panel(run_dir: Path, key: str) -> None:
    """The run's exports: those made before (with their check), and a button to make one."""
    st.write(WHY)
    fmt = st.radio("Format", FORMATS, format_func=FORMAT_NAMES.__getitem__, key=f"{key}_format", horizontal=True)
    # Asked for through the session state: a rerun in between (another panel's) keeps the request.
    st.button("Export and check", key=f"{key}_export", on_click=_request, args=(key,))
    if st.session_state.pop(f"{key}_requested", False):
        from tlcore.tf.export import export_run  # the TensorFlow side, imported when a user asks

        with st.spinner("Converting the model and checking it on the validation images..."):
            try:
                export_run(run_dir, fmt)
            except (OSError, ValueError) as err:
                st.error(f"The export failed: {err}")
    for card in read_cards(run_dir):
        folder = run_dir / EXPORTS_DIR / str(card["format"])
        line = str(card["summary"])
        (st.success if card.get("passed") else st.warning)(line)
        st.download_button(
            f"Download {FORMAT_NAMES.get(str(card['format']), card['format'])} (.zip)",
            data=functools.partial(zipped, folder),  # zipped only when the user downloads it
            file_name=f"{run_dir.name}-{card['format']}.zip",
            key=f"{key}_download_{card['format']}",
        )


def export_section(summaries: Sequence[RunSummary]) -> None:
    """The Runs page's "Export a model": pick one of your finished runs with a saved model, then export_panel."""
    st.subheader("Export a model")
    runs = {s.run_id: s for s in summaries if s.status != RUNNING and (s.run_dir / MODEL_FILE).is_file()}
    if not runs:
        st.info("No finished run with a saved model yet: train one, then export it here.")
        return
    picked = st.selectbox("Run", list(runs), format_func=lambda r: describe_run(runs[r]), key="export_run")
    export_panel(runs[picked].run_dir, "runs_export")
