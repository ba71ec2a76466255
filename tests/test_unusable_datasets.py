"""Datasets that cannot train: one clear message in the app and in the CLI, never a traceback.

The scan's own refusals are tested in test_data.py; here every kind of
unusable dataset goes through the Dataset page (AppTest) and through
`python -m tlcore scan` and `train`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.state import SOURCE_FOLDER, K
from tests.conftest import ROOT
from tests.helpers import make_dataset_folder, make_image
from tests.test_cli import assert_one_line_error, run_cli
from tlcore.data import scan
from tlcore.data_problems import DatasetError


def _one_class(tmp: Path) -> tuple[Path, Path]:
    root = make_dataset_folder(tmp / "one", classes=("cats",), n_train=3, n_val=1, size=8)
    return root, root


def _class_of_corrupt_files(tmp: Path) -> tuple[Path, Path]:
    root = make_dataset_folder(tmp / "corrupt_class", n_train=3, n_val=1, size=8)
    birds = root / "train" / "birds"
    birds.mkdir()
    (birds / "a.jpg").write_bytes(b"")
    (birds / "b.jpg").write_text("<html><body>Not found</body></html>")
    return root, birds


def _class_without_files(tmp: Path) -> tuple[Path, Path]:
    root = make_dataset_folder(tmp / "empty_class", n_train=3, n_val=1, size=8, split_names=None)
    (root / "birds").mkdir()
    return root, root / "birds"


def _no_images(tmp: Path) -> tuple[Path, Path]:
    root = tmp / "no_images"
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        (root / name / "README.txt").write_text(f"{name} go here")
    return root, root


def _missing(tmp: Path) -> tuple[Path, Path]:
    return tmp / "does_not_exist", tmp / "does_not_exist"


def _a_file(tmp: Path) -> tuple[Path, Path]:
    path = tmp / "photo.png"
    make_image((200, 60, 50), size=8).save(path)
    return path, path


@dataclass(frozen=True)
class Unusable:
    kind: str
    build: Callable[[Path], tuple[Path, Path]]  # tmp -> (the path given, the folder the message names)
    problem: str  # the words that name the problem


UNUSABLE = [
    Unusable("one class", _one_class, "Only one class ('cats')"),
    Unusable(
        "class with only corrupt files",
        _class_of_corrupt_files,
        "has no usable image (2 file(s) skipped there, e.g. a.jpg: empty file (0 bytes))",
    ),
    Unusable("class with no files", _class_without_files, "has no usable image (no image files)"),
    Unusable("no images at all", _no_images, "No usable images in"),
    Unusable("path does not exist", _missing, "Dataset folder not found"),
    Unusable("path is a file", _a_file, "is a file, not a folder"),
]


@pytest.fixture(params=UNUSABLE, ids=lambda u: u.kind)
def unusable(request, tmp_path) -> tuple[Unusable, Path, Path]:
    case = request.param
    given, named = case.build(tmp_path)
    return case, given, named


def test_class_folder_with_no_files_at_all_is_refused(tmp_path):
    root, birds = _class_without_files(tmp_path)
    with pytest.raises(DatasetError) as caught:
        scan(root)
    assert str(caught.value) == f"Class folder {birds} has no usable image (no image files)"
    assert caught.value.info.class_names == ["birds", "cats", "dogs"]


def test_no_images_at_all_says_so_for_the_whole_folder(tmp_path):
    root, _ = _no_images(tmp_path)
    with pytest.raises(DatasetError) as caught:
        scan(root)
    assert str(caught.value) == f"No usable images in {root}: class folder(s) cats, dogs (no image files)"
    assert len(caught.value.info.ignored) == 2


def test_the_app_shows_one_error_naming_the_problem_and_the_folder(unusable):
    case, given, named = unusable
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state[K.source] = SOURCE_FOLDER
    at.session_state[K.folder] = str(given)
    at.run()
    assert not at.exception
    errors = [e.value for e in at.main.error]
    assert len(errors) == 1, errors
    assert case.problem in errors[0] and str(named) in errors[0], errors[0]
    assert not at.main.subheader  # the page stopped before its sections


@pytest.mark.parametrize("command", ["scan", "train"])
def test_the_cli_exits_1_with_one_line_naming_the_problem_and_the_folder(unusable, command, tmp_path):
    case, given, named = unusable
    if command == "scan":
        args = ["scan", str(given)]
    else:
        args = [
            "train",
            "--data",
            str(given),
            "--weights",
            "none",
            "--image-size",
            "32",
            "--runs-dir",
            str(tmp_path / "runs"),
        ]
    proc = run_cli(*args)
    assert_one_line_error(proc, 1, case.problem, str(named))
    assert proc.stdout == ""
    assert not (tmp_path / "runs").exists()  # refused before any run was recorded
