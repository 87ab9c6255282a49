"""A Streamlit dashboard whose data arrives late: the script's query sleeps before the panel shows."""

import time

import streamlit as st

st.title("Sales")
st.caption("Loading the figures...")
time.sleep(2.5)  # the slow data source: the app's behaviour under test
st.markdown(
    '<div id="late-panel" style="background:rgb(200,0,0);width:600px;height:300px"></div>',
    unsafe_allow_html=True,
)
