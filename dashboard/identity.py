"""Who a session is: its owner id for jobs, runs, kept settings and uploads, and the rights it acts with.

The one place identity is read. In the single-user lab a tab is identified by its `?owner=` (so a reload
finds its jobs and settings) and acts as the administrator, who sees every run, as before class mode.
"""

from __future__ import annotations

import os

import streamlit as st

from dashboard.state import K
from tlcore.access import ADMIN, Actor
from tlcore.runs import RunStore


def is_new_session() -> bool:
    """True on a session's first script run (a new tab, or a reloaded one), before `owner` is first read."""
    return K.owner not in st.session_state


def owner() -> str:
    """Who this session acts for: jobs, runs, kept settings and uploads are all keyed by it.

    The one place identity is read: today the tab's `?owner=` (so a reload finds its jobs and settings),
    or a new random id.
    """
    if K.owner not in st.session_state:
        st.session_state[K.owner] = st.query_params.get("owner") or os.urandom(6).hex()
    if st.query_params.get("owner") != st.session_state[K.owner]:
        st.query_params["owner"] = st.session_state[K.owner]
    return str(st.session_state[K.owner])


def actor() -> Actor:
    """Who this session acts as in tlcore's ownership checks (tlcore.access)."""
    chosen = st.session_state.get(K.actor)
    return chosen if isinstance(chosen, Actor) else ADMIN


def run_store() -> RunStore:
    """The runs folder as this session may see it: its runs, or every run with the teacher's rights."""
    return RunStore(actor=actor())
