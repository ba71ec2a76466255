"""Explaining named images (probabilities, Grad-CAM, bad files kept apart), per-class tables, upload, split."""

from __future__ import annotations

import io
import os

import keras
import numpy as np
import pytest

from dashboard.inference.evaluation import evaluation_key
from tests.helpers import make_dataset_folder, make_image
from tlcore.config import HeadConfig
from tlcore.data import same_held_out_split, scan, split_files
from tlcore.tf.gradcam import explainer_for, gradcam
from tlcore.tf.inference import (
    Evaluation,
    ImageInput,
    evaluate_split,
    explain,
    num_classes_of,
    probabilities,
    to_pixels,
)
from tlcore.tf.model import build_model
from tlcore.uploads import UPLOAD_DIR_ENV, save_uploaded_model

CLASSES = ["cats", "dogs"]
TINY_HEAD = HeadConfig(dense=(8,), dropout=0.0)


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_model(2, image_size=32, weights="none", head=TINY_HEAD)


@pytest.fixture(scope="module")
def grad_model(model) -> keras.Model:
    return explainer_for(model)


def _png(colour=(210, 60, 50), size: int = 50, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    make_image(colour, size=size, seed=seed).save(buffer, format="PNG")
    return buffer.getvalue()


# --- explain ---------------------------------------------------------------------------------


def test_each_usable_image_gets_probabilities_a_heatmap_and_an_overlay(model, grad_model, tmp_path):
    path = tmp_path / "blue.png"
    make_image((50, 80, 210), size=60, seed=1).save(path)
    sources: list[tuple[str, ImageInput]] = [("red.png", _png()), ("blue.png", str(path))]
    results, problems = explain(model, grad_model, sources, CLASSES)

    assert problems == []
    assert [r.name for r in results] == ["red.png", "blue.png"]
    expected = probabilities(model, np.stack([to_pixels(_png(), 32), to_pixels(str(path), 32)]))
    for r, row in zip(results, expected):
        assert list(r.probabilities) == CLASSES
        np.testing.assert_allclose(list(r.probabilities.values()), row, atol=1e-6)
        assert r.top_class == CLASSES[int(np.argmax(row))] and r.top_probability == pytest.approx(row.max())
        assert r.display.shape == (224, 224, 3) and r.display.dtype == np.uint8  # people see a larger copy
        assert r.heatmap.shape == (2, 2)  # 32 px / 16: four poolings before block5_conv3
        assert 0.0 <= r.heatmap.min() <= r.heatmap.max() <= 1.0
        assert r.overlay.shape == (224, 224, 3) and r.overlay.dtype == np.uint8
    # The heatmap explains the predicted class, exactly as gradcam does on its own.
    heatmap, index = gradcam(model, to_pixels(_png(), 32), None, grad_model=grad_model)
    assert index == CLASSES.index(results[0].top_class)
    assert results[0].heatmap is not None
    np.testing.assert_allclose(results[0].heatmap, heatmap, atol=1e-6)
    assert results[0].summary() == {
        "name": "red.png",
        "probabilities": results[0].probabilities,
        "top_class": results[0].top_class,
    }


def test_a_bad_file_is_reported_by_name_and_the_others_still_get_results(model, grad_model):
    sources = [("a.png", _png()), ("notes.png", b"<html>not a picture</html>"), ("b.png", _png(seed=3))]
    results, problems = explain(model, grad_model, sources, CLASSES)
    assert [r.name for r in results] == ["a.png", "b.png"]
    ((name, reason),) = problems
    assert name == "notes.png" and "not an image" in reason


def test_only_bad_files_give_no_results_and_every_reason(model, grad_model, tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    results, problems = explain(model, grad_model, [("x.png", b"nope"), ("empty.png", str(empty))], CLASSES)
    assert results == []
    assert [n for n, _ in problems] == ["x.png", "empty.png"]
    assert problems[1][1] == "empty file (0 bytes)"
    assert explain(model, grad_model, [], CLASSES) == ([], [])


def test_an_image_over_max_pixels_is_refused_not_decoded(model, grad_model):
    results, problems = explain(model, grad_model, [("big.png", _png(size=50))], CLASSES, max_pixels=40 * 40)
    assert results == []
    ((name, reason),) = problems
    assert name == "big.png" and "too large" in reason


def test_without_a_grad_model_there_is_no_heatmap_but_the_same_prediction(model, grad_model):
    (with_cam,), _ = explain(model, grad_model, [("a.png", _png())], CLASSES)
    (plain,), problems = explain(model, None, [("a.png", _png())], CLASSES, display_size=64)
    assert problems == [] and plain.heatmap is None and plain.overlay is None
    assert plain.probabilities == pytest.approx(with_cam.probabilities)
    assert plain.display.shape == (64, 64, 3)


def test_a_file_object_and_a_small_display_size_work(model):
    (result,), _ = explain(model, None, [("stream.png", io.BytesIO(_png()))], CLASSES, display_size=16)
    assert result.display.shape == (32, 32, 3)  # never smaller than what the model sees
    np.testing.assert_array_equal(result.display, to_pixels(_png(), 32))


def test_class_names_must_match_the_model(model):
    with pytest.raises(ValueError, match="predicts 2 classes but 3 class names"):
        explain(model, None, [("a.png", _png())], ["a", "b", "c"])


def test_a_sigmoid_model_is_two_classes_and_explained_per_class():
    keras.utils.set_random_seed(0)
    head = HeadConfig(dense=(8,), dropout=0.0, output="sigmoid")
    sigmoid = build_model(2, image_size=32, weights="none", head=head)
    assert sigmoid.output_shape[-1] == 1 and num_classes_of(sigmoid) == 2
    (result,), _ = explain(sigmoid, explainer_for(sigmoid), [("a.png", _png())], CLASSES)
    p = float(sigmoid.predict_on_batch(to_pixels(_png(), 32)[None].astype("float32"))[0, 0])
    assert result.probabilities == pytest.approx({"cats": 1 - p, "dogs": p}, abs=1e-6)
    assert result.heatmap is not None


def test_a_model_without_vgg16s_last_conv_has_no_explainer(model):
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    other = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(pooled))
    assert explainer_for(other) is None
    assert num_classes_of(other) == 3
    assert explainer_for(model) is not None


# --- evaluation tables and helpers -------------------------------------------------------------


def test_per_class_table_counts_images_correct_and_accuracy():
    confusion = np.array([[3, 1, 0], [2, 2, 0], [0, 0, 0]])
    ev = Evaluation(["cats", "dogs", "owls"], confusion, np.zeros((8, 3)), np.zeros(8, int), np.zeros(8), [])
    table = ev.per_class_table()
    assert list(table.columns) == ["class", "images", "correct", "accuracy"]
    assert table["class"].tolist() == ["cats", "dogs", "owls"]
    assert table["images"].tolist() == [4, 4, 0]
    assert table["correct"].tolist() == [3, 2, 0]
    assert table["accuracy"].tolist()[:2] == [0.75, 0.5] and np.isnan(table["accuracy"].iloc[2])


def test_an_uploaded_model_is_saved_once_under_a_name_from_its_content(tmp_path, monkeypatch):
    first = save_uploaded_model(b"model bytes", tmp_path / "uploads")
    assert first.parent == tmp_path / "uploads" and first.suffix == ".keras"
    assert first.name.startswith("tllab-upload-") and first.read_bytes() == b"model bytes"
    os.utime(first, (1, 1))
    assert save_uploaded_model(b"model bytes", tmp_path / "uploads") == first
    assert first.stat().st_mtime == 1  # not written again
    assert save_uploaded_model(b"other bytes", tmp_path / "uploads") != first

    monkeypatch.setenv(UPLOAD_DIR_ENV, str(tmp_path / "from-env"))
    assert save_uploaded_model(b"model bytes").parent == tmp_path / "from-env"


def test_split_helpers_flag_another_split_and_key_the_evaluation(model, tmp_path):
    info = scan(make_dataset_folder(tmp_path / "data", n_train=4, n_val=3, size=32))
    files = split_files(info)
    assert files == {f"validation/{c}/{c}_{i:03d}.png" for c in CLASSES for i in range(3)}
    assert same_held_out_split({"validation_files": sorted(files)}, info)
    assert same_held_out_split({}, info)  # an uploaded model without run.json: nothing to compare with
    assert not same_held_out_split({"validation_files": sorted(files)[:-1]}, info)

    model_file = tmp_path / "m.keras"
    model_file.write_bytes(b"x")
    key = evaluation_key(model_file, info)
    assert key.startswith(f"{model_file}|") and str(info.root) in key
    assert evaluation_key(model_file, info) == key
    other = scan(make_dataset_folder(tmp_path / "other", n_train=4, n_val=2, size=32))
    assert evaluation_key(model_file, other) != key
    os.utime(model_file, (1, 1))  # the model was saved again
    assert evaluation_key(model_file, info) != key

    ev = evaluate_split(model, info, CLASSES)
    assert ev.confusion.sum() == 6 and ev.confusion.sum(axis=1).tolist() == [3, 3]
    assert sorted(str(p) for p in ev.paths) == sorted(str(info.root / f) for f in files)
