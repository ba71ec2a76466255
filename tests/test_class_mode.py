"""Class mode in the app (AppTest over app.py): the join form first, names, the teacher's key, and no way
across to another student's runs or jobs.

A browser is its cookie's token: `dashboard.identity.browser_token` is replaced by one that answers the
token of the "browser" a test is playing (AppTest cannot send cookies; the real cookie is tested in
tests/test_classroom.py and tests/test_browser_class.py).
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from dashboard.state import K
from tests.conftest import CLASS_TEST_KEY, ROOT
from tests.helpers import TINY_CONFIG, make_dataset_folder
from tlcore.access import student
from tlcore.classroom import CLASS_KEY_ENV, PRIVACY_NOTICE, Roster
from tlcore.data import scan
from tlcore.jobs import JOBS
from tlcore.owner_settings import OwnerSettings
from tlcore.runs import RunStore

KEY = CLASS_TEST_KEY


@pytest.fixture
def browser(class_browser):
    """Class mode on; `browser.token` is the cookie the app sees (tests/conftest.py)."""
    return class_browser


def _open(page: str = "") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    return at


def _join(name: str) -> AppTest:
    at = _open()
    at.text_input(key="join_name").set_value(name)
    return at.button[0].click().run()  # the form's Join


def test_before_joining_only_the_join_form_shows(browser):
    at = _open()
    assert not at.exception
    assert [t.value for t in at.title] == ["Join the class"]
    assert at.text_input[0].key == "join_name"  # the first text box takes the name
    assert any(PRIVACY_NOTICE in c.value for c in at.caption)
    assert not at.sidebar.radio  # no page, no sidebar: nothing of the lab runs
    with pytest.raises(ValueError, match="Known pages: \\['Join the class'\\]"):
        at.switch_page("pages/runs.py")  # no page of the lab is registered: its address leads nowhere


def test_joining_opens_the_lab_and_a_name_in_use_is_refused(browser):
    at = _join("Ada")
    assert not at.exception
    assert [t.value for t in at.title] == ["Dataset"]
    assert any("Signed in as **Ada**" in m.value for m in at.sidebar.markdown)
    browser.token = "browser-of-someone-else"
    other = _join("  ADA ")
    assert [t.value for t in other.title] == ["Join the class"]
    assert any("already in this class" in e.value for e in other.error)


def test_a_student_gets_no_path_on_the_server(browser, monkeypatch):
    monkeypatch.delenv("TLLAB_DATA_ROOT", raising=False)
    _join("Ada")
    ada = Roster().who("browser-of-ada")
    # Kept settings that name a server folder (as if written before class mode): a reload brings them back.
    OwnerSettings().save(ada.owner, {K.source: "Folder on this computer", K.folder: "/etc"})
    at = _open()
    assert not at.exception
    assert list(at.sidebar.radio(key=K.source).options) == ["Bundled sample", "My photos (made here)", "Upload a .zip"]
    assert at.session_state[K.folder] == "/etc"  # the kept setting came back, and is not offered:
    assert at.sidebar.radio(key=K.source).value == "Bundled sample"
    assert "Weights file" not in at.sidebar.radio(key=K.weights_choice).options
    assert not any(t.key == K.folder for t in at.sidebar.text_input)


def test_a_short_class_key_stops_the_lab_with_the_reason(browser, monkeypatch):
    monkeypatch.setenv(CLASS_KEY_ENV, "too-short")
    at = _open()
    assert any("at least 16" in e.value for e in at.error) and not at.title


def test_without_the_cookie_the_page_says_how_to_open_the_lab(browser):
    browser.token = None
    at = _open()
    assert any("classroom.py" in e.value for e in at.error)


def test_the_owner_in_the_url_is_ignored_and_none_is_written(browser):
    _join("Ada")
    ada = Roster().who("browser-of-ada")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["owner"] = "b" * 12  # someone else's old single-user id
    at.run()
    assert at.session_state[K.owner] == ada.owner
    assert "owner" not in at.query_params


def test_the_key_unlocks_the_teachers_page_after_at_most_five_tries(browser):
    at = _join("Teacher")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/class_board.py")  # a student's navigation has no Class page
    for _ in range(5):
        at.text_input(key="teacher_key").set_value("wrong-wrong-wrong-wrong").run()
        at.button(key="class_unlock").click().run()
    assert any("not the class key" in i.value for i in at.sidebar.info)
    at.text_input(key="teacher_key").set_value(KEY).run()
    at.button(key="class_unlock").click().run()
    assert any("Too many tries" in i.value for i in at.sidebar.info)  # the sixth try in a minute waits
    assert not Roster().who("browser-of-ada").teacher
    fresh = _open()  # a new session (its own limit): the right key works
    fresh.text_input(key="teacher_key").set_value(KEY).run()
    fresh.button(key="class_unlock").click().run()
    assert Roster().who("browser-of-ada").teacher
    assert fresh.session_state["teacher_key"] == ""  # the key is not kept in the session
    fresh.switch_page("pages/class_board.py").run()
    assert [t.value for t in fresh.title] == ["Class"] and not fresh.exception


def test_a_student_sees_and_stops_only_their_own_runs_and_jobs(browser, tmp_path):
    _join("Ada")
    ada = Roster().who("browser-of-ada")
    browser.token = "browser-of-grace"
    _join("Grace")
    grace = Roster().who("browser-of-grace")
    info = scan(make_dataset_folder(tmp_path / "data", n_train=4, n_val=2))
    from tlcore.tf.training import train_and_record

    _, adas_run = train_and_record(TINY_CONFIG, info, RunStore(actor=student(ada.owner)))
    adas_job = JOBS.start(ada.owner, "training", lambda job: job.stop_flag.wait(60))
    try:
        # Grace, on every page that lists or opens runs, with Ada's ids in the URL.
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.query_params["job"] = adas_job.id
        at.run()
        for page in ("runs", "train", "inference", "inside"):  # See inside: the map of a run's head
            at.switch_page(f"pages/{page}.py").run()
            assert not at.exception, page
            shown = _everything_shown(at)
            assert adas_run.run_id not in shown and adas_job.id not in shown, page
        assert K.job_id not in at.session_state or not at.session_state[K.job_id]  # Ada's job id not taken up
        assert "Run: " not in _everything_shown(at.switch_page("pages/train.py").run())  # no status of hers
        assert adas_job.running  # untouched
        assert [s.run_id for s in RunStore(actor=grace.actor).list()] == []
    finally:
        adas_job.stop()
        adas_job.thread.join(30)


def _everything_shown(at: AppTest) -> str:
    """The text of every message, caption and table, and every option offered, on the page as it stands."""
    parts = [
        str(e.value) for shown in (at.markdown, at.caption, at.info, at.warning, at.success, at.error) for e in shown
    ]
    parts += [
        str(option) for choices in (at.selectbox, at.multiselect, at.radio) for e in choices for option in e.options
    ]
    # This Streamlit names its tables "dataframe": "arrow_data_frame" finds none (it found none before typing either).
    parts += [e.value.to_string() for e in at.get("arrow_data_frame") if isinstance(e, Element)]
    return " ".join(parts)


def test_a_student_sees_only_their_own_photos(browser, runs_dir):
    from tests.test_page_photos import _jpeg
    from tlcore.photos import PhotoStore

    _join("Ada")
    ada = Roster().who("browser-of-ada")
    adas = PhotoStore(ada.owner)
    adas.add_class("cups")
    adas.add("cups", _jpeg(1), "ada.jpg")
    browser.token = "browser-of-grace"
    at = _join("Grace")
    at.session_state[K.source] = "My photos (made here)"
    at.run()
    assert not at.exception and not at.tabs  # no class, no photo of Ada's
    assert any("Name 2 or more classes" in i.value for i in at.info)
    assert ada.owner not in _everything_shown(at)
