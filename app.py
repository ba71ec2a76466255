"""Transfer Learning Lab: the Streamlit entry point (`streamlit run app.py`)."""

from __future__ import annotations

import streamlit as st

from dashboard import foreground, housekeeping, kept_settings
from dashboard.classroom.views import account_box, class_gate
from dashboard.identity import is_new_session, owner, person
from dashboard.sidebar import sidebar
from dashboard.state import init_session_state, measure_machine_speed
from dashboard.streamlit_patches import keep_keras_state
from tlcore.quiet import quiet_tensorflow

quiet_tensorflow()  # before any page imports TensorFlow: no CUDA / oneDNN lines in the server log

PAGES = [
    ("pages/dataset.py", "Dataset", ":material/photo_library:"),
    ("pages/model.py", "Model & freeze", ":material/layers:"),
    ("pages/inside.py", "See inside", ":material/visibility:"),
    ("pages/train.py", "Train", ":material/show_chart:"),
    ("pages/inference.py", "Inference", ":material/image_search:"),
    ("pages/runs.py", "Runs", ":material/folder_open:"),
]
TEACHER_PAGES = [("pages/class_board.py", "Class", ":material/groups:")]


# Streamlit leaves 6rem above every page for its toolbar: on a projector at 1024 x 768 that pushed the Train
# page's curves below the fold. Half of it keeps the title clear of the toolbar's menu button.
COMPACT_TOP = "<style>[data-testid='stMainBlockContainer'] { padding-top: 3rem; }</style>"


def run() -> None:
    with foreground.drawing():  # background passes pause between batches meanwhile
        _draw()


def _draw() -> None:
    st.set_page_config(page_title="Transfer Learning Lab", page_icon=":material/school:", layout="wide")
    st.html(COMPACT_TOP)
    keep_keras_state()
    if gate := class_gate():  # a class: nothing but the join form until this browser has joined
        st.navigation([st.Page(gate, title="Join the class", icon=":material/login:")], position="hidden").run()
        return
    measure_machine_speed()
    if is_new_session():  # a new or reloaded tab: its owner's settings come back first
        kept_settings.restore(owner())
    init_session_state()
    member = person()
    pages = PAGES + (TEACHER_PAGES if member is not None and member.teacher else [])
    navigation = st.navigation(
        [st.Page(path, title=title, icon=icon, default=(i == 0)) for i, (path, title, icon) in enumerate(pages)]
    )
    account_box()
    sidebar()
    kept_settings.remember(owner())  # after the sidebar, which may have just taken an uploaded .zip
    housekeeping.sweep()  # at most once a minute: the .zip extractions of ended sessions
    navigation.run()


if __name__ == "__main__":
    run()
