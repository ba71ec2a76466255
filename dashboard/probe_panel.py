"""Placeholder: built in the inside-views work."""

from __future__ import annotations

import streamlit as st

from tlcore.data import DatasetInfo
from tlcore.inside import Comparison


def probe_section(info: DatasetInfo, comparison: Comparison, image_size: int, freeze_at: int) -> None:
    """Placeholder."""
    st.caption("Not built yet.")
