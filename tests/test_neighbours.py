"""Explained by examples (tlcore.neighbours, tlcore.tf.neighbours): a run records its training images, and an
image's nearest ones at the head's input are found, kept, shown on the Inference page and in predict --json."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.state import SOURCE_FOLDER, K
from tests.conftest import ROOT
from tests.test_cli import run_cli
from tlcore.neighbours import NEIGHBOURS_FILE, TrainingVectors, unit_rows
from tlcore.run_folder import MODEL_FILE, RUN_FILE, load_record


@pytest.fixture
def run_dir(runs_at_10_and_14, tmp_path):
    """A copy of a finished tiny run (8 training images a class, 32 px): its vectors are kept in the copy."""
    copy = tmp_path / runs_at_10_and_14[1].name
    shutil.copytree(runs_at_10_and_14[1], copy)
    return copy


def _examples(run_dir):
    from tlcore.tf.model import load_run_model
    from tlcore.tf.neighbours import Examples

    return Examples.of(run_dir, load_record(run_dir), load_run_model(run_dir))


def test_nearest_is_cosine_similarity_most_similar_first():
    vectors = TrainingVectors(("a", "b", "c"), ("x", "y", "x"), unit_rows(np.array([[1.0, 0], [0, 2.0], [1, 1]])))
    found = vectors.nearest(np.array([3.0, 0.1]), k=2)
    assert [n.file for n in found] == ["a", "c"]
    assert found[0].similarity == pytest.approx(3.0 / np.hypot(3.0, 0.1))
    assert found[1].similarity == pytest.approx((3.0 + 0.1) / (np.hypot(3.0, 0.1) * np.sqrt(2)))
    assert unit_rows(np.zeros((1, 2))).tolist() == [[0.0, 0.0]]  # a zero vector is similar to nothing


def test_a_run_records_its_training_images_and_a_training_image_finds_itself_first(run_dir):
    record = load_record(run_dir)
    assert record.train_files is not None and len(record.train_files) == 16
    assert record.train_files[0] == "train/cats/cats_000.png"
    examples = _examples(run_dir)
    assert examples.note == "" and examples.vectors is not None and examples.vectors.vectors.shape[0] == 16
    root = record.dataset.root
    image = os.path.join(root, "train/dogs/dogs_003.png")
    found = examples.nearest(image)
    assert len(found) == 5 and found[0].file == image and found[0].label == "dogs"
    assert found[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert [n.similarity for n in found] == sorted((n.similarity for n in found), reverse=True)
    # Only the run's own training images: never a validation image, never a file outside its dataset.
    trained_on = {os.path.join(root, name) for name in record.train_files}
    assert all(n.file in trained_on for n in found)


def test_the_similarity_is_that_of_the_heads_input(run_dir):
    """Checked against the model's own pooling layer's output, computed here independently."""
    import keras

    from tlcore.tf.inference import to_pixels
    from tlcore.tf.model import load_run_model

    model = load_run_model(run_dir)
    pooled = keras.Model(model.inputs, model.get_layer("head_max_pool").output)  # TINY's head: global max pooling
    record = load_record(run_dir)
    query = os.path.join(record.dataset.root, "validation/cats/cats_001.png")
    found = _examples(run_dir).nearest(query)
    a = pooled.predict(to_pixels(query, 32)[None].astype(np.float32), verbose=0).ravel()
    for n in found[:2]:
        b = pooled.predict(to_pixels(n.file, 32)[None].astype(np.float32), verbose=0).ravel()
        assert n.similarity == pytest.approx(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))), abs=1e-5)


def test_the_vectors_are_kept_for_their_model_file_and_made_again_for_another(run_dir, monkeypatch):
    from tlcore.tf import neighbours

    first = _examples(run_dir).vectors
    assert (run_dir / NEIGHBOURS_FILE).is_file()

    def no_pass(*_args, **_kwargs):
        raise AssertionError("the kept vectors were not used")

    with monkeypatch.context() as m:  # a later view reads them: no image goes through VGG16 again
        m.setattr(neighbours, "vectors_of", no_pass)
        again = _examples(run_dir).vectors
    assert again is not None and first is not None and np.array_equal(again.vectors, first.vectors)
    stat = (run_dir / MODEL_FILE).stat()
    os.utime(run_dir / MODEL_FILE, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # another model file
    calls: list[int] = []
    real = neighbours.vectors_of

    def counted(*args):
        calls.append(len(args))
        return real(*args)

    monkeypatch.setattr(neighbours, "vectors_of", counted)
    _examples(run_dir)
    assert calls  # made again


def test_an_older_run_says_why_it_has_no_neighbours(run_dir):
    path = run_dir / RUN_FILE
    written = json.loads(path.read_text())
    del written["train_files"]
    path.write_text(json.dumps(written))
    examples = _examples(run_dir)
    assert examples.vectors is None and "saved before runs recorded their training images" in examples.note
    record = load_record(run_dir)
    proc = run_cli(
        "predict", "--run", str(run_dir), os.path.join(record.dataset.root, "validation/cats/cats_000.png"), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["neighbours"] == [] and "saved before runs recorded" in result["neighbours_note"]


def test_predict_json_lists_five_neighbours(run_dir):
    record = load_record(run_dir)
    image = os.path.join(record.dataset.root, "train/cats/cats_002.png")
    proc = run_cli("predict", "--run", str(run_dir), image, "--json")
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    neighbours = result["neighbours"]
    assert len(neighbours) == 5 and set(neighbours[0]) == {"file", "label", "similarity"}
    assert neighbours[0]["file"] == image and neighbours[0]["label"] == "cats"
    assert "neighbours_note" not in result
    plain = run_cli("predict", "--run", str(run_dir), image)  # the text output is what it was
    assert plain.returncode == 0 and plain.stdout.startswith(f"{image}: ") and len(plain.stdout.splitlines()) == 1


def test_the_inference_page_shows_five_training_images_under_a_prediction(run_dir, monkeypatch):
    monkeypatch.setenv("TLLAB_RUNS_DIR", str(run_dir.parent))
    record = load_record(run_dir)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[K.source] = SOURCE_FOLDER
    at.session_state[K.folder] = record.dataset.root
    at.session_state[K.last_run_dir] = str(run_dir)
    at = at.switch_page("pages/inference.py").run()
    at = at.selectbox(key="inference_pick").select("cats/cats_001.png").run()
    assert not at.exception
    captions = [c for img in at.image for c in img.captions]
    neighbour_captions = [c for c in captions if " · " in c]
    assert len(neighbour_captions) == 5
    assert all(
        c.split(" · ")[0] in ("cats", "dogs") and -1.0 <= float(c.split(" · ")[1]) <= 1.0 for c in neighbour_captions
    )
    assert any("Most like it among the training images" in c.value for c in at.caption)
