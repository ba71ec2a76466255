"""The device in the sidebar and the Model page's precision control (AppTest over the whole app), with the
device report mocked: the GPUs cannot be tested here."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import dashboard.devices
from dashboard.state import K, state_to_config
from tests.conftest import ROOT
from tlcore.devices import FLOAT32, MIXED_BFLOAT16, MIXED_FLOAT16, CpuFacts, DeviceReport, GpuFacts

CPU = CpuFacts("AMD EPYC 9B45", 2, vector_flags=("avx512_bf16", "avx512f"))
H200 = DeviceReport(CPU, (GpuFacts("NVIDIA H200", (9, 0)),))
OLD_CPU = DeviceReport(CpuFacts("Intel Xeon E5-2690 v4", 4, vector_flags=("avx2",)))


def _model_page(monkeypatch, report: DeviceReport, **state) -> AppTest:
    monkeypatch.setattr(dashboard.devices, "current_report", lambda: report)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page("pages/model.py").run()
    assert not at.exception, at.exception
    return at


def _sidebar_text(at: AppTest) -> str:
    return " ".join(m.value for m in at.sidebar.markdown) + " ".join(c.value for c in at.sidebar.caption)


def test_on_a_gpu_every_precision_is_offered_and_the_sidebar_names_the_gpu(monkeypatch):
    at = _model_page(monkeypatch, H200)
    assert "GPU: NVIDIA H200 (compute capability 9.0)" in _sidebar_text(at)
    assert "mixed precision available: mixed float16, mixed bfloat16" in _sidebar_text(at)
    box = at.selectbox(key=K.precision)
    assert box.options == ["float32", "mixed float16", "mixed bfloat16"]
    box.set_value(MIXED_BFLOAT16).run()
    assert not at.exception, at.exception
    assert state_to_config(at.session_state).precision == MIXED_BFLOAT16


@pytest.mark.parametrize("asked", [MIXED_FLOAT16, MIXED_BFLOAT16])
def test_a_cpu_without_bfloat16_offers_float32_only_and_a_loaded_choice_snaps_back(monkeypatch, asked):
    at = _model_page(monkeypatch, OLD_CPU, **{K.precision: asked})  # e.g. a GPU run's settings, loaded here
    assert at.selectbox(key=K.precision).options == ["float32"]
    assert state_to_config(at.session_state).precision == FLOAT32
    assert "CPU: Intel Xeon E5-2690 v4" in _sidebar_text(at) and "float32 only" in _sidebar_text(at)


def test_a_gpu_the_driver_lists_but_tensorflow_does_not_use_is_pointed_out(monkeypatch):
    monkeypatch.setattr(dashboard.devices, "_system_report", lambda: DeviceReport(CPU, H200.gpus, "nvidia-smi"))
    at = _model_page(monkeypatch, DeviceReport(CPU))  # TensorFlow's view: no GPU (its CPU build)
    (warning,) = [w.value for w in at.sidebar.warning if "NVIDIA H200" in w.value]
    assert 'pip install "tensorflow[and-cuda]"' in warning
    assert at.selectbox(key=K.precision).options == ["float32", "mixed bfloat16"]
