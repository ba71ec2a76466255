"""The device in the sidebar and the precision control of the Model page.

Pages that need no TensorFlow (the Dataset page, the Model page's table)
must not load it just to name the device: until TensorFlow is loaded, the
device comes from the operating system (/proc/cpuinfo, nvidia-smi); once a
page has loaded it, from what TensorFlow itself sees. When the two disagree
(a GPU the driver lists that TensorFlow does not use), the sidebar says so.
"""

from __future__ import annotations

import functools
import sys

import streamlit as st

from dashboard.state import K
from tlcore.devices import FLOAT32, PRECISION_NAMES, PRECISIONS, DeviceReport, report_without_tensorflow

GPU_BUILD_HINT = 'TensorFlow does not use it: install its GPU build, `pip install "tensorflow[and-cuda]"` (README).'


@functools.cache
def _system_report() -> DeviceReport:
    return report_without_tensorflow()  # nvidia-smi once per process, not on every rerun


def current_report() -> DeviceReport:
    """TensorFlow's view of the devices when it is loaded, else the operating system's (see the module)."""
    if "tensorflow" in sys.modules:
        from tlcore.tf.devices import device_report  # already loaded: costs nothing

        return device_report()
    return _system_report()


def device_sidebar() -> None:
    """The device that trains, in plain words, with what it means for speed and precision."""
    report = current_report()
    st.header("Device")
    st.markdown(report.describe().replace(";", "  \n", 1))
    if report.source == "tensorflow" and not report.gpus and _system_report().gpus:
        st.warning(f"The driver lists {_system_report().describe()}, but {GPU_BUILD_HINT}")
    precisions = ", ".join(PRECISION_NAMES[p] for p in report.precisions() if p != FLOAT32)
    st.caption(
        "Trains on "
        + ("the GPU" if report.gpus else "the CPU")
        + (f"; mixed precision available: {precisions}." if precisions else "; float32 only.")
    )


def precision_control() -> None:
    """The precision selectbox, offering only what this device runs (a loaded run's other choice snaps back)."""
    report = current_report()
    offered = list(report.precisions())
    if st.session_state.get(K.precision) not in offered:
        st.session_state[K.precision] = FLOAT32
    missing = [report.why_not(p) for p in PRECISIONS if p not in offered]
    st.selectbox(
        "Precision",
        offered,
        key=K.precision,
        format_func=PRECISION_NAMES.__getitem__,
        help="float32: full precision. Mixed precision computes the layers in 16 bits and keeps the weights, "
        "the output and the loss in float32: about twice the speed where the device has 16-bit units, with "
        "the same accuracy to within noise; float16 also scales the loss so small gradients do not vanish. "
        f"This machine: {report.describe()}. " + " ".join(missing),
    )
