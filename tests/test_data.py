"""tlcore.data: scanning image folders into a DatasetInfo, and grid sampling.

Every dataset is built here from a few tiny generated images (tmp_path).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from PIL import Image

from tests.helpers import make_dataset_folder, make_image
from tests.test_imageio import png_header_only
from tlcore.data import DatasetInfo, sample_grid, scan
from tlcore.data_problems import NAME_NOT_UTF8, DatasetError, display_path

ROOT = Path(__file__).resolve().parent.parent
RED, GREEN, BLUE = (210, 60, 50), (60, 190, 70), (50, 80, 210)


# --- helpers ---------------------------------------------------------------------


def img(path: Path, colour=RED, size: int = 8, fmt: str = "PNG", seed: int = 0) -> Path:
    """Write a tiny image (format by `fmt`, whatever the file name says)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    make_image(colour, size=size, seed=seed).save(path, fmt)
    return path


def raw(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def fill(folder: Path, n: int, colour=RED, prefix: str = "img") -> list[Path]:
    return [img(folder / f"{prefix}_{i:03d}.png", colour, seed=i) for i in range(n)]


def files_on_disk(root: Path) -> int:
    """Every directory entry that is not a folder, as os.walk sees it (links not followed)."""
    return sum(len(files) for _, _, files in os.walk(root))


def reasons(info: DatasetInfo) -> dict[str, str]:
    return {s.path.name: s.reason for s in info.skipped}


def all_files(info: DatasetInfo) -> list[Path]:
    return [p for per_class in info.files.values() for paths in per_class.values() for p in paths]


def assert_accounted(info: DatasetInfo, root: Path) -> None:
    on_disk = files_on_disk(root)
    assert info.num_images() + len(info.skipped) + len(info.ignored) == on_disk
    assert info.files_on_disk == on_disk


def truncated_jpeg() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    # 64 x 64: under the 5000-pixel limit some tests use, so the reason is the truncation
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    return data[: len(data) // 2]


def truncated_png() -> bytes:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    return data[: len(data) // 2]


# --- split layouts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("train_name", "val_name"),
    [
        ("train", "validation"),
        ("training", "val"),
        ("training-data", "testing-data"),
        ("Training-Data", "TESTING-DATA"),  # seed 000's layout
        ("TRAIN", "Validation"),
        ("train", "test"),
        ("Training", "Testing"),
    ],
)
def test_split_folder_names_are_matched_case_insensitively(tmp_path, train_name, val_name):
    root = make_dataset_folder(
        tmp_path / "d", classes=("cats", "dogs"), n_train=5, n_val=3, size=8, split_names=(train_name, val_name)
    )
    info = scan(root)
    assert info.layout == "splits"
    assert info.class_names == ["cats", "dogs"]
    assert info.counts() == {"train": {"cats": 5, "dogs": 5}, "validation": {"cats": 3, "dogs": 3}}
    assert info.split_folders == {"train": train_name, "validation": val_name}
    assert info.skipped == [] and info.ignored == [] and info.warnings == []
    for path in info.files["train"]["cats"]:
        assert path.parent == root / train_name / "cats"
    for path in info.files["validation"]["dogs"]:
        assert path.parent == root / val_name / "dogs"


def test_test_folder_beside_validation_is_kept_apart(tmp_path):
    root = tmp_path / "d"
    for split, n in (("train", 6), ("validation", 3), ("test", 2)):
        fill(root / split / "a", n, RED)
        fill(root / split / "b", n, BLUE)
    info = scan(root)
    assert info.counts() == {"train": {"a": 6, "b": 6}, "validation": {"a": 3, "b": 3}, "test": {"a": 2, "b": 2}}
    assert info.split_folders == {"train": "train", "validation": "validation", "test": "test"}
    test_paths, test_labels = info.items("test")
    assert all(p.parts[-3] == "test" for p in test_paths)
    assert test_labels == [0, 0, 1, 1]
    assert not set(test_paths) & set(info.items("validation")[0])
    assert_accounted(info, root)


def test_train_folder_alone_gets_a_drawn_validation_split_and_a_warning(tmp_path):
    root = tmp_path / "d"
    fill(root / "train" / "a", 10, RED)
    fill(root / "train" / "b", 5, BLUE)
    info = scan(root)
    assert info.layout == "splits"
    assert info.counts() == {"train": {"a": 8, "b": 4}, "validation": {"a": 2, "b": 1}}
    assert any("validation" in w.lower() for w in info.warnings)


def test_loose_files_and_other_folders_beside_splits_are_ignored(tmp_path):
    root = make_dataset_folder(tmp_path / "d", n_train=3, n_val=2, size=8)
    img(root / "preview.png")  # beside the split folders
    img(root / "extras" / "x" / "e.png")  # a folder that is no split
    img(root / "train" / "loose.png")  # beside the class folders
    info = scan(root)
    assert info.counts() == {"train": {"cats": 3, "dogs": 3}, "validation": {"cats": 2, "dogs": 2}}
    assert sorted(p.name for p in info.ignored) == ["e.png", "loose.png", "preview.png"]
    assert info.skipped == []
    assert_accounted(info, root)


# --- flat layout: seeded stratified split ----------------------------------------------


@pytest.fixture
def flat_root(tmp_path) -> Path:
    root = tmp_path / "flat"
    fill(root / "apple", 20, RED)
    fill(root / "banana", 10, GREEN)
    fill(root / "cherry", 5, BLUE)
    return root


def test_flat_layout_draws_a_stratified_validation_split(flat_root):
    info = scan(flat_root)
    assert info.layout == "folders"
    assert info.class_names == ["apple", "banana", "cherry"]
    assert info.counts() == {
        "train": {"apple": 16, "banana": 8, "cherry": 4},
        "validation": {"apple": 4, "banana": 2, "cherry": 1},
    }
    assert info.warnings == []


def test_flat_split_uses_every_file_exactly_once(flat_root):
    info = scan(flat_root)
    train, val = info.items("train")[0], info.items("validation")[0]
    assert not set(train) & set(val)
    assert len(train) + len(val) == len(set(train) | set(val)) == 35
    assert sorted(train + val) == sorted(p for p in flat_root.rglob("*.png"))
    for split in ("train", "validation"):
        for name, paths in info.files[split].items():
            assert all(p.parent.name == name for p in paths)
    assert_accounted(info, flat_root)


def test_flat_split_is_deterministic_for_a_seed_and_differs_for_another(flat_root):
    first = scan(flat_root, seed=1)
    again = scan(flat_root, seed=1)
    other = scan(flat_root, seed=2)
    assert first.files == again.files
    assert first.files["validation"]["apple"] != other.files["validation"]["apple"]
    assert first.counts() == other.counts()  # the sizes depend only on the fraction


def test_flat_split_fraction_is_honoured(flat_root):
    info = scan(flat_root, validation_split=0.5)
    assert info.counts()["validation"] == {"apple": 10, "banana": 5, "cherry": 2}
    assert info.counts()["train"] == {"apple": 10, "banana": 5, "cherry": 3}


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_validation_split_out_of_range_is_refused(flat_root, bad):
    with pytest.raises(ValueError, match="validation_split must be between 0 and 1"):
        scan(flat_root, validation_split=bad)


def test_helper_flat_folder_is_scanned(tmp_path):
    root = make_dataset_folder(tmp_path / "d", n_train=8, n_val=2, size=8, split_names=None)
    info = scan(root)
    assert info.counts() == {"train": {"cats": 8, "dogs": 8}, "validation": {"cats": 2, "dogs": 2}}


# --- classes ---------------------------------------------------------------------------


def test_images_in_nested_sub_folders_belong_to_the_class(tmp_path):
    root = tmp_path / "d"
    img(root / "train" / "cats" / "top.png")
    img(root / "train" / "cats" / "indoor" / "a.png")
    img(root / "train" / "cats" / "indoor" / "deep" / "b.png")
    img(root / "train" / "dogs" / "d.png", BLUE)
    fill(root / "validation" / "cats", 1)
    fill(root / "validation" / "dogs", 1, BLUE)
    info = scan(root)
    assert info.class_names == ["cats", "dogs"]
    assert sorted(p.name for p in info.files["train"]["cats"]) == ["a.png", "b.png", "top.png"]
    assert info.counts()["train"] == {"cats": 3, "dogs": 1}


def test_class_missing_from_one_split_is_a_warning_not_an_error(tmp_path):
    root = tmp_path / "d"
    for name, colour in (("a", RED), ("b", GREEN), ("c", BLUE)):
        fill(root / "train" / name, 3, colour)
    fill(root / "validation" / "a", 2, RED)
    fill(root / "validation" / "b", 2, GREEN)
    info = scan(root)
    assert info.class_names == ["a", "b", "c"]
    assert info.counts()["validation"] == {"a": 2, "b": 2, "c": 0}
    assert len(info.warnings) == 1
    assert "'c'" in info.warnings[0] and "validation" in info.warnings[0]


def test_class_only_in_validation_is_still_a_class(tmp_path):
    root = tmp_path / "d"
    fill(root / "train" / "a", 2)
    fill(root / "train" / "b", 2)
    fill(root / "validation" / "a", 1)
    fill(root / "validation" / "b", 1)
    fill(root / "validation" / "c", 1)
    info = scan(root)
    assert info.class_names == ["a", "b", "c"]
    assert info.counts()["train"]["c"] == 0
    assert any("'c'" in w and "train" in w for w in info.warnings)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["a", "B", "c"], ["B", "a", "c"]),  # sorted() as Keras does: uppercase first
        (["2", "10", "1"], ["1", "10", "2"]),  # string order, not numeric
        (["zebra", "Ant", "_x", "émeu"], ["Ant", "_x", "zebra", "émeu"]),
    ],
)
def test_class_names_are_sorted_like_keras(tmp_path, names, expected):
    root = tmp_path / "d"
    for i, name in enumerate(names):
        fill(root / name, 2, prefix=f"p{i}")
    info = scan(root)
    assert info.class_names == expected == sorted(names)
    paths, labels = info.items("train")
    assert [expected[label] for label in labels] == [p.parent.name for p in paths]


def test_items_labels_follow_class_order(tmp_path):
    root = make_dataset_folder(tmp_path / "d", classes=("b", "a", "c"), n_train=3, n_val=1, size=8)
    info = scan(root)
    assert info.class_names == ["a", "b", "c"]
    paths, labels = info.items("train")
    assert labels == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [p.parent.name for p in paths] == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    assert info.items("validation")[1] == [0, 1, 2]
    assert info.items("test") == ([], [])
    assert info.num_images() == 12 and info.num_images("train") == 9


# --- what is ignored, what is skipped, and counting ------------------------------------------


def test_hidden_files_macosx_and_non_images_are_ignored_not_skipped(tmp_path):
    root = make_dataset_folder(tmp_path / "d", n_train=3, n_val=2, size=8)
    cats = root / "train" / "cats"
    raw(cats / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    raw(cats / "._cat_000.png", b"\x00\x05\x16\x07 AppleDouble")  # resource fork
    raw(cats / "notes.txt", b"these are cats")
    raw(cats / "Thumbs.db", b"\xd0\xcf\x11\xe0")
    img(cats / ".hidden_dir" / "h.png")
    img(root / "__MACOSX" / "train" / "cats" / "._cat_001.png")
    img(root / "train" / "__MACOSX" / "x.png")
    raw(root / ".DS_Store", b"x")
    info = scan(root)
    assert info.counts()["train"] == {"cats": 3, "dogs": 3}
    assert info.skipped == []
    assert len(info.ignored) == 8
    assert sorted(p.name for p in info.ignored) == sorted(
        [".DS_Store", "._cat_000.png", "notes.txt", "Thumbs.db", "h.png", "._cat_001.png", "x.png", ".DS_Store"]
    )
    assert info.to_report()["ignored"] == 8
    assert_accounted(info, root)


def test_hidden_class_folder_is_not_a_class(tmp_path):
    root = tmp_path / "d"
    fill(root / "a", 5)
    fill(root / "b", 5, BLUE)
    fill(root / ".cache", 2)
    fill(root / "__MACOSX", 2)
    info = scan(root)
    assert info.class_names == ["a", "b"]
    assert len(info.ignored) == 4
    assert_accounted(info, root)


def test_png_named_jpg_loads(tmp_path):
    root = tmp_path / "d"
    img(root / "a" / "x.jpg", fmt="PNG")
    img(root / "a" / "y.jpeg", fmt="BMP")
    img(root / "b" / "z.png", fmt="JPEG")
    img(root / "b" / "w.gif", fmt="PNG")
    info = scan(root)
    assert info.skipped == []
    assert info.num_images() == 4


def test_long_and_non_ascii_file_names_load(tmp_path):
    root = tmp_path / "d"
    long_name = "x" * 196 + ".png"
    assert len(long_name) == 200
    img(root / "chats" / long_name)
    img(root / "chats" / "chat_été_猫.png")
    img(root / "chiens_犬" / "ünïcødé.jpg", BLUE, fmt="JPEG")
    img(root / "chiens_犬" / "b.png", BLUE)
    info = scan(root)
    assert info.skipped == []
    assert info.class_names == ["chats", "chiens_犬"]
    names = {p.name for p in all_files(info)}
    assert {long_name, "chat_été_猫.png", "ünïcødé.jpg"} <= names
    json.dumps(info.to_report(), ensure_ascii=False)


def test_names_that_are_not_utf8_are_skipped_and_shown_with_a_replacement_character(tmp_path):
    # Latin-1 bytes, as an old archive or network share may hold them: Python
    # keeps them as lone surrogates, which no page or strict stream can show.
    root = tmp_path / "d"
    fill(root / "a", 2)
    fill(root / "b", 2, BLUE)
    bad_file = img(root / "a" / os.fsdecode(b"caf\xe9.png"))
    bad_folder = img(root / "b" / os.fsdecode(b"\xe9t\xe9") / "sun.png", BLUE)
    info = scan(root, verify=False)  # a name check, not a decode: done even unverified
    assert reasons(info) == {bad_file.name: NAME_NOT_UTF8, "sun.png": NAME_NOT_UTF8}
    assert info.num_images() == 4
    assert display_path(bad_folder.relative_to(root)) == "b/\ufffdt\ufffd/sun.png"
    assert display_path("chat_été_猫.png") == "chat_été_猫.png"  # valid names unchanged


def test_class_folder_named_in_latin_1_is_refused_with_a_printable_message(tmp_path):
    root = tmp_path / "d"
    fill(root / "cats", 2)
    fill(root / os.fsdecode(b"b\xeate"), 2, BLUE)
    with pytest.raises(DatasetError) as caught:
        scan(root)
    message = str(caught.value)
    message.encode("utf-8")  # no lone surrogates left to crash a page
    assert message.startswith(f"Class folder {root}/b\ufffdte has no usable image (2 file(s) skipped there")
    assert NAME_NOT_UTF8 in message


@pytest.fixture
def messy_root(tmp_path) -> Path:
    """Two classes: good images, plus every kind of bad file beside them in 'cats'."""
    root = tmp_path / "messy"
    cats, dogs = root / "train" / "cats", root / "train" / "dogs"
    fill(cats, 4, RED, prefix="good")
    fill(dogs, 4, BLUE, prefix="good")
    fill(root / "validation" / "cats", 2, RED)
    fill(root / "validation" / "dogs", 2, BLUE)
    raw(cats / "empty.jpg", b"")
    raw(cats / "page.jpg", b"<!DOCTYPE html><html><body>Access denied</body></html>")
    raw(cats / "cut.jpg", truncated_jpeg())
    raw(cats / "cut.png", truncated_png())
    good_png = (cats / "good_000.png").read_bytes()
    raw(cats / "header.png", good_png[:8] + b"\x00" * 40 + good_png[48:])
    img(cats / "big.png", size=100)
    os.symlink(cats / "nowhere.png", cats / "broken.png")
    os.symlink(cats / "loop_b.jpg", cats / "loop_a.jpg")
    os.symlink(cats / "loop_a.jpg", cats / "loop_b.jpg")
    return root


def test_bad_files_are_skipped_with_reasons_and_good_files_load(messy_root):
    info = scan(messy_root, max_pixels=5000)
    got = reasons(info)
    assert set(got) == {
        "empty.jpg",
        "page.jpg",
        "cut.jpg",
        "cut.png",
        "header.png",
        "big.png",
        "broken.png",
        "loop_a.jpg",
        "loop_b.jpg",
    }
    assert "empty" in got["empty.jpg"]
    assert got["page.jpg"].startswith("not an image")
    assert "truncated" in got["cut.jpg"]
    assert "truncated" in got["cut.png"] or "corrupt" in got["cut.png"]
    assert "corrupt" in got["header.png"]
    assert got["big.png"].startswith("too large") and "100x100" in got["big.png"]
    assert "not found" in got["broken.png"]
    assert got["loop_a.jpg"] == got["loop_b.jpg"] == "symbolic link loop"
    # the good files around them all load
    assert info.counts() == {"train": {"cats": 4, "dogs": 4}, "validation": {"cats": 2, "dogs": 2}}
    assert all(p.name.startswith("good") for p in info.files["train"]["cats"])
    assert info.ignored == []
    assert_accounted(info, messy_root)


def test_default_pixel_limit_accepts_the_big_image(messy_root):
    info = scan(messy_root)
    assert "big.png" not in reasons(info)
    assert info.counts()["train"]["cats"] == 5


def test_skipped_paths_point_at_the_files(messy_root):
    info = scan(messy_root, max_pixels=5000)
    for item in info.skipped:
        assert item.path.parent == messy_root / "train" / "cats"
        assert os.path.lexists(item.path)


def test_huge_dimensions_in_a_png_header_are_skipped_cheaply(tmp_path):
    root = tmp_path / "d"
    fill(root / "a", 2)
    fill(root / "b", 2, BLUE)
    raw(root / "a" / "bomb.png", png_header_only(100_000, 100_000))
    raw(root / "a" / "row.png", png_header_only(20_000, 1))
    info = scan(root, max_pixels=5000)
    got = reasons(info)
    assert got["bomb.png"].startswith("too large")
    assert got["row.png"].startswith("too large")
    assert info.num_images() == 4


def test_permission_denied_is_a_named_reason(tmp_path, monkeypatch):
    # Tests run as root, where chmod cannot cause the error: inject it for one path.
    root = make_dataset_folder(tmp_path / "d", n_train=3, n_val=1, size=8)
    locked = root / "train" / "dogs" / "dogs_001.png"
    real_open = PIL.Image.open

    def fake_open(fp, *args, **kwargs):
        if isinstance(fp, (str, os.PathLike)) and Path(fp) == locked:
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", fake_open)
    info = scan(root)
    assert [(s.path, s.reason) for s in info.skipped] == [(locked, "cannot read: permission denied")]
    assert info.counts()["train"] == {"cats": 3, "dogs": 2}
    assert locked not in all_files(info)


def test_folder_symlink_loop_does_not_hang_or_double_count(tmp_path):
    root = tmp_path / "d"
    cats = root / "cats"
    fill(cats, 5)
    img(cats / "inner" / "deep.png")
    fill(root / "dogs", 5, BLUE)
    os.symlink(cats, cats / "sub")  # cats/sub -> cats
    os.symlink(cats, cats / "inner" / "up")  # cats/inner/up -> cats
    info = scan(root)
    assert info.num_images() == 11
    assert sum(info.counts()[s]["cats"] for s in ("train", "validation")) == 6
    assert len(set(all_files(info))) == 11
    assert all("sub" not in p.parts and "up" not in p.parts for p in all_files(info))
    # the loops are reported, and every file on disk is accounted for exactly once
    assert sum("loop" in w for w in info.warnings) == 2
    assert_accounted(info, root)


def test_everything_on_disk_is_accounted_for(messy_root):
    cats = messy_root / "train" / "cats"
    raw(cats / ".DS_Store", b"x")
    raw(cats / "notes.txt", b"x")
    img(messy_root / "__MACOSX" / "a.png")
    img(cats / "nested" / "good_nested.png")
    os.symlink(cats, cats / "nested" / "again")
    info = scan(messy_root, max_pixels=5000)
    assert len(info.ignored) == 3
    assert len(info.skipped) == 9
    assert info.num_images() == 13
    assert_accounted(info, messy_root)


def test_verify_false_does_not_decode(messy_root):
    info = scan(messy_root, verify=False)
    assert info.skipped == []
    assert info.counts()["train"]["cats"] == 4 + 9  # bad files are not noticed
    assert_accounted(info, messy_root)


# --- refusals ----------------------------------------------------------------------------------


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="not found") as caught:
        scan(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(caught.value)
    assert caught.value.info is None


def test_file_instead_of_folder(tmp_path):
    path = img(tmp_path / "single.png")
    with pytest.raises(DatasetError, match="is a file") as caught:
        scan(path)
    assert str(path) in str(caught.value)


def test_empty_root(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DatasetError, match="No class folders") as caught:
        scan(root)
    assert str(root) in str(caught.value)
    assert caught.value.info is not None and caught.value.info.class_names == []


def test_root_with_only_loose_images(tmp_path):
    root = tmp_path / "loose"
    fill(root, 3)
    with pytest.raises(DatasetError, match="No class folders") as caught:
        scan(root)
    assert len(caught.value.info.ignored) == 3


def test_single_class_is_refused_naming_the_folder(tmp_path):
    root = tmp_path / "one"
    fill(root / "cats", 5)
    with pytest.raises(DatasetError) as caught:
        scan(root)
    message = str(caught.value)
    assert "'cats'" in message and str(root) in message and "2" in message


def test_single_class_in_split_layout_is_refused(tmp_path):
    root = make_dataset_folder(tmp_path / "one", classes=("cats",), n_train=3, n_val=1, size=8)
    with pytest.raises(DatasetError, match="at least 2"):
        scan(root)


def test_class_whose_every_file_is_unusable_is_refused_naming_it(tmp_path):
    root = make_dataset_folder(tmp_path / "d", classes=("cats", "dogs"), n_train=3, n_val=1, size=8)
    birds = root / "train" / "birds"
    raw(birds / "a.jpg", b"")
    raw(birds / "b.jpg", b"<html></html>")
    raw(birds / "c.txt", b"notes")
    with pytest.raises(DatasetError) as caught:
        scan(root)
    message = str(caught.value)
    assert str(birds) in message and "no usable image" in message
    assert "2 file(s) skipped" in message
    info = caught.value.info
    assert info is not None
    assert sorted(s.path.name for s in info.skipped) == ["a.jpg", "b.jpg"]
    assert "empty" in reasons(info)["a.jpg"]
    assert [p.name for p in info.ignored] == ["c.txt"]


def test_unusable_class_message_counts_only_the_files_skipped_in_that_folder(tmp_path):
    root = tmp_path / "d"
    fill(root / "cats", 3)
    raw(root / "cats" / "broken_1.jpg", b"")
    raw(root / "cats" / "broken_2.jpg", b"<html></html>")
    fill(root / "dogs", 3, BLUE)
    raw(root / "birds" / "only.png", truncated_png())
    with pytest.raises(DatasetError) as caught:
        scan(root)
    message = str(caught.value)
    assert message.startswith(f"Class folder {root / 'birds'} has no usable image")
    # the example is that folder's own file, not one skipped elsewhere
    assert "(1 file(s) skipped there, e.g. only.png: truncated or corrupt" in message
    assert len(caught.value.info.skipped) == 3


def test_class_unusable_in_flat_layout_names_its_folder(tmp_path):
    root = tmp_path / "d"
    fill(root / "good", 4)
    raw(root / "bad" / "x.png", b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DatasetError) as caught:
        scan(root)
    assert str(root / "bad") in str(caught.value)
    assert caught.value.info is not None
    assert reasons(caught.value.info)["x.png"].startswith("truncated or corrupt PNG")


def test_two_classes_but_only_one_usable_is_refused(tmp_path):
    root = tmp_path / "d"
    fill(root / "a", 3)
    raw(root / "b" / "broken.jpg", truncated_jpeg())
    with pytest.raises(DatasetError) as caught:
        scan(root)
    assert str(root / "b") in str(caught.value)
    assert len(caught.value.info.skipped) == 1


# --- report, fingerprint --------------------------------------------------------------------------


def test_to_report_is_json_ready_with_the_documented_keys(messy_root):
    info = scan(messy_root, max_pixels=5000)
    report = info.to_report()
    assert {"classes", "counts", "skipped", "ignored"} <= set(report)
    assert report["classes"] == ["cats", "dogs"]
    assert report["counts"] == {"train": {"cats": 4, "dogs": 4}, "validation": {"cats": 2, "dogs": 2}}
    assert isinstance(report["ignored"], int) and report["ignored"] == 0
    assert len(report["skipped"]) == 9
    for item in report["skipped"]:
        assert set(item) == {"path", "reason"}
        assert isinstance(item["path"], str) and item["reason"]
    by_name = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert by_name["loop_a.jpg"] == "symbolic link loop"
    assert json.loads(json.dumps(report)) == report


def test_fingerprint_is_stable_and_changes_when_a_file_is_added(tmp_path):
    root = make_dataset_folder(tmp_path / "d", n_train=3, n_val=2, size=8)
    first = scan(root).fingerprint()
    assert first == scan(root).fingerprint()
    assert len(first) == 16 and int(first, 16) >= 0
    img(root / "train" / "cats" / "new.png", seed=99)
    assert scan(root).fingerprint() != first


def test_fingerprint_changes_when_a_file_changes(tmp_path):
    root = make_dataset_folder(tmp_path / "d", n_train=3, n_val=2, size=8)
    first = scan(root).fingerprint()
    img(root / "train" / "cats" / "cats_000.png", size=12, seed=5)  # rewritten, new size
    assert scan(root).fingerprint() != first


# --- sample_grid -------------------------------------------------------------------------------


def _grid_checks(info: DatasetInfo, grid) -> None:
    paths = [p for p, _ in grid]
    assert len(set(paths)) == len(paths)  # no image twice
    for path, label in grid:
        assert path.parent.name == label
        assert path in info.files["train"][label]


def test_sample_grid_two_classes_is_balanced(tmp_path):
    root = make_dataset_folder(tmp_path / "d", n_train=12, n_val=2, size=8)
    info = scan(root)
    grid = sample_grid(info, 16)
    assert len(grid) == 16
    assert Counter(label for _, label in grid) == {"cats": 8, "dogs": 8}
    _grid_checks(info, grid)


def test_sample_grid_three_classes_differ_by_at_most_one(tmp_path):
    root = make_dataset_folder(tmp_path / "d", classes=("a", "b", "c"), n_train=10, n_val=1, size=8)
    info = scan(root)
    grid = sample_grid(info, 16)
    counts = Counter(label for _, label in grid)
    assert len(grid) == 16 and set(counts) == {"a", "b", "c"}
    assert max(counts.values()) - min(counts.values()) <= 1
    _grid_checks(info, grid)


def test_sample_grid_is_deterministic_for_a_seed(tmp_path):
    root = make_dataset_folder(tmp_path / "d", n_train=20, n_val=2, size=8)
    info = scan(root)
    assert sample_grid(info, 16, seed=3) == sample_grid(info, 16, seed=3)
    assert sample_grid(info, 16, seed=3) != sample_grid(info, 16, seed=4)


def test_sample_grid_fills_from_other_classes(tmp_path):
    root = tmp_path / "d"
    fill(root / "train" / "few", 3)
    fill(root / "train" / "many", 20, BLUE)
    fill(root / "validation" / "few", 1)
    fill(root / "validation" / "many", 1, BLUE)
    info = scan(root)
    grid = sample_grid(info, 16)
    assert len(grid) == 16
    assert Counter(label for _, label in grid) == {"few": 3, "many": 13}
    _grid_checks(info, grid)


def test_sample_grid_returns_everything_when_there_are_fewer_images(tmp_path):
    root = make_dataset_folder(tmp_path / "d", n_train=3, n_val=1, size=8)
    info = scan(root)
    grid = sample_grid(info, 16)
    assert len(grid) == 6
    assert sorted(p for p, _ in grid) == sorted(info.items("train")[0])


def test_sample_grid_of_another_split(tmp_path):
    root = make_dataset_folder(tmp_path / "d", n_train=3, n_val=4, size=8)
    info = scan(root)
    grid = sample_grid(info, 4, split="validation")
    assert Counter(label for _, label in grid) == {"cats": 2, "dogs": 2}
    assert all(p.parts[-3] == "validation" for p, _ in grid)


# --- no TensorFlow -----------------------------------------------------------------------------


def test_importing_tlcore_data_does_not_import_tensorflow():
    code = (
        "import sys, tlcore, tlcore.data, tlcore.imageio; "
        "bad = sorted(m for m in ('tensorflow', 'keras', 'streamlit') if m in sys.modules); "
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_tree_too_large_to_list_in_time_is_refused_with_the_reason(tmp_path):
    # A system folder (/proc, /usr) or a whole disk: refused in seconds, saying what to choose instead.
    root = tmp_path / "disk"
    for i in range(60):
        (root / f"dir{i}" / "sub").mkdir(parents=True)
    with pytest.raises(DatasetError) as refused:
        scan(root, max_walk_seconds=0.0)
    assert "is too large to be an image folder" in str(refused.value)
    assert "Choose the folder that holds one sub-folder per class" in str(refused.value)
