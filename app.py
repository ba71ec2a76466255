"""Transfer Learning Lab: the Streamlit entry point (`streamlit run app.py`)."""

from __future__ import annotations

import streamlit as st

from dashboard import housekeeping
from dashboard.sidebar import sidebar
from dashboard.state import init_session_state, keep_keras_state, measure_machine_speed
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


def run() -> None:
    st.set_page_config(page_title="Transfer Learning Lab", page_icon=":material/school:", layout="wide")
    keep_keras_state()
    measure_machine_speed()
    init_session_state()
    navigation = st.navigation(
        [st.Page(path, title=title, icon=icon, default=(i == 0)) for i, (path, title, icon) in enumerate(PAGES)]
    )
    sidebar()
    housekeeping.sweep()  # at most once a minute: the .zip extractions of ended sessions
    navigation.run()


if __name__ == "__main__":
    run()
