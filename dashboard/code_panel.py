"""The code behind the clicks: the standalone Keras script (tlcore.codegen) for the Model page's settings or a run.

Writing a script is a template filled in: milliseconds, no TensorFlow, so it
is written on every page run and shown at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from dashboard.identity import actor
from dashboard.state import REFUSED_WEIGHTS
from dashboard.tables import describe_run
from tlcore.codegen import SCRIPT_NAME, student_script, training_script
from tlcore.config import TrainConfig
from tlcore.data import DatasetInfo
from tlcore.runs import RunSummary
from tlcore.script_folder import DataFolder

SETTINGS_DOWNLOAD = "code_download_settings"
RUN_DOWNLOAD = "code_download_run"
RUN_PICK = "code_run"
CODE_HEIGHT = 520  # px: the script scrolls inside its box instead of making the page three screens longer
WHY_SETTINGS = (
    "Everything this page sets up comes down to a few dozen lines of plain Keras: here they are, for these "
    "settings and this dataset folder. Run `python train.py` wherever Keras is installed to train the same "
    "model without the lab; the script's first lines say where it differs from the lab."
)
WHY_RUN = (
    "A run's settings as the same plain Keras script, to train it again without the lab or to read how it was "
    "made. It reads the folder the run trained on and saves `model.keras` where you run it."
)


def _script(config: TrainConfig, data: DataFolder, made_for: str) -> str:
    """The script for this session: a student's names no path on the server (the teacher's and the
    single-user lab's name the folder and weights file as they are)."""
    return (training_script if actor().teacher else student_script)(config, data, made_for)


def _script_view(script: str, download_key: str) -> None:
    """The download button, and the script behind an expander (its copy button is in the code box)."""
    st.download_button(
        f"Download {SCRIPT_NAME}",
        script,
        file_name=SCRIPT_NAME,
        mime="text/x-python",
        key=download_key,
        icon=":material/download:",
        on_click="ignore",  # a download changes nothing on the page: no rerun
    )
    # A label that stays the same as the settings change: a new label is a new expander, shown closed.
    with st.expander(f"Show {SCRIPT_NAME}"):
        # Long lines wrap rather than hide behind a scroll bar (a projector at 1024 px shows ~70 columns).
        st.code(script, language="python", line_numbers=True, wrap_lines=True, height=CODE_HEIGHT)


def settings_code_section(info: DatasetInfo, config: TrainConfig) -> None:
    """The script for the settings on the Model & freeze page and the sidebar's dataset."""
    st.subheader("The code behind these settings")
    st.caption(WHY_SETTINGS)
    if config.weights == REFUSED_WEIGHTS:
        st.info("The weights file in the sidebar is refused here: choose other weights to see the code.")
        return
    _script_view(
        _script(config, DataFolder.from_info(info), "the settings on the Model & freeze page"), SETTINGS_DOWNLOAD
    )


def run_code_section(summaries: Sequence[RunSummary]) -> None:
    """Pick a saved run (the newest by default) and see its script."""
    st.subheader("The code behind a run")
    st.caption(WHY_RUN)
    runs = {s.run_id: s for s in summaries if s.record.config is not None and s.record.class_names}
    if not runs:
        st.info("No run with readable settings yet: train one and its code appears here.")
        return
    if st.session_state.get(RUN_PICK) not in runs:  # first visit, or the picked run was deleted
        st.session_state[RUN_PICK] = next(iter(runs))
    run_id = st.selectbox("Run", list(runs), format_func=lambda r: describe_run(runs[r]), key=RUN_PICK)
    record = runs[run_id].record
    assert record.config is not None  # the runs offered all have one
    try:
        script = _script(record.config, DataFolder.from_run(record), f"run {run_id}")
    except ValueError as err:
        st.warning(f"No script for this run: {err}")
        return
    _script_view(script, RUN_DOWNLOAD)
