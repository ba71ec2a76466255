"""Dataset page: what is in the image folder (the full dashboard comes next)."""

from pathlib import Path

import streamlit as st

from tlcore.data import DatasetError, scan

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"

st.title("Dataset")
st.write("Transfer learning starts from your images: one folder per class. "
         "This is the bundled sample: clip-art animals and vehicles.")
try:
    info = scan(SAMPLE_DATA)
except DatasetError as err:
    st.error(str(err))
    st.stop()
st.write(f"Classes: {', '.join(info.class_names)}")
st.table(info.counts())
