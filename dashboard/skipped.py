"""The files a scan left out and why: shown wherever a dataset is (the Dataset page, a refused dataset)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import streamlit as st

from tlcore.data_problems import SkippedFile, display_path

SKIPPED_SHOWN = 50  # files listed in full; more are counted and offered as a list to download


def skipped_files(skipped: Sequence[SkippedFile], root: Path) -> None:
    """The files left out and why, reasons wrapped in full (a table, not a grid that cuts long reasons)."""
    # display_path: a name that is not UTF-8 would stop the whole page
    rows = [{"file": display_path(os.path.relpath(f.path, root)), "reason": f.reason} for f in skipped]
    st.table(pd.DataFrame(rows[:SKIPPED_SHOWN]).set_index("file"))
    if len(rows) > SKIPPED_SHOWN:
        st.caption(f"… and {len(rows) - SKIPPED_SHOWN} more.")
        st.download_button("Download the whole list (CSV)", pd.DataFrame(rows).to_csv(index=False), "skipped-files.csv")
