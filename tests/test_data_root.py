"""TLLAB_DATA_ROOT: typed folder and weights paths stay inside the data root (tlcore.paths and the app)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import dashboard.dataset_source
from dashboard.state import REFUSED_WEIGHTS, SOURCE_FOLDER, SOURCE_ZIP, WEIGHTS_FILE, K
from tests.conftest import ROOT
from tests.helpers import make_dataset_folder
from tests.weights_files import write_keras3
from tlcore.backbones import WEIGHTS_ENV, weights_status
from tlcore.paths import (
    DATA_ROOT_ENV,
    DataRootError,
    PathNotAllowed,
    data_root,
    link_leading_outside,
    refuse_links_outside,
    resolve_user_path,
    typed_weights_path,
)

OUTSIDE_CLASSES = ("secretcats", "secretdogs")


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """srv/root (the data root, with pets/), srv/outside (a dataset), srv/root-evil (a prefix twin)."""
    srv = tmp_path.resolve() / "srv"
    root = srv / "root"
    (root / "pets" / "cats").mkdir(parents=True)
    outside = srv / "outside"
    (outside / "train").mkdir(parents=True)
    (outside / "secret.txt").write_text("not for users")
    (srv / "root-evil" / "pets").mkdir(parents=True)
    return {"srv": srv, "root": root, "pets": root / "pets", "outside": outside, "evil": srv / "root-evil"}


def _refused(text: str, root: Path) -> str:
    with pytest.raises(PathNotAllowed) as caught:
        resolve_user_path(text, root, "Folder path")
    return str(caught.value)


# --- resolve_user_path -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["pets", "pets/cats", "./pets", "pets/../pets", "  pets  ", "pets/new-not-yet"])
def test_relative_paths_inside_the_root_are_resolved_in_it(tree, text):
    assert resolve_user_path(text, tree["root"]) == Path(os.path.normpath(tree["root"] / text.strip()))


@pytest.mark.parametrize(
    "text",
    [
        "..",
        "../outside",
        "../outside/secret.txt",
        "pets/../../outside",
        "pets/cats/../../../outside",
        "../root-evil/pets",
        "../../../../etc",
    ],
)
def test_dotdot_escapes_are_refused(tree, text):
    assert "leads outside the server's data folder (root/)" in _refused(text, tree["root"])


def test_absolute_paths_are_accepted_inside_and_refused_outside(tree):
    assert resolve_user_path(str(tree["pets"]), tree["root"]) == tree["pets"]
    assert resolve_user_path(str(tree["root"]), tree["root"]) == tree["root"]
    for text in (str(tree["outside"]), str(tree["outside"] / "secret.txt"), "/", "/etc", str(tree["srv"])):
        assert "leads outside" in _refused(text, tree["root"])


def test_a_prefix_twin_of_the_root_is_outside(tree):
    # /srv/root-evil starts with the characters of /srv/root but is another folder.
    assert "leads outside" in _refused(str(tree["evil"]), tree["root"])
    assert "leads outside" in _refused(str(tree["evil"] / "pets"), tree["root"])


def test_a_link_that_points_out_is_refused_and_one_that_stays_in_is_followed(tree):
    (tree["pets"] / "out").symlink_to(tree["outside"])
    (tree["root"] / "alias").symlink_to(tree["pets"])
    (tree["root"] / "dangling-out").symlink_to(tree["srv"] / "nowhere")
    assert "leads outside" in _refused("pets/out", tree["root"])
    assert "leads outside" in _refused("pets/out/secret.txt", tree["root"])
    assert "leads outside" in _refused("dangling-out", tree["root"])
    assert resolve_user_path("alias/cats", tree["root"]) == tree["pets"] / "cats"


def test_dotdot_is_applied_by_name_before_links(tree):
    # pets/out/.. would be srv/ on disk (out -> srv/outside); by name it is pets/, inside.
    (tree["pets"] / "out").symlink_to(tree["outside"])
    assert resolve_user_path("pets/out/..", tree["root"]) == tree["pets"]


def test_a_root_reached_through_a_link_is_resolved_too(tree):
    link = tree["srv"] / "root-link"
    link.symlink_to(tree["root"])
    assert resolve_user_path("pets", link) == tree["pets"]
    assert resolve_user_path(str(link / "pets"), link) == tree["pets"]  # the configured name
    assert resolve_user_path(str(tree["pets"]), link) == tree["pets"]  # the real name
    assert "(root-link/)" in _refused("../outside", link)
    assert "leads outside" in _refused(str(tree["evil"]), link)


@pytest.mark.parametrize("text", ["~", "~/pets", "~root/pets", f"~{os.environ.get('USER', 'nobody')}"])
def test_home_is_never_expanded_inside_a_root(tree, text):
    assert "leads outside" in _refused(text, tree["root"])


@pytest.mark.parametrize("root_is_set", [True, False])
def test_a_nul_character_is_a_clear_error(tree, root_is_set):
    with pytest.raises(PathNotAllowed, match="NUL character"):
        resolve_user_path("pets\0/cats", tree["root"] if root_is_set else None, "Folder path")


def test_without_a_root_any_path_is_accepted_as_before(tree):
    assert resolve_user_path(str(tree["outside"]), None) == tree["outside"]
    assert resolve_user_path("../anything", None) == Path("../anything")
    assert resolve_user_path("~/pets", None) == Path("~/pets").expanduser()


def test_a_refusal_does_not_tell_whether_the_outside_path_exists(tree):
    def message(text: str) -> str:
        return _refused(text, tree["root"]).replace(repr(text), "<text>")

    exists, missing = "../outside/secret.txt", "../outside/no-such-file.txt"
    assert message(exists) == message(missing)
    assert message(str(tree["outside"])) == message(str(tree["srv"] / "no-such-folder"))
    (tree["root"] / "out").symlink_to(tree["outside"])
    (tree["root"] / "gone").symlink_to(tree["srv"] / "no-such-folder")
    assert message("out") == message("gone")
    assert str(tree["srv"]) not in message(str(tree["outside"]))


# --- data_root: the environment variable ------------------------------------------------------


def test_data_root_comes_from_the_environment(tree, tmp_path):
    assert data_root({}) is None
    assert data_root({DATA_ROOT_ENV: "  "}) is None
    assert data_root({DATA_ROOT_ENV: str(tree["root"])}) == tree["root"]
    assert data_root({DATA_ROOT_ENV: str(tree["pets"] / "..")}) == tree["root"]
    with pytest.raises(DataRootError, match="must name an existing folder"):
        data_root({DATA_ROOT_ENV: str(tmp_path / "missing")})
    with pytest.raises(DataRootError, match="must name an existing folder"):
        data_root({DATA_ROOT_ENV: str(tree["outside"] / "secret.txt")})


# --- links under a chosen folder --------------------------------------------------------------


def test_links_under_a_folder_that_lead_out_are_found(tree):
    pets = make_dataset_folder(tree["pets"], n_train=2, n_val=1, size=8)
    assert link_leading_outside(pets, tree["root"]) is None
    (pets / "train" / "birds").symlink_to(tree["outside"])
    assert link_leading_outside(pets, tree["root"]) == pets / "train" / "birds"


def test_an_image_that_links_out_is_found(tree):
    pets = make_dataset_folder(tree["pets"], n_train=2, n_val=1, size=8)
    (pets / "validation" / "cats" / "x.png").symlink_to(tree["outside"] / "secret.txt")
    with pytest.raises(PathNotAllowed) as caught:
        refuse_links_outside(pets, tree["root"])
    message = str(caught.value)
    assert "'pets/validation/cats/x.png' is a link that leads outside the server's data folder (root/)" in message
    assert "secret" not in message and str(tree["outside"]) not in message


def test_links_that_stay_inside_are_followed_and_checked_too(tree):
    shared = tree["root"] / "shared"
    (shared / "deep").mkdir(parents=True)
    (tree["pets"] / "more").symlink_to(shared)
    (tree["pets"] / "loop").symlink_to(tree["pets"])  # a loop ends instead of hanging
    assert link_leading_outside(tree["pets"], tree["root"]) is None
    (shared / "deep" / "escape").symlink_to(tree["outside"])
    found = link_leading_outside(tree["pets"], tree["root"])
    assert found is not None and found.name == "escape"


# --- the app ------------------------------------------------------------------------------------


@pytest.fixture
def served(tree, monkeypatch) -> dict[str, Path]:
    """The app's environment with a data root; the outside folder holds a real dataset; scans are recorded."""
    monkeypatch.setenv(DATA_ROOT_ENV, str(tree["root"]))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    make_dataset_folder(tree["pets"], n_train=4, n_val=2, size=32)
    make_dataset_folder(tree["outside"], classes=OUTSIDE_CLASSES, n_train=4, n_val=2, size=32)
    scanned: list[Path] = []
    real_scan = dashboard.dataset_source.scan

    def recording_scan(root, *args, **kwargs):
        scanned.append(Path(root))
        return real_scan(root, *args, **kwargs)

    monkeypatch.setattr(dashboard.dataset_source, "scan", recording_scan)
    return {**tree, "scanned": scanned}


def _app(**state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def _grid_captions(at: AppTest) -> set[str]:
    return {image.captions[0] for image in at.image if image.captions}


def _all_text(at: AppTest) -> str:
    return " ".join(
        str(e.value) for shown in (at.markdown, at.caption, at.error, at.info, at.success, at.warning) for e in shown
    )


def test_a_folder_inside_the_root_scans_and_shows_its_grid(served):
    at = _app(**{K.source: SOURCE_FOLDER, K.folder: "pets"})
    assert not at.exception
    assert not at.main.error
    assert _grid_captions(at) >= {"cats", "dogs"}
    assert served["scanned"] == [served["pets"]]
    assert any("Paths are inside the server's data folder, **root/**" in c.value for c in at.sidebar.caption)
    assert at.sidebar.text_input(key=K.folder).placeholder == "e.g. pets (inside root/)"


@pytest.mark.parametrize("escape", ["../outside", "absolute", "link", "link/train"])
def test_a_folder_path_leading_outside_is_refused_without_scanning(served, escape):
    (served["root"] / "link").symlink_to(served["outside"])
    text = str(served["outside"]) if escape == "absolute" else escape
    at = _app(**{K.source: SOURCE_FOLDER, K.folder: text})
    assert not at.exception
    assert [e.value for e in at.main.error] == [
        f"This dataset cannot be used: Folder path {text!r} leads outside the server's data folder (root/). "
        "Paths here are relative to that folder, e.g. 'pets' or 'pets/train'."
    ]
    assert served["scanned"] == []
    assert not any(name in _all_text(at) for name in OUTSIDE_CLASSES)
    assert not _grid_captions(at)


@pytest.mark.parametrize("link", ["train/secretdogs", "validation/cats/cats_000.png"])
def test_a_folder_with_a_link_leading_outside_is_refused_before_the_scan(served, link):
    mixed = make_dataset_folder(served["root"] / "mixed", n_train=4, n_val=2, size=32)
    outside_train = served["outside"] / "train"
    target = outside_train / ("secretdogs" if link.startswith("train") else "secretcats/secretcats_000.png")
    (mixed / link).parent.mkdir(parents=True, exist_ok=True)
    (mixed / link).unlink(missing_ok=True)
    (mixed / link).symlink_to(target)
    at = _app(**{K.source: SOURCE_FOLDER, K.folder: "mixed"})
    assert not at.exception
    assert [e.value for e in at.main.error] == [
        f"This dataset cannot be used: 'mixed/{link}' is a link that leads outside the server's data folder "
        "(root/). Remove the link, or choose another folder."
    ]
    assert served["scanned"] == []
    assert not _grid_captions(at)


def test_links_that_stay_inside_the_root_work(served):
    (served["root"] / "alias").symlink_to(served["pets"])
    at = _app(**{K.source: SOURCE_FOLDER, K.folder: "alias"})
    assert not at.exception
    assert _grid_captions(at) >= {"cats", "dogs"}


def test_the_sample_and_an_extracted_zip_stay_usable(served, tmp_path):
    at = _app()
    assert not at.exception
    assert _grid_captions(at) == {"animals", "vehicles"}
    # An uploaded .zip is extracted by the app into its own temporary folder, outside the root.
    extracted = make_dataset_folder(tmp_path / "app-temp" / "upload", n_train=4, n_val=2, size=32)
    at = _app(**{K.source: SOURCE_ZIP, K.zip_dir: str(extracted)})
    assert not at.exception
    assert _grid_captions(at) >= {"cats", "dogs"}


def test_a_weights_file_outside_the_root_is_refused(served):
    (served["outside"] / "w.h5").write_bytes(b"\0" * 1000)
    for text in (str(served["outside"] / "w.h5"), "../outside/w.h5", "../outside/missing.h5"):
        at = _app(**{K.weights_choice: WEIGHTS_FILE, K.weights_path: text})
        assert not at.exception
        assert [e.value for e in at.sidebar.error] == [
            f"Weights file {text!r} leads outside the server's data folder (root/). "
            "Paths here are relative to that folder, e.g. 'pets' or 'pets/train'."
        ]
        assert not at.sidebar.success
    # What the other pages get instead of the path: weights that are never ready.
    assert weights_status(REFUSED_WEIGHTS)[0] is False


def test_a_weights_file_inside_the_root_and_the_servers_default_are_accepted(served, monkeypatch):
    (served["root"] / "weights").mkdir()
    write_keras3(served["root"] / "weights" / "mine.h5")  # a file is checked for VGG16's arrays when typed
    at = _app(**{K.weights_choice: WEIGHTS_FILE, K.weights_path: "weights/mine.h5"})
    assert not at.exception
    ok = "(0 MB): vgg16's 13 conv layers, Keras 3 (.weights.h5) layout."
    assert [s.value for s in at.sidebar.success] == [f"Weights file mine.h5 {ok}"]
    assert any("A weights file inside **root/**" in c.value for c in at.sidebar.caption)
    # TLLAB_WEIGHTS is the administrator's choice: trusted even outside the root.
    default = write_keras3(served["outside"] / "admin.h5")
    monkeypatch.setenv(WEIGHTS_ENV, str(default))
    at = _app(**{K.weights_choice: WEIGHTS_FILE, K.weights_path: str(default)})
    assert not at.exception
    assert [s.value for s in at.sidebar.success] == [f"Weights file admin.h5 {ok}"]


def test_a_misconfigured_root_refuses_paths_instead_of_allowing_all(served, monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "no-such-root"))
    at = _app(**{K.source: SOURCE_FOLDER, K.folder: str(served["pets"])})
    assert not at.exception
    assert len(at.main.error) == 1 and "TLLAB_DATA_ROOT must name an existing folder" in at.main.error[0].value
    assert served["scanned"] == []
    at = _app(**{K.weights_choice: WEIGHTS_FILE, K.weights_path: str(served["outside"] / "train")})
    assert not at.exception
    assert len(at.sidebar.error) == 1 and "TLLAB_DATA_ROOT must name an existing folder" in at.sidebar.error[0].value


def test_typed_weights_path_keeps_user_paths_inside_and_trusts_the_default(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "w").mkdir(parents=True)
    outside = tmp_path / "admin.weights.h5"
    monkeypatch.setenv(DATA_ROOT_ENV, str(root))
    assert typed_weights_path("  ") == ""
    assert typed_weights_path("w/vgg.h5") == str(root.resolve() / "w" / "vgg.h5")
    assert typed_weights_path(str(outside), trusted=str(outside)) == str(outside)
    with pytest.raises(PathNotAllowed, match=r"Weights file '../admin.weights.h5' leads outside"):
        typed_weights_path("../admin.weights.h5", trusted=str(outside))
    monkeypatch.delenv(DATA_ROOT_ENV)
    assert typed_weights_path("~/vgg.h5") == "~/vgg.h5"  # no root: as typed, like the command line
