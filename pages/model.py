import streamlit as st

st.title("Model")
st.info("Coming next.")
