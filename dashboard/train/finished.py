"""What the Train page offers once a run has ended: its model and history, the export, where to go next."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.export_panel import export_panel
from tlcore.jobs import Job
from tlcore.run_folder import MODEL_FILE


def finished_run_section(job: Job) -> None:
    """Downloads of the ended run's model (from memory when the disk could not take it) and history, then
    the export and the links to the Inference and Runs pages."""
    snap = job.snapshot()
    run_dir = Path(snap.run_dir) if snap.run_dir else None
    model_file = run_dir / MODEL_FILE if run_dir else None
    saved = model_file is not None and model_file.is_file()
    file_stem = run_dir.name if run_dir else "model"
    # When the disk could not take the model, it is offered from memory instead.
    model_data = model_file.read_bytes if saved and model_file else job.model_bytes
    if model_data:
        d1, d2 = st.columns(2)
        d1.download_button(
            "Download model (.keras)",
            data=model_data,
            file_name=f"{file_stem}.keras",
            key="download_model",
            type="primary" if not saved else "secondary",
        )
        d2.download_button(
            "Download history (CSV)",
            data=snap.history.to_csv(),
            file_name=f"{file_stem}-history.csv",
            key="download_history",
        )
    if saved and run_dir is not None:
        with st.expander("Export the model: SavedModel or TFLite, checked against this one"):
            export_panel(run_dir, "train_export")
        st.page_link("pages/inference.py", label="Try the model on images", icon=":material/image_search:")
        st.page_link("pages/runs.py", label="Compare with other runs", icon=":material/folder_open:")
    elif job.model_bytes:
        st.error("This run's model is only in memory: download it now, it is lost when the app restarts.")
