"""Transfer Learning Lab: the Streamlit entry point (`streamlit run app.py`)."""

from __future__ import annotations

import streamlit as st


def run() -> None:
    st.set_page_config(page_title="Transfer Learning Lab", page_icon="🧠", layout="wide")
    pages = [st.Page("pages/dataset.py", title="Dataset", icon="🖼️", default=True)]
    st.navigation(pages).run()


if __name__ == "__main__":
    run()
