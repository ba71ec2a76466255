"""Removing uploaded .zip extractions nobody needs: the Streamlit side of tlcore.upload_cleanup.

Streamlit has no public "session ended" hook, so each extraction is recorded
with the session that made it, and a sweep (after each new extraction, and at
most once a minute from any session's rerun) asks the runtime whether that
session is still there. At server start, leftovers older than a day go; at
server exit, every folder this server made.
"""

from __future__ import annotations

import atexit
from pathlib import Path

import streamlit as st

from tlcore.jobs import JOBS
from tlcore.upload_cleanup import ExtractionTracker, remove_leftovers

SWEEP_EVERY_S = 60.0


@st.cache_resource(show_spinner=False)
def tracker() -> ExtractionTracker:
    """The process's tracker; made once per server, which is when leftovers are removed."""
    remove_leftovers()
    made = ExtractionTracker()
    atexit.register(made.remove_all)  # Streamlit offers no public shutdown hook; its server exits normally
    return made


def session_id() -> str:
    """This browser session's id in the Streamlit runtime ("" outside one)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


def session_alive(session: str) -> bool | None:
    """Whether a session is connected or may still reconnect; None when the runtime cannot say.

    Uses the runtime's session manager (internal API: any change there falls
    back to None, and then to removal by age).
    """
    try:
        from streamlit import runtime

        if not session or not runtime.exists():
            return None
        get_info = getattr(runtime.get_instance()._session_mgr, "get_session_info", None)
        return None if get_info is None else get_info(session) is not None
    except Exception:  # an internal API changed: unknown, never "ended"
        return None


def job_running(owner: str) -> bool:
    """A job of this owner is running and may read its uploaded images from disk."""
    return JOBS.running_for(owner) is not None


def sweep(force: bool = False) -> list[Path]:
    """Remove the extractions of ended sessions (at most once a minute unless forced)."""
    folders = tracker()
    if not (force or folders.sweep_due(SWEEP_EVERY_S)):
        return []
    return folders.sweep(session_alive, job_running)
