"""Devices and precision: the device report (with TensorFlow's device list mocked: no GPU here), the
precisions each device offers, mixed precision really training on this CPU, and MirroredStrategy over two
logical CPU devices (in a subprocess: they must be set up before TensorFlow initialises)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tlcore.tf.devices
from dashboard.tables import runs_dataframe
from tests.conftest import ROOT
from tests.helpers import TINY_CONFIG
from tlcore.cli import main
from tlcore.config import TrainConfig
from tlcore.data import scan
from tlcore.devices import (
    FLOAT32,
    MIXED_BFLOAT16,
    MIXED_FLOAT16,
    CpuFacts,
    DeviceReport,
    GpuFacts,
    PrecisionUnsupported,
    check_precision,
    device_headline,
    forced_devices,
    read_cpu,
    training_device,
)
from tlcore.feature_store import FeatureKey, FeatureStore
from tlcore.run_folder import load_record
from tlcore.runs import RunStore
from tlcore.tf.training import compile_for, prepare_data, train, train_and_record

ZEN5 = CpuFacts("AMD EPYC 9B45", 2, "26/2", 2600.0, ("avx2", "avx512_bf16", "avx512f", "fma"))
OLD_CPU = CpuFacts("Intel Xeon E5-2690 v4", 4, "6/79", 2600.0, ("avx2", "fma"))


def _mock_gpus(monkeypatch, details: list[dict]) -> None:
    """TensorFlow sees these GPUs (get_device_details' dicts), and this CPU: ZEN5."""
    devices = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(len(details))]
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: devices if kind == "GPU" else [])
    by_name = {d.name: detail for d, detail in zip(devices, details)}
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: by_name[device.name])
    monkeypatch.setattr(tlcore.tf.devices, "read_cpu", lambda: ZEN5)


H200 = {"device_name": "NVIDIA H200", "compute_capability": (9, 0)}
T4 = {"device_name": "Tesla T4", "compute_capability": (7, 5)}


def test_an_h200_offers_both_mixed_precisions_and_says_so(monkeypatch):
    _mock_gpus(monkeypatch, [H200])
    report = tlcore.tf.devices.read_device_report()
    assert report.gpus == (GpuFacts("NVIDIA H200", (9, 0)),)
    assert report.precisions() == (FLOAT32, MIXED_FLOAT16, MIXED_BFLOAT16)
    assert report.describe() == "GPU: NVIDIA H200 (compute capability 9.0)"
    assert training_device(report) == "GPU: NVIDIA H200 (compute capability 9.0)"
    assert tlcore.tf.devices.choose_strategy(report) is None  # one GPU: TensorFlow's default placement


def test_a_turing_gpu_offers_float16_but_not_bfloat16(monkeypatch):
    _mock_gpus(monkeypatch, [T4])
    report = tlcore.tf.devices.read_device_report()
    assert report.precisions() == (FLOAT32, MIXED_FLOAT16)
    assert "compute capability 8.0 or more" in report.why_not(MIXED_BFLOAT16)
    with pytest.raises(PrecisionUnsupported, match=r"Ampere or newer.*This machine: GPU: Tesla T4 \(compute"):
        check_precision(MIXED_BFLOAT16, report)


def test_the_fastest_precision_is_bfloat16_where_the_cpu_has_it_else_float32(monkeypatch):
    """What a transfer curve trains in by default."""
    assert DeviceReport(ZEN5).fastest_precision() == MIXED_BFLOAT16
    assert DeviceReport(OLD_CPU).fastest_precision() == FLOAT32
    _mock_gpus(monkeypatch, [T4])
    assert tlcore.tf.devices.read_device_report().fastest_precision() == MIXED_FLOAT16


def test_mixed_gpus_offer_what_every_one_runs_and_a_gpu_without_details_float32_only(monkeypatch):
    _mock_gpus(monkeypatch, [H200, T4])
    report = tlcore.tf.devices.read_device_report()
    assert report.precisions() == (FLOAT32, MIXED_FLOAT16)
    assert report.describe() == "2 GPUs: NVIDIA H200 (compute capability 9.0), Tesla T4 (compute capability 7.5)"
    assert training_device(report, replicas=2).endswith("· 2 replicas (MirroredStrategy)")
    _mock_gpus(monkeypatch, [{}])  # a device TensorFlow lists without a name or capability
    unknown = tlcore.tf.devices.read_device_report()
    assert unknown.gpus == (GpuFacts("/physical_device:GPU:0", None),) and unknown.precisions() == (FLOAT32,)


def test_cpus_offer_bfloat16_only_with_its_instructions(monkeypatch):
    _mock_gpus(monkeypatch, [])
    report = tlcore.tf.devices.read_device_report()
    assert report.kind == "CPU" and report.precisions() == (FLOAT32, MIXED_BFLOAT16)
    assert report.describe() == "CPU: AMD EPYC 9B45 (2 cores, bfloat16 instructions: AVX-512 BF16); no GPU found"
    old = DeviceReport(OLD_CPU)
    assert old.precisions() == (FLOAT32,)
    assert old.describe() == "CPU: Intel Xeon E5-2690 v4 (4 cores, no bfloat16 instructions); no GPU found"
    assert "needs an NVIDIA GPU" in old.why_not(MIXED_FLOAT16) and "AVX-512 BF16 or AMX" in old.why_not(MIXED_BFLOAT16)
    sapphire = DeviceReport(CpuFacts("Xeon 8480+", 8, vector_flags=("amx_bf16", "amx_tile", "avx512_bf16")))
    assert sapphire.precisions()[-1] == MIXED_BFLOAT16 and "instructions: AVX-512 BF16 and AMX)" in sapphire.describe()
    assert DeviceReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_nothing_in_the_lab_hides_a_gpu_from_tensorflow():
    sources = [ROOT / "app.py", *ROOT.glob("pages/*.py"), *ROOT.glob("dashboard/**/*.py"), *ROOT.glob("tlcore/**/*.py")]
    hiding = [
        f"{path.relative_to(ROOT)}: {needle}"
        for path in sources
        for needle in ("CUDA_VISIBLE_DEVICES", "set_visible_devices", "NVIDIA_VISIBLE_DEVICES")
        if needle in path.read_text()
    ]
    assert len(sources) > 40 and hiding == []


def test_read_cpu_takes_the_model_clock_and_vector_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    core = "model name\t: AMD EPYC 9B45\ncpu family\t: 26\nmodel\t\t: 2\ncpu MHz\t\t: {mhz}\nflags\t\t: {flags}\n\n"
    flags = "fpu sse4_2 avx2 avx512f avx512_bf16 fma amx_tile"
    cpuinfo.write_text(core.format(mhz=2600.0, flags=flags) + core.format(mhz=3000.5, flags=flags))
    cpu = read_cpu(cpuinfo)
    assert (cpu.model_name, cpu.family_model, cpu.mhz) == ("AMD EPYC 9B45", "26/2", 3000.5)
    assert cpu.vector_flags == ("amx_tile", "avx2", "avx512_bf16", "avx512f", "fma", "sse4_2") and cpu.bfloat16


def test_forced_devices_and_the_table_headline():
    assert forced_devices({"TLLAB_DEVICES": " CPU:0, CPU:1 ,"}) == ("CPU:0", "CPU:1") and forced_devices({}) == ()
    assert device_headline("GPU: NVIDIA H200 (compute capability 9.0)") == "GPU: NVIDIA H200"
    assert device_headline("CPU: AMD EPYC (2 cores, …); no GPU found") == "CPU: AMD EPYC"
    assert device_headline(None) == ""


def test_precision_is_a_validated_setting_in_the_config_and_the_feature_key():
    assert TrainConfig().precision == FLOAT32
    with pytest.raises(ValueError, match=r"precision must be one of .*Received: precision='float16'"):
        TrainConfig(precision="float16")
    config = TINY_CONFIG.replace(precision=MIXED_BFLOAT16)
    assert TrainConfig.from_json(config.to_json()) == config
    assert config.differences(TINY_CONFIG) == [("precision", MIXED_BFLOAT16, FLOAT32)]
    keys = {FeatureKey.of(c, "abc", 18).precision for c in (config, TINY_CONFIG)}
    assert keys == {MIXED_BFLOAT16, FLOAT32}


def test_the_cli_refuses_a_precision_this_machine_cannot_run(shared_tiny_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tlcore.tf.devices, "device_report", lambda: DeviceReport(OLD_CPU))
    args = ["train", "--data", str(shared_tiny_dataset), "--weights", "none", "--image-size", "32"]
    code = main([*args, "--precision", MIXED_FLOAT16, "--runs-dir", str(tmp_path / "runs")])
    assert code == 2
    assert "mixed_float16 needs an NVIDIA GPU" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before any run folder


def _dtypes(model: keras.Model) -> dict[str, str]:
    conv, out = model.get_layer("block5_conv3"), model.get_layer("predictions")
    return {
        "conv compute": conv.compute_dtype,
        "conv kernel": conv.kernel.dtype,
        "output layer": out.compute_dtype,
        "output": model.output.dtype,
        "preprocess": model.get_layer("preprocess").compute_dtype,
    }


def test_mixed_bfloat16_trains_on_this_cpu_with_float32_output_loss_and_weights(shared_tiny_dataset, tmp_path):
    """Both routes; the run record names the device and precision, the feature store keeps the precision."""
    info = scan(shared_tiny_dataset)
    config = TINY_CONFIG.replace(precision=MIXED_BFLOAT16, freeze_at=14, epochs=1)
    store = RunStore(tmp_path / "runs")
    result, run = train_and_record(config, info, store)
    assert result.status == "completed" and result.routes == ["cached"]
    model = result.model
    assert model is not None
    assert _dtypes(model) == {
        "conv compute": "bfloat16",
        "conv kernel": "float32",
        "output layer": "float32",
        "output": "float32",
        "preprocess": "float32",
    }
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y_pred = model(x)
    loss = keras.losses.SparseCategoricalCrossentropy()(np.array([0, 1, 0, 1]), y_pred)
    assert y_pred.dtype == tf.float32 and loss.dtype == tf.float32
    np.testing.assert_allclose(np.sum(y_pred, axis=1), 1.0, rtol=1e-6)  # a float32 softmax
    record = load_record(run.run_dir)
    assert record.precision == MIXED_BFLOAT16 and record.device == training_device(tlcore.tf.devices.device_report())
    assert np.isfinite(record.history[0].loss)
    (entry,) = FeatureStore.default(store.root).entries()
    assert entry.key["precision"] == MIXED_BFLOAT16
    row = runs_dataframe(store.list()).to_dict("records")[0]
    assert (row["device"], row["precision"]) == (device_headline(record.device), "mixed bf16")
    assert row["device"].startswith("CPU: ") and "(" not in row["device"]

    end_to_end = train(config.replace(cache_features=False), prepare_data(info, 32))
    assert end_to_end.routes == ["end_to_end"] and _dtypes(end_to_end.model)["conv compute"] == "bfloat16"
    assert np.isfinite(end_to_end.history[0].loss)


class _OptimizerSeen(keras.callbacks.Callback):
    """The optimizer each phase's fit (or compiled epochs) trains with."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[keras.optimizers.Optimizer] = []

    def on_train_begin(self, logs=None) -> None:
        self.seen.append(self.model.optimizer)


def test_mixed_float16_scales_the_loss_on_every_route(shared_tiny_dataset):
    data = prepare_data(scan(shared_tiny_dataset), 32)
    config = TINY_CONFIG.replace(precision=MIXED_FLOAT16, freeze_at=14, epochs=1)
    seen = _OptimizerSeen()
    result = train(config, data, callbacks=[seen])
    assert result.routes == ["cached"]
    model = result.model
    compile_for(model, config, 1e-3)  # the end-to-end route's compile
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert [type(o).__name__ for o in seen.seen] == ["LossScaleOptimizer"]  # the compiled epochs' suffix
    assert model.get_layer("block5_conv3").compute_dtype == "float16" and model.output.dtype == "float32"
    compile_for(model, TINY_CONFIG, 1e-3)
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # float32: no scaling


MIRRORED_RUN = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from tests.helpers import TINY_CONFIG
from tlcore.data import scan
from tlcore.run_folder import load_record
from tlcore.runs import RunStore
from tlcore.tf.training import train_and_record

config = TINY_CONFIG.replace(freeze_at=14, epochs=1, cache_features=False)
seen = {}

import keras
class Before(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        seen["strategy"] = type(self.model.distribute_strategy).__name__
        seen["replicas"] = self.model.distribute_strategy.num_replicas_in_sync
        seen["variable"] = type(self.model.get_layer("block5_conv1").kernel.value).__name__
        seen["frozen"] = self.model.get_layer("block1_conv1").get_weights()[0].tolist()
        seen["trained"] = self.model.get_layer("block5_conv1").get_weights()[0].tolist()

result, run = train_and_record(config, scan(sys.argv[1]), RunStore(sys.argv[2]), callbacks=[Before()])
record = load_record(run.run_dir)
model = result.model
print(json.dumps({
    **{k: v for k, v in seen.items() if k not in ("frozen", "trained")},
    "frozen_same": bool(np.array_equal(seen["frozen"], model.get_layer("block1_conv1").get_weights()[0])),
    "trained_changed": bool(np.abs(np.array(seen["trained"]) - model.get_layer("block5_conv1").get_weights()[0]).max()),
    "status": result.status, "paths": result.routes, "device": record.device,
    "history": [[row.epoch, row.batches, row.loss, row.val_accuracy] for row in record.history],
    "model_saved": record.model_saved,
    "trained_norm": float(np.linalg.norm(model.get_layer("block5_conv1").get_weights()[0])),
}))
"""


def test_mirrored_strategy_trains_end_to_end_over_two_logical_cpus(shared_tiny_dataset, tmp_path):
    env = {**os.environ, "TLLAB_DEVICES": "CPU:0,CPU:1", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-c", MIRRORED_RUN, str(shared_tiny_dataset), str(tmp_path / "runs")]
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        # Meanwhile (the subprocess mostly loads TensorFlow), the same run on this process's one device.
        config = TINY_CONFIG.replace(freeze_at=14, epochs=1, cache_features=False)
        alone = train(config, prepare_data(scan(shared_tiny_dataset), 32))
        stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    out = json.loads(stdout.strip().splitlines()[-1])
    assert (out["strategy"], out["replicas"], out["variable"]) == ("MirroredStrategy", 2, "MirroredVariable")
    assert out["frozen_same"] and out["trained_changed"] > 0
    assert out["status"] == "completed" and out["paths"] == ["end_to_end"] and out["model_saved"]
    assert out["device"].endswith("· 2 replicas (MirroredStrategy)")
    assert len(list((tmp_path / "runs").glob("*/model.keras"))) == 1
    ((epoch, batches, loss, val_accuracy),) = out["history"]
    assert (epoch, batches) == (1, 4)  # 32 images, batch 8 (each replica computes 4 of a batch's 8)
    # The replicas' summed gradients are one device's: the same run on one device learns the same, to rounding.
    assert loss == pytest.approx(alone.history[0].loss, rel=1e-4)
    assert val_accuracy == alone.history[0].val_accuracy
    kernel = alone.model.get_layer("block5_conv1").get_weights()[0]
    assert out["trained_norm"] == pytest.approx(float(np.linalg.norm(kernel)), rel=1e-5)


@pytest.mark.parametrize(("precision", "output"), [(MIXED_FLOAT16, "softmax"), (MIXED_BFLOAT16, "sigmoid")])
def test_the_code_command_writes_a_script_in_the_chosen_precision(capsys, shared_tiny_dataset, precision, output):
    args = ["code", "--data", str(shared_tiny_dataset), "--weights", "none", "--output", output]
    assert main([*args, "--precision", precision]) == 0
    script = capsys.readouterr().out
    compile(script, "train.py", "exec")
    assert f'keras.mixed_precision.set_global_policy("{precision}")' in script
    assert 'name="preprocess", dtype="float32")(inputs)' in script  # as in the lab: pixels in float32
    assert f'activation="{output}", name="predictions",\n    dtype="float32",' in script
    assert ("LossScaleOptimizer" in script) == (precision == MIXED_FLOAT16)
    assert f"computing in {precision}" in script
    assert all(len(line) <= 79 for line in script.splitlines() if "float" in line or "precision" in line)
    assert main(args) == 0 and "mixed_precision" not in capsys.readouterr().out  # float32: as before
