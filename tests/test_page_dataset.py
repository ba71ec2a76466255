"""The Dataset page (AppTest over the whole app) and tlcore.preview's augmentation preview."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.state import SOURCE_FOLDER, K
from tests.conftest import ROOT, SAMPLE_DATA
from tests.helpers import make_dataset_folder, make_image, skipped_table
from tlcore.config import AugmentConfig
from tlcore.imageio import load_array
from tlcore.preview import augmentation_is_identity, describe_augmentation
from tlcore.tf.augment import augment_preview

CLASSES = ("animals", "vehicles")


def _app(**state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def _grid(at: AppTest) -> list[tuple[str, str]]:
    """(url, caption) of the sample grid's images (captioned with a class name)."""
    images = [(image.value[0], image.captions[0]) for image in at.image]
    return [(url, caption) for url, caption in images if caption in CLASSES]


def _folder_state(root) -> dict:
    return {K.source: SOURCE_FOLDER, K.folder: str(root)}


def test_renders_the_sample_grid_balanced_and_labelled():
    at = _app()
    assert not at.exception
    assert at.title[0].value == "Dataset"
    grid = _grid(at)
    assert len(grid) == 16
    assert Counter(caption for _, caption in grid) == {"animals": 8, "vehicles": 8}
    assert len({url for url, _ in grid}) == 16  # 16 different images
    assert len(at.get("vega_lite_chart")) == 1  # class counts per split
    assert "animals, vehicles" in " ".join(m.value for m in at.markdown)
    assert [s.value for s in at.main.success] == ["Every image file could be read."]
    assert "3 other file(s) ignored" in " ".join(c.value for c in at.caption)


def test_new_sample_button_draws_other_images():
    at = _app()
    before = _grid(at)
    at.button(key="new_sample").click().run()
    assert not at.exception
    after = _grid(at)
    assert at.session_state[K.grid_seed] == 1
    assert len(after) == 16 and after != before


def test_skipped_files_are_listed_with_their_reason(tmp_path):
    root = make_dataset_folder(tmp_path / "data", n_train=4, n_val=2)
    (root / "train" / "cats" / "bad.jpg").write_text("this is not an image")
    (root / "notes.txt").write_text("ignored")
    at = _app(**_folder_state(root))
    assert not at.exception
    table = skipped_table(at)
    assert list(table["file"]) == [os.path.join("train", "cats", "bad.jpg")]
    assert "not an image" in table["reason"][0]
    assert "1 other file(s) ignored" in " ".join(c.value for c in at.caption)


def test_imbalance_warning_names_the_ratio(tmp_path):
    root = make_dataset_folder(tmp_path / "data", n_train=4, n_val=2)
    for i in range(8):  # cats: 12 training images, dogs: 4
        make_image((200, 60, 50), seed=100 + i).save(root / "train" / "cats" / f"extra_{i}.png")
    at = _app(**_folder_state(root))
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "'cats' has 3.0x as many training images as 'dogs' (12 vs 4)" in warnings


def test_balanced_sample_has_no_imbalance_warning():
    at = _app()
    assert not any("Imbalanced" in w.value for w in at.warning)


def test_augmentation_preview_shows_eight_versions_of_one_image():
    at = _app()
    assert at.toggle(key="preview_augmentation").value is False  # nothing loads TensorFlow unasked
    at.toggle(key="preview_augmentation").set_value(True).run()
    assert not at.exception
    captions = [image.captions[0] for image in at.image]
    assert sum(c.startswith("augmented ") for c in captions) == 8
    assert any(c.startswith("original (") for c in captions)


def test_augmentation_preview_with_every_setting_off_says_so():
    off = {K.flip: False, K.rotation: 0.0, K.zoom: 0.0, K.translation: 0.0, K.contrast: 0.0}
    at = _app(**off)
    at.toggle(key="preview_augmentation").set_value(True).run()
    assert not at.exception
    assert any("Every augmentation is off" in i.value for i in at.info)
    assert not any(image.captions[0].startswith("augmented") for image in at.image)


def test_augmentation_controls_write_the_shared_state():
    at = _app()
    at.toggle(key=K.augment).set_value(True).run()
    at.slider(key=K.rotation).set_value(0.25).run()
    assert not at.exception
    assert at.session_state[K.augment] is True and at.session_state[K.rotation] == 0.25
    assert "rotation up to ±90°" in " ".join(c.value for c in at.caption)


def test_dataset_page_renders_without_importing_tensorflow():
    # A fresh interpreter: this test process may already hold TensorFlow.
    code = (
        "import json, sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(ROOT / 'app.py')!r}, default_timeout=60).run()\n"
        "print(json.dumps({'exception': [e.value for e in at.exception], 'title': at.title[0].value,\n"
        "  'images': len(at.image), 'tensorflow': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules}))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"exception": [], "title": "Dataset", "images": 16, "tensorflow": False, "keras": False}


# --- tlcore.preview ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    path = sorted((SAMPLE_DATA / "train" / "animals").iterdir())[0]
    return load_array(path, 64)


def test_augment_preview_gives_eight_different_versions(picture):
    versions = augment_preview(picture, AugmentConfig(), n=8, seed=0)
    assert len(versions) == 8
    for version in versions:
        assert version.shape == picture.shape and version.dtype == np.uint8
        assert not np.array_equal(version, picture)
    for i in range(8):
        for j in range(i + 1, 8):
            assert not np.array_equal(versions[i], versions[j]), (i, j)


def test_augment_preview_is_repeatable_by_seed(picture):
    first = augment_preview(picture, AugmentConfig(), n=3, seed=7)
    again = augment_preview(picture, AugmentConfig(), n=3, seed=7)
    other = augment_preview(picture, AugmentConfig(), n=3, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_augment_preview_with_everything_off_is_the_identity(picture):
    off = AugmentConfig(flip=False, rotation=0.0, zoom=0.0, translation=0.0, contrast=0.0)
    assert augmentation_is_identity(off)
    assert not augmentation_is_identity(AugmentConfig(flip=False, rotation=0.0, zoom=0.0, translation=0.0))
    versions = augment_preview(picture, off, n=4)
    assert len(versions) == 4 and all(np.array_equal(v, picture) for v in versions)
    assert describe_augmentation(off) == "no augmentation (every setting is off)"


def test_augment_preview_refuses_a_bad_shape(picture):
    with pytest.raises(ValueError, match="shape"):
        augment_preview(picture[..., 0], AugmentConfig())


def test_describe_augmentation_in_words():
    text = describe_augmentation(AugmentConfig(rotation=0.25, zoom=0.2, translation=0.0, contrast=0.0))
    assert text == "horizontal flip, rotation up to ±90°, zoom up to ±20%"


def _training_images_shown(at: AppTest) -> str:
    text = " ".join(m.value for m in at.markdown)
    return text.split(" — ")[1].split(" training")[0]


def test_images_added_or_removed_in_a_nested_class_folder_show_in_the_counts(tmp_path):
    root = make_dataset_folder(tmp_path / "data", n_train=4, n_val=2)
    nested = root / "train" / "cats" / "indoor"
    nested.mkdir()
    make_image((200, 60, 50), seed=1).save(nested / "a.png")
    at = _app(**_folder_state(root))
    assert _training_images_shown(at) == "9"
    make_image((200, 60, 50), seed=2).save(nested / "b.png")  # only indoor/'s mtime changes
    at.run()
    assert not at.exception
    assert _training_images_shown(at) == "10"
    (nested / "a.png").unlink()
    (nested / "b.png").unlink()
    at.run()
    assert _training_images_shown(at) == "8"


def _preview_shown(at: AppTest) -> tuple[bool, int]:
    """(what the toggle reads, how many augmented images are shown)."""
    shown = sum(image.captions[0].startswith("augmented ") for image in at.image)
    return at.toggle(key="preview_augmentation").value, shown


def test_the_preview_toggle_always_reads_what_is_shown_across_pages():
    at = _app()
    assert _preview_shown(at) == (False, 0)
    at.toggle(key="preview_augmentation").set_value(True).run()
    assert _preview_shown(at) == (True, 8)
    for page in ("pages/runs.py", "pages/model.py"):  # away (the toggle's widget state is dropped) and back
        at.switch_page(page).run()
        at.switch_page("pages/dataset.py").run()
        assert not at.exception
        assert _preview_shown(at) == (True, 8)
    at.slider(key=K.rotation).set_value(0.25).run()  # another control on the page: the preview stays
    assert _preview_shown(at) == (True, 8)
    at.toggle(key="preview_augmentation").set_value(False).run()
    assert _preview_shown(at) == (False, 0)
    at.switch_page("pages/runs.py").run()
    at.switch_page("pages/dataset.py").run()
    assert _preview_shown(at) == (False, 0)
