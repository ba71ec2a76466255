"""Exports (tlcore.tf.export, `python -m tlcore export`): each format predicts what the run's model predicts,
carries its classes and input, and the README's lines run a .tflite file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.test_cli import assert_one_line_error, run_cli
from tlcore.exports import CARD_FILE, FLOAT_MAX_DP, FORMATS, LABELS_FILE, SAVEDMODEL, TFLITE, TFLITE_FILE, TFLITE_INT8
from tlcore.run_folder import MODEL_FILE, load_record


@pytest.fixture(scope="module")
def run_dir(runs_at_10_and_14, tmp_path_factory) -> Path:
    """A copy of a finished tiny run (32 px, random weights, block 5 trained): its exports go into the copy."""
    import shutil

    copy = tmp_path_factory.mktemp("export") / runs_at_10_and_14[1].name
    shutil.copytree(runs_at_10_and_14[1], copy)
    return copy


@pytest.fixture(scope="module")
def exported(run_dir):
    """Each format exported once, into the run's exports folder."""
    from tlcore.tf.export import export_run

    return {fmt: export_run(run_dir, fmt) for fmt in FORMATS}


def _tflite_top_classes(path: Path, images: np.ndarray) -> list[int]:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    given, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    tops = []
    for image in images.astype(np.float32):
        interpreter.set_tensor(given["index"], image[None])
        interpreter.invoke()
        tops.append(int(np.argmax(interpreter.get_tensor(out["index"]))))
    return tops


def test_float_exports_predict_what_the_run_predicts(exported, run_dir):
    record = load_record(run_dir)
    for fmt in (SAVEDMODEL, TFLITE):
        result = exported[fmt]
        assert result.passed, result.summary
        assert result.check.images == len(record.validation_files or ()) == 8
        assert result.check.same_top_class == 8 and result.check.max_abs_dp <= FLOAT_MAX_DP
        assert result.check.export_ms > 0 and result.check.keras_ms > 0
        assert result.path == run_dir / "exports" / fmt
    assert (run_dir / "exports" / SAVEDMODEL / "saved_model.pb").is_file()
    # Each weight stored once: about the weights' own size, not twice it.
    from tlcore.tf.model import load_run_model

    weights = exported[SAVEDMODEL].weights_bytes
    assert weights == 4 * load_run_model(run_dir).count_params()  # float32
    assert weights < exported[SAVEDMODEL].size_bytes < 1.02 * weights
    assert exported[TFLITE].size_bytes == (run_dir / "exports" / TFLITE / TFLITE_FILE).stat().st_size


def test_the_int8_check_counts_what_the_file_itself_predicts(exported, run_dir):
    """The agreement recorded is the file's own, read back by an interpreter of the test's."""
    from tlcore.tf.inference import probabilities, run_validation_images
    from tlcore.tf.model import load_run_model

    result = exported[TFLITE_INT8]
    record = load_record(run_dir)
    images, _ = run_validation_images(record, 32)
    keras_tops = probabilities(load_run_model(run_dir), images).argmax(axis=1)
    int8_tops = _tflite_top_classes(result.path / TFLITE_FILE, images)
    assert result.check.same_top_class == int(np.sum(np.array(int8_tops) == keras_tops))
    # int8 weights: about a quarter of the float file
    assert result.size_bytes < 0.35 * exported[TFLITE].size_bytes
    assert result.passed == (result.check.agreement >= 0.98)


def test_every_export_carries_its_classes_input_and_check(exported):
    for fmt, result in exported.items():
        assert (result.path / LABELS_FILE).read_text().splitlines() == ["cats", "dogs"]
        card = json.loads((result.path / CARD_FILE).read_text())
        assert card["format"] == fmt and card["class_names"] == ["cats", "dogs"] and card["image_size"] == 32
        assert card["input"] == "one RGB image as float32 [1, 32, 32, 3], pixel values 0-255 (not scaled)"
        assert card["same_top_class"] == result.check.same_top_class and card["passed"] == result.passed
        assert card["keras_size_bytes"] > 0 and card["summary"] == result.summary
        assert card["weights_bytes"] == result.weights_bytes and "MB of float32 weights" in card["summary"]


def test_the_readme_lines_run_a_tflite_file(exported, tmp_path):
    """README's snippet, as written, classifies an image with the exported file (TensorFlow's interpreter
    stands in where ai-edge-litert is not installed, as the snippet says)."""
    readme = (ROOT / "README.md").read_text()
    (snippet,) = re.findall(r"<!-- run-tflite -->\n```python\n(.*?)```", readme, flags=re.S)
    from PIL import Image

    image = tmp_path / "photo.png"
    Image.fromarray(np.full((60, 60, 3), (210, 60, 50), dtype=np.uint8)).save(image)
    folder = exported[TFLITE].path
    code = snippet.replace("my_export", str(folder)).replace("photo.jpg", str(image))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    name, probability = proc.stdout.split()
    assert name in ("cats", "dogs") and 0.0 <= float(probability) <= 1.0


def test_the_command_exports_to_a_folder_and_prints_its_card(run_dir, tmp_path):
    out = tmp_path / "phone"
    proc = run_cli("export", str(run_dir), "--format", TFLITE, "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    card = json.loads(proc.stdout)
    assert card["path"] == str(out) and card["passed"] is True and card["images"] == 8
    assert (out / TFLITE_FILE).is_file() and (out / LABELS_FILE).is_file()
    text = run_cli("export", str(run_dir), "--format", TFLITE, "--out", str(out))
    assert text.returncode == 0 and text.stdout.splitlines()[0] == f"wrote {out}"
    assert "predicts the same as the run's model on 8 validation images" in text.stdout


def test_a_run_without_a_model_or_an_unknown_format_is_refused(run_dir, tmp_path):
    import shutil

    bare = tmp_path / run_dir.name
    shutil.copytree(run_dir, bare, ignore=shutil.ignore_patterns("exports"))
    (bare / MODEL_FILE).unlink()
    assert_one_line_error(run_cli("export", str(bare), "--format", TFLITE), 1, "saved no model")
    proc = run_cli("export", str(run_dir), "--format", "onnx")
    assert proc.returncode == 2 and "invalid choice: 'onnx'" in proc.stderr
