"""The Dataset page's maker (AppTest over app.py): classes, photos from files, counts, delete, the .zip."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from streamlit.proto.Block_pb2 import Block as BlockProto
from streamlit.testing.v1 import AppTest

from dashboard.state import SOURCE_PHOTOS, K
from tests.conftest import ROOT
from tlcore.photos import PhotoStore


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def at(runs_dir) -> AppTest:
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.session_state[K.source] = SOURCE_PHOTOS
    app.session_state[K.image_size] = 32
    return app.run()


def _add_class(at: AppTest, name: str) -> AppTest:
    at.text_input(key="photo_new_class").set_value(name)
    key = next(b.key for b in at.button if b.label == "Add class")
    assert key is not None
    return at.button(key=key).click().run()


def test_two_classes_and_their_photos_make_a_dataset_the_page_shows(at, runs_dir):
    assert not at.exception
    assert any("Name 2 or more classes" in i.value for i in at.info)
    _add_class(at, "cups")
    _add_class(at, "keys")
    assert [t.label for t in at.tabs] == ["cups (0)", "keys (0)"]
    for index, name in enumerate(("cups", "keys")):
        files = [(f"{name}{i}.jpg", _jpeg(10 * index + i), "image/jpeg") for i in range(6)]
        at.file_uploader(key=f"photo_files_{name}_0").set_value(files).run()
        assert not at.exception
    assert [t.label for t in at.tabs][:2] == ["cups (6)", "keys (6)"]
    # Now the page shows the dataset like any other: its classes, counts and grid.
    text = " ".join(m.value for m in at.markdown)
    assert "**2 classes:** cups, keys" in text and "in your photos." in text
    store = PhotoStore(at.session_state[K.owner], runs_dir)
    assert sum(store.counts().values()) == 12 and store.root.is_relative_to(runs_dir)


def test_a_heic_and_a_text_file_are_refused_naming_each_and_the_rest_are_kept(at):
    _add_class(at, "cups")
    files = [
        ("IMG_1.HEIC", b"\x00\x00\x00\x18ftypheic" + bytes(40), "image/heic"),
        ("good.jpg", _jpeg(1), "image/jpeg"),
        ("notes.txt.jpg", b"not a picture", "image/jpeg"),
    ]
    at.file_uploader(key="photo_files_cups_0").set_value(files).run()
    warning = " ".join(w.value for w in at.warning)
    assert "IMG_1.HEIC: a HEIC/HEIF photo" in warning and "notes.txt.jpg: not an image" in warning
    assert [t.label for t in at.tabs] == ["cups (1)"]


def test_deleting_a_photo_and_a_refused_class_name(at):
    _add_class(at, "cups")
    at.file_uploader(key="photo_files_cups_0").set_value([("a.jpg", _jpeg(1), "image/jpeg")]).run()
    at.file_uploader(key="photo_files_cups_1").set_value([("b.jpg", _jpeg(2), "image/jpeg")]).run()
    delete = [b for b in at.button if b.key.startswith("photo_del_")]
    assert len(delete) == 2
    delete[0].click().run()
    assert [t.label for t in at.tabs] == ["cups (1)"]
    _add_class(at, "../runs")
    assert any("cannot be a class name" in w.value for w in at.warning)


def _open_tab(at: AppTest) -> str:
    """The label of the tab the maker's tabs open at (the browser keeps a clicked tab until the labels change)."""

    def containers(node):
        if isinstance(node.proto, BlockProto) and node.proto.HasField("tab_container"):
            yield node
        for child in getattr(node, "children", {}).values():
            yield from containers(child)

    (tabs,) = containers(at.main)
    return list(tabs.children.values())[tabs.proto.tab_container.default_tab_index].label


def test_the_tab_that_got_the_photo_stays_open_when_its_count_changes(at):
    _add_class(at, "cups")
    _add_class(at, "keys")
    assert _open_tab(at) == "cups (0)"
    at.file_uploader(key="photo_files_keys_0").set_value([("k.jpg", _jpeg(3), "image/jpeg")]).run()
    assert _open_tab(at) == "keys (1)"  # not back at the first class: its next photo would go there
    at.file_uploader(key="photo_files_cups_0").set_value([("c.jpg", _jpeg(4), "image/jpeg")]).run()
    assert _open_tab(at) == "cups (1)"


def test_a_snapshot_of_one_colour_is_blank_and_a_real_one_is_not():
    from dashboard.dataset.photo_maker import blank_picture

    def jpeg(pixels: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="JPEG")
        return out.getvalue()

    assert blank_picture(jpeg(np.zeros((90, 160, 3), np.uint8)))  # a camera's first frame can be black
    assert blank_picture(jpeg(np.full((90, 160, 3), 200, np.uint8)))
    assert not blank_picture(_jpeg(1))
    assert not blank_picture(b"not a picture")  # the store refuses it, naming why
