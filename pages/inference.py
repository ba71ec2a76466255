import streamlit as st

st.title("Inference")
st.info("Coming next.")
