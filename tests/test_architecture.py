"""VGG16's arithmetic without TensorFlow (tlcore.architecture, tlcore.estimate) against Keras, and
weights files checked when typed (tlcore.backbones.weights_status, h5py only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.weights_files import VGG, write_keras3, write_legacy
from tlcore import architecture
from tlcore.architecture import layer_flops
from tlcore.backbones import check_weights_file, weights_status
from tlcore.config import HeadConfig, TrainConfig
from tlcore.estimate import describe_sweep, estimate, machine_gflops

SHARED_WEIGHTS = Path("/work/shared/weights/vgg16_imagenet_notop.weights.h5")
# (image size, classes, head): every pooling, with and without dense layers and dropout, both outputs.
MODELS = [
    (32, 2, HeadConfig(pooling="flatten", dense=(), dropout=0.0)),
    (64, 5, HeadConfig(pooling="avg", dense=(256,), dropout=0.5)),
    (100, 2, HeadConfig(pooling="max", dense=(256,), dropout=0.0, output="sigmoid")),
    (128, 2, HeadConfig(pooling="flatten", dense=(256,), dropout=0.5, output="sigmoid")),
    (128, 5, HeadConfig(pooling="avg", dense=(), dropout=0.2)),
    (64, 3, HeadConfig(pooling="max", dense=(1024, 512), dropout=0.3)),
]
FREEZE_POINTS = (0, 3, 10, 14, 18)


@pytest.mark.parametrize(("image_size", "num_classes", "head"), MODELS)
def test_table_and_counts_equal_keras(image_size, num_classes, head):
    import tlcore.tf.model

    model = tlcore.tf.model.build_model(num_classes, image_size, weights="none", head=head)
    for k in FREEZE_POINTS:
        tlcore.tf.model.set_freeze_point(model, k)
        keras_table = tlcore.tf.model.layer_table(model)
        ours = architecture.layer_table(num_classes, image_size, head, freeze_at=k)
        pd.testing.assert_frame_equal(ours, keras_table)
        assert architecture.counts_at(ours, k) == tlcore.tf.model.param_counts(model)


def test_table_at_128_px_reads_as_vgg16():
    table = architecture.layer_table(2, 128, HeadConfig(dense=(256,), dropout=0.5))
    row = table.set_index("name").loc["block3_conv1"]
    assert (row.type, row.output_shape, row.params, row.block) == ("Conv2D", "32x32x256", 295_168, "block3")
    head = 1_024 + 131_328 + 514  # normalisation (a scale and an offset per feature), dense 256, output
    assert architecture.counts_at(table, 18) == (head, 14_714_688)
    assert architecture.counts_at(table, 0) == (14_714_688 + head, 0)
    assert architecture.feature_side(128) == 4 and architecture.feature_side(100) == 3
    with pytest.raises(ValueError, match="freeze_at=19"):
        architecture.layer_table(2, 128, freeze_at=19)


def test_one_table_of_facts_feeds_the_registry_and_the_estimate():
    assert VGG.layer_blocks == tuple(layer.block for layer in architecture.VGG16_CHAIN)
    assert VGG.block_boundaries == (0, 3, 6, 10, 14, 18)
    assert VGG.last_conv_layer == "block5_conv3"
    assert len(VGG.weight_layers) == 13 and VGG.weight_layers[2] == ("block2_conv1", ((3, 3, 64, 128), (128,)))
    # VGG16's convolutions at 224 px: the published 15.5 GMAC, i.e. ~30.7 GFLOP per image.
    assert sum(layer_flops(224)) == pytest.approx(30.69e9, rel=1e-3)
    assert layer_flops(64)[2] == 0.0 and layer_flops(64)[0] == 2 * 64 * 64 * 9 * 3 * 64


def test_machine_speed_and_estimates_need_no_tensorflow():
    gflops = machine_gflops()
    assert gflops > 0 and machine_gflops() == gflops  # measured once per process
    config = TrainConfig(freeze_at=14, image_size=64, epochs=3)
    one = estimate(config, 100, 20, speed=100.0)
    sweep = describe_sweep(config, [18, 14], True, 100, 20, speed=100.0)
    assert sweep.startswith("about ") and sweep.endswith("for 3 run(s) on this machine")
    assert one.total_seconds > 0
    with pytest.raises(ValueError, match="must not repeat"):
        describe_sweep(config, [14, 14], True, 100, 20, speed=100.0)


def _run_fresh(code: str, **env_vars: str) -> dict:
    """Run code in a fresh interpreter (this one may hold TensorFlow); its last stdout line is JSON."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env_vars}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_table_counts_estimate_and_weights_check_import_no_tensorflow():
    report = _run_fresh(
        "import json, sys\n"
        "from tlcore.architecture import layer_table, counts_at\n"
        "from tlcore.backbones import weights_status\n"
        "from tlcore.config import TrainConfig\n"
        "from tlcore.estimate import estimate, machine_gflops\n"
        "counts = counts_at(layer_table(2, 128), 14)\n"
        "estimate(TrainConfig(), 100, 20, machine_gflops())\n"
        "ok, _ = weights_status('README.md')\n"
        "print(json.dumps({'counts': counts, 'ok': ok, 'tf': sorted(m for m in ('tensorflow', 'keras')\n"
        "                                                             if m in sys.modules)}))\n"
    )
    assert report == {"counts": [7_079_424 + 1_024 + 131_842, 14_714_688 - 7_079_424], "ok": False, "tf": []}


@pytest.mark.parametrize("page", ["pages/model.py", "pages/train.py", "pages/runs.py", "pages/inference.py"])
def test_pages_render_without_importing_tensorflow(page, tmp_path):
    # AppTest runs the app in-process: a fresh interpreter tells what rendering imported.
    report = _run_fresh(
        "import json, sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(ROOT / 'app.py')!r}, default_timeout=60).run()\n"
        f"at.switch_page({page!r}).run()\n"
        "print(json.dumps({'exception': [e.value for e in at.exception], 'title': at.title[0].value,\n"
        "  'captions': [c.value for c in at.caption], 'metrics': [m.label for m in at.metric],\n"
        "  'info': [i.value for i in at.info],\n"
        "  'tensorflow': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules}))\n",
        TLLAB_RUNS_DIR=str(tmp_path / "runs"),
    )  # no run yet: the Inference page needs no model
    assert report["exception"] == [] and (report["tensorflow"], report["keras"]) == (False, False)
    if page == "pages/model.py":
        assert report["metrics"][:2] == ["Trainable parameters", "Frozen parameters"]
    if page == "pages/train.py":
        assert any(c.startswith("Estimated time on this machine: about") for c in report["captions"])
    if page == "pages/inference.py":
        assert any(i.startswith("No trained model yet") for i in report["info"])
    if page == "pages/runs.py":  # the sweep's estimate shows before it starts
        assert any(c.startswith("Estimated time: about") and "for 7 run(s)" in c for c in report["captions"])


# --- weights files checked when typed ------------------------------------------------------------


def _refusal(path: Path) -> str:
    ok, message = weights_status(str(path))
    assert not ok
    return message


def test_files_that_are_not_hdf5_are_refused_naming_the_file(tmp_path):
    assert _refusal(ROOT / "README.md") == (
        "Weights file README.md is not a readable HDF5 weights file (Keras weights files are HDF5)."
    )
    (tmp_path / "empty.h5").write_bytes(b"")
    assert (
        _refusal(tmp_path / "empty.h5") == "Weights file empty.h5 is empty (0 bytes), not a readable HDF5 weights file."
    )
    (tmp_path / "notes.h5").write_text("these are not weights")
    assert "notes.h5 is not a readable HDF5" in _refusal(tmp_path / "notes.h5")
    assert _refusal(tmp_path / "nope.h5") == f"Weights file not found: {tmp_path / 'nope.h5'}"
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f.create_dataset("x", data=[1, 2, 3])
    assert "data.h5 is HDF5 but not a Keras weights file" in _refusal(tmp_path / "data.h5")


@pytest.mark.parametrize("write", [write_keras3, write_legacy])
def test_vgg16_files_in_either_layout_are_accepted(tmp_path, write):
    path = write(tmp_path / "vgg16.h5")
    ok, message = weights_status(str(path))
    layout = "Keras 3 (.weights.h5)" if write is write_keras3 else "legacy Keras (.h5)"
    assert ok and message == f"Weights file vgg16.h5 (0 MB): vgg16's 13 conv layers, {layout} layout."


@pytest.mark.parametrize("write", [write_keras3, write_legacy])
def test_wrong_shapes_missing_and_extra_layers_are_named(tmp_path, write):
    layers = list(VGG.weight_layers)
    wrong = [*layers[:2], ("block2_conv1", ((3, 3, 64, 64), (64,))), *layers[3:]]
    assert _refusal(write(tmp_path / "wrong.h5", wrong)) == (
        "Weights file wrong.h5 does not fit vgg16 (no top): block2_conv1 (conv layer 3 of 13) needs arrays "
        "3x3x64x128 + 128, the file's layer 'block2_conv1' holds 3x3x64x64 + 64."
    )
    missing = layers[:6] + layers[7:]
    assert _refusal(write(tmp_path / "missing.h5", missing)) == (
        "Weights file missing.h5 does not fit vgg16 (no top): it has no weights for block3_conv3 (conv layer 7 of 13)."
    )
    extra = [*layers, ("dense", ((512, 10), (10,)))]
    assert _refusal(write(tmp_path / "extra.h5", extra)) == (
        "Weights file extra.h5 does not fit vgg16 (no top): it holds weights for 14 layers, vgg16 has 13: "
        "'dense' is not one of them."
    )
    assert _refusal(write(tmp_path / "short.h5", layers[:2])).endswith(
        "no weights for block2_conv1 (conv layer 3 of 13)."
    )


def test_the_verdict_is_cached_until_the_file_changes(tmp_path):
    path = write_keras3(tmp_path / "w.weights.h5")
    assert check_weights_file(path, VGG) == "Keras 3 (.weights.h5)"
    path.write_text("overwritten")  # another size and modification time: read again
    assert not weights_status(str(path))[0]
    write_keras3(path)
    assert weights_status(str(path))[0]


@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason="the shared ImageNet weights file is not on this machine")
def test_the_shared_imagenet_file_is_accepted():
    ok, message = weights_status(str(SHARED_WEIGHTS))
    assert ok and message.startswith("Weights file vgg16_imagenet_notop.weights.h5 (59 MB): vgg16's 13 conv layers")


def test_train_page_disables_start_and_says_why_for_a_file_that_is_not_weights():
    from streamlit.testing.v1 import AppTest

    from dashboard.state import WEIGHTS_FILE, K

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[K.weights_choice] = WEIGHTS_FILE
    at.session_state[K.weights_path] = str(ROOT / "README.md")
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    reason = "Weights file README.md is not a readable HDF5 weights file (Keras weights files are HDF5)."
    assert at.button(key="start_training").disabled
    assert [e.value for e in at.sidebar.error] == [reason]
    assert any(e.value.startswith(reason) for e in at.main.error)
    at.switch_page("pages/runs.py").run()
    assert not at.exception, at.exception
    assert at.button(key="start_sweep").disabled
    assert any(c.value.startswith(reason) for c in at.main.caption)
