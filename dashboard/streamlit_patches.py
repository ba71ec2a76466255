"""Streamlit behaviours this app works around, each saying what it replaces and how to tell when it can go.

The runner's garbage collection after every script run is switched off in .streamlit/config.toml
(`postScriptGC = false`, checked by tests/test_app.py) for the same reason as keep_keras_state.
"""

from __future__ import annotations

import sys

import streamlit as st


def keep_keras_state() -> None:
    """Stop Streamlit from resetting Keras at the end of every script run.

    Streamlit calls keras.backend.clear_session() whenever a script run ends
    (`_clean_problem_modules` in streamlit.runtime.scriptrunner.script_runner).
    With a run training in a background thread, every click and every tick of
    the live view then replaced Keras' global state under it, emptied
    TensorFlow's kernel cache and ran a full garbage collection: the reason
    watching a run made it several times slower. Only the pyplot cleanup is
    kept. Should a Streamlit version move that function, nothing breaks here;
    bench/live_view.py would show the cost again.
    """
    from streamlit.runtime.scriptrunner import script_runner

    if hasattr(script_runner, "_clean_problem_modules"):
        script_runner._clean_problem_modules = _close_pyplot_figures


def _close_pyplot_figures() -> None:
    # A background thread may be importing pyplot right now: a half-initialised module has no close yet.
    close = getattr(sys.modules.get("matplotlib.pyplot"), "close", None)
    if close is not None:
        close("all")


def run_through_app() -> None:
    """Run app.py when a fresh server's first request for a page URL ran the page file alone.

    Streamlit's legacy pages/ mode (`PagesManager.uses_pages_directory`) is on until st.navigation has run
    once; switched off as st.navigation does it. It can go when a page URL opened on a fresh server shows the
    sidebar without it (tests/test_app.py opens one).
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()
