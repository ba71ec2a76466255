"""Class mode (AppTest over app.py): every download the lab offers, and the code panel's paths, are a student's own.

Ada's run, job, photos and uploaded .zip are on the server and Grace knows their ids (in the URL, in her
session's state, picked where she can pick): each download Grace is offered is hers or none, and nothing
says whether Ada's thing exists. A student's script (the code panel) names no path on the server; the
single-user lab's names the folders and weights file as it always did.

A browser is its cookie's token, as in tests/test_class_mode.py. The downloads a page offers are recorded
where the page calls st.download_button, their data made at once (a callable is called as a click would).
"""

from __future__ import annotations

import ast
import io
import shutil
import zipfile

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from dashboard import housekeeping
from dashboard.code_panel import RUN_DOWNLOAD, RUN_PICK, SETTINGS_DOWNLOAD
from dashboard.skipped import SKIPPED_SHOWN
from dashboard.state import SAMPLE_DATA, SOURCE_FOLDER, SOURCE_PHOTOS, SOURCE_ZIP, WEIGHTS_IMAGENET, K
from tests.conftest import ROOT
from tests.helpers import TINY_CONFIG, history_row, make_dataset_folder
from tests.test_page_photos import _jpeg
from tlcore.backbones import WEIGHTS_ENV
from tlcore.classroom import CLASS_KEY_ENV, Roster, Student
from tlcore.codegen import student_script, training_script
from tlcore.data import scan
from tlcore.history import History
from tlcore.jobs import JOBS
from tlcore.paths import DATA_ROOT_ENV
from tlcore.photos import PhotoStore
from tlcore.records import COMPLETED
from tlcore.run_folder import MODEL_FILE
from tlcore.runs import RunStore
from tlcore.script_folder import PHOTOS_FOLDER, DataFolder
from tlcore.uploads import EXTRACTION_PREFIX, UPLOAD_DIR_ENV, extract_zip

LIST_DOWNLOAD = "Download the whole list (CSV)"  # the skipped files' (dashboard/skipped.py: no key)


@pytest.fixture
def browser(class_browser):
    """Class mode on; `browser.token` is the cookie the app sees (tests/conftest.py)."""
    return class_browser


def _open(page: str = "", **state: object) -> AppTest:
    """A fresh session of the current browser on `page`, `state` put into its session state first."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    for key, value in state.items():
        at.session_state[key] = value
    if page:
        at.switch_page(f"pages/{page}.py")
    return at.run()


def _join(browser, token: str, name: str) -> Student:
    browser.token = token
    at = _open()
    at.text_input(key="join_name").set_value(name)
    at.button[0].click().run()  # the form's Join
    student = Roster().who(token)
    assert student is not None
    return student


def _ada_and_grace(browser) -> tuple[Student, Student]:
    """Both joined; the browser is Grace's from here on."""
    ada = _join(browser, "browser-of-ada", "Ada")
    return ada, _join(browser, "browser-of-grace", "Grace")


def _finished_run(student: Student, marker: float = 0.5):
    """A completed run of `student`'s with one epoch (val_accuracy `marker`) and a model file that says whose."""
    run = RunStore(actor=student.actor).create(TINY_CONFIG, scan(SAMPLE_DATA))
    run.add_epoch(history_row(val_accuracy=marker))
    (run.run_dir / MODEL_FILE).write_bytes(f"the model of {student.name}".encode())
    run.finish(COMPLETED)
    return run


def _shown(at: AppTest) -> str:
    """The text of every message, caption and table, and every option offered."""
    parts = [
        str(e.value) for shown in (at.markdown, at.caption, at.info, at.warning, at.success, at.error) for e in shown
    ]
    parts += [str(o) for choices in (at.selectbox, at.multiselect, at.radio) for e in choices for o in e.options]
    # This Streamlit names its tables "dataframe": "arrow_data_frame" finds none (it found none before typing either).
    parts += [e.value.to_string() for e in at.get("arrow_data_frame") if isinstance(e, Element)]
    return " ".join(parts)


# --- every download, tried across -------------------------------------------------------------


def test_the_trained_model_and_its_history_go_only_to_their_owner(browser, offered):
    ada, _grace = _ada_and_grace(browser)
    run = _finished_run(ada, marker=0.8125)
    job = JOBS.start(
        ada.owner, "training", lambda job: job.update(run_dir=str(run.run_dir), history=History.of([history_row()]))
    )
    job.thread.join(30)

    browser.token = "browser-of-ada"  # the control: Ada, on her job, is offered both
    _open("train", **{K.job_id: job.id})
    assert offered["download_model"] == (f"{run.run_id}.keras", b"the model of Ada")
    assert offered["download_history"][0] == f"{run.run_id}-history.csv"

    browser.token = "browser-of-grace"
    offered.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["job"] = job.id  # Ada's job in the URL, in the session, and her run as "the last run"
    at.run()
    at.session_state[K.job_id] = job.id
    at.session_state[K.last_run_dir] = str(run.run_dir)
    at.switch_page("pages/train.py").run()
    assert not at.exception
    assert "download_model" not in offered and "download_history" not in offered
    assert run.run_id not in _shown(at) and job.id not in _shown(at)


def test_the_photos_zip_holds_only_the_sessions_own_photos(browser, offered):
    ada, grace = _ada_and_grace(browser)
    adas, graces = PhotoStore(ada.owner), PhotoStore(grace.owner)
    adas.add_class("cups")
    adas.add("cups", _jpeg(1), "ada.jpg")
    graces.add_class("keys")
    graces.add("keys", _jpeg(2), "grace.jpg")

    # Grace's session holding Ada's owner id: the page's identity comes from the browser, not the session.
    at = _open("dataset", **{K.source: SOURCE_PHOTOS, K.owner: ada.owner})
    assert not at.exception
    name, data = offered["photo_zip"]
    assert name == "my-photos.zip"
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == [f"keys/{p.name}" for p in graces.photos()]
    assert ada.owner not in _shown(at)


def test_the_skipped_files_list_is_of_the_sessions_own_upload(browser, offered, monkeypatch, tmp_path):
    ada, _ = _ada_and_grace(browser)
    folder = make_dataset_folder(tmp_path / "adas-pets", n_train=2, n_val=1)
    for i in range(SKIPPED_SHOWN + 1):  # enough that the page offers the whole list as a download
        (folder / "train" / "cats" / f"adas-broken-{i}.jpg").write_bytes(b"not an image")
    monkeypatch.setenv(UPLOAD_DIR_ENV, str(tmp_path / "uploads"))
    adas = str(extract_zip(shutil.make_archive(str(tmp_path / "adas-pets"), "zip", folder)))
    housekeeping.tracker().track(adas, "session-of-ada", ada.owner)  # as the sidebar does when she uploads
    uploaded = {K.source: SOURCE_ZIP, K.zip_dir: adas, K.zip_name: "adas-pets.zip"}

    browser.token = "browser-of-ada"  # the control: Ada, on her .zip, is offered the list
    _open("dataset", **uploaded)
    assert b"adas-broken-0.jpg" in offered[LIST_DOWNLOAD][1]

    browser.token = "browser-of-grace"  # Grace's session holding the folder of Ada's .zip: as if none
    offered.clear()
    at = _open("dataset", **uploaded)
    assert not at.exception
    assert LIST_DOWNLOAD not in offered and "adas-broken" not in _shown(at)
    assert any("Choose a dataset in the sidebar" in i.value for i in at.info)  # as when nothing was uploaded


def test_a_student_is_offered_no_csv_of_the_class_results(browser, offered):
    ada, _ = _ada_and_grace(browser)
    _finished_run(ada)
    at = _open("runs")
    assert not at.exception
    assert any("1 finished runs" in c.value for c in at.caption)  # the class's results are there, as a chart only
    assert "class_results_csv" not in offered


def test_a_runs_script_is_only_for_the_students_own_runs(browser, offered):
    ada, grace = _ada_and_grace(browser)
    adas = _finished_run(ada)

    at = _open("runs", **{RUN_PICK: adas.run_id})  # Grace has no run: Ada's picked in her session
    assert not at.exception
    assert RUN_DOWNLOAD not in offered and adas.run_id not in _shown(at)

    graces = _finished_run(grace)
    offered.clear()
    at = _open("runs", **{RUN_PICK: adas.run_id})
    assert not at.exception
    picker = at.selectbox(key=RUN_PICK)
    assert picker.value == graces.run_id and len(picker.options) == 1  # Ada's is not offered
    script = offered[RUN_DOWNLOAD][1].decode()
    assert f"run {graces.run_id}" in script and adas.run_id not in script


# --- the code panel names no path on the server for a student -------------------------------


def _setting(script: str, name: str) -> ast.expr:
    """The expression the script's top-level `name = ...` assigns."""
    (value,) = [
        n.value
        for n in ast.parse(script).body
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id == name
    ]
    return value


def _data_dir(script: str) -> str:
    """DATA_DIR's expression, as the script writes it."""
    return ast.unparse(_setting(script, "DATA_DIR"))


def _weights(script: str) -> object:
    return ast.literal_eval(_setting(script, "WEIGHTS"))


def _photos(owner: str) -> PhotoStore:
    """Two classes of photos, enough that both splits have some of each."""
    store = PhotoStore(owner)
    for n, name in enumerate(("cups", "keys")):
        store.add_class(name)
        for seed in range(8):
            store.add(name, _jpeg(10 * n + seed), f"{name}{seed}.jpg")
    return store


@pytest.fixture
def server_weights(monkeypatch, tmp_path) -> str:
    """The administrator's weights file: the lab's "ImageNet" on a server without Keras' download."""
    path = tmp_path / "server" / "vgg16_notop.weights.h5"
    path.parent.mkdir()
    path.write_bytes(b"not really weights")
    monkeypatch.setenv(WEIGHTS_ENV, str(path))
    return str(path)


def test_the_single_user_labs_script_names_the_photos_folder_and_weights_file(runs_dir, offered, server_weights):
    store = _photos("a" * 12)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["owner"] = "a" * 12
    at.session_state[K.source] = SOURCE_PHOTOS
    at.session_state[K.weights_choice] = WEIGHTS_IMAGENET
    at.run().switch_page("pages/model.py").run()
    assert not at.exception
    script = offered[SETTINGS_DOWNLOAD][1].decode()
    assert _data_dir(script) == f"Path({str(store.root)!r})"  # as before class mode
    assert _weights(script) == server_weights


def test_a_students_script_names_their_photos_zip_and_imagenet_not_the_server(browser, offered, server_weights):
    _, grace = _ada_and_grace(browser)
    store = _photos(grace.owner)
    at = _open("model", **{K.source: SOURCE_PHOTOS, K.weights_choice: WEIGHTS_IMAGENET})
    assert not at.exception
    script = offered[SETTINGS_DOWNLOAD][1].decode()
    _no_server_path(script, str(store.root), server_weights)
    assert _data_dir(script) == f"Path(__file__).resolve().parent / {PHOTOS_FOLDER!r}"
    assert f"# Unzip my-photos.zip (Dataset page) into {PHOTOS_FOLDER}/ beside this script." in script
    assert _weights(script) == "imagenet"
    assert "DATA_DIR / " not in script  # the .zip has class folders only: no train/ or validation/ to read

    # The same on the Runs page, for the run Grace trained on them.
    run = RunStore(actor=grace.actor).create(TINY_CONFIG.replace(weights=server_weights), scan(store.root))
    run.finish(COMPLETED)
    offered.clear()
    at = _open("runs")
    assert not at.exception
    script = offered[RUN_DOWNLOAD][1].decode()
    _no_server_path(script, str(store.root), server_weights)
    assert _data_dir(script) == f"Path(__file__).resolve().parent / {PHOTOS_FOLDER!r}"
    assert _weights(script) == "imagenet" and f"run {run.run_id}" in script


def test_a_students_script_for_a_folder_of_the_class_names_only_the_folder(browser, offered, monkeypatch, tmp_path):
    data_root = tmp_path / "class-data"
    make_dataset_folder(data_root / "flowers", n_train=2, n_val=1)
    monkeypatch.setenv(DATA_ROOT_ENV, str(data_root))
    _ada_and_grace(browser)
    at = _open("model", **{K.source: SOURCE_FOLDER, K.folder: "flowers"})
    assert not at.exception
    script = offered[SETTINGS_DOWNLOAD][1].decode()
    _no_server_path(script, str(data_root))
    assert _data_dir(script) == "Path(__file__).resolve().parent / 'flowers'"
    assert "# A copy of the lab's flowers/ folder, beside this script." in script


def _no_server_path(script: str, *paths: str) -> None:
    for path in (*paths, str(RunStore().root), str(RunStore().root.resolve()), str(SAMPLE_DATA), str(ROOT)):
        assert path not in script, path


def test_student_script_moves_every_folder_beside_the_script(tmp_path):
    sample = DataFolder.from_info(scan(SAMPLE_DATA))
    script = student_script(TINY_CONFIG.replace(weights="/srv/weights/vgg16.h5"), sample)
    assert str(SAMPLE_DATA) not in script and "/srv/weights" not in script
    assert _data_dir(script) == "Path(__file__).resolve().parent / 'sample_data'"
    assert 'DATA_DIR / "train"' in script  # a copy of a folder keeps its split folders
    assert _weights(script) == "imagenet"
    assert _weights(student_script(TINY_CONFIG.replace(weights="none"), sample)) is None
    # An uploaded .zip was already the folder it unzips to, for everyone.
    upload = DataFolder(str(tmp_path / f"{EXTRACTION_PREFIX}abcd1234" / "pets"), ("cats", "dogs"))
    assert student_script(TINY_CONFIG, upload) == training_script(TINY_CONFIG, upload)


def test_a_student_is_shown_no_folder_of_the_server(browser, runs_dir, monkeypatch):
    """Runs, Dataset and a finished run on Train say "your runs", the folder's name, the run's id: no path."""
    _, grace = _ada_and_grace(browser)
    run = _finished_run(grace)
    job = JOBS.start(grace.owner, "training", lambda job: job.update(run_dir=str(run.run_dir)))
    job.thread.join(30)
    for page, state in (("runs", {}), ("dataset", {}), ("train", {K.job_id: job.id})):
        at = _open(page, **state)
        assert not at.exception
        shown = _shown(at)
        assert str(runs_dir) not in shown and str(ROOT) not in shown, page
    assert "1 run(s) in your runs" in _shown(_open("runs"))
    assert f"Run folder: `{run.run_id}`" in _shown(_open("train", **{K.job_id: job.id}))

    assert "training and 50 validation images in `sample_data`." in _shown(_open("dataset"))

    monkeypatch.delenv(CLASS_KEY_ENV)  # the single-user lab, for comparison, says where
    assert f"run(s) in `{runs_dir.resolve()}`" in _shown(_open("runs"))
