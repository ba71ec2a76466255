"""Class mode's screens fit a projector and a phone: the teacher's Class page at 1024 x 768 and the
student's photo maker at 390 x 844, light and dark, with nothing cut off and no sideways scroll.

The class server (`classroom.py`) on loopback, with a roster, runs and photos made before the browser
comes; each browser context carries the cookie of the person it plays. Screenshots go to
$TMPDIR/tllab-screenshots/class-layout.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from bench.devserver import streamlit_server
from dashboard.browser_cookie import new_token
from dashboard.state import SOURCE_PHOTOS, K
from tests.helpers import TINY_CONFIG, make_dataset_folder
from tests.test_browser_layout import (
    CUT_OFF,
    PAGE_WIDER_THAN_SCREEN,
    SIZES,
    _settled,
    browser,  # noqa: F401  (the module's chromium, a fixture)
)
from tests.test_page_photos import _jpeg
from tlcore.access import student
from tlcore.classroom import CLASS_KEY_ENV, COOKIE_NAME, ClassSettings, Roster
from tlcore.owner_settings import OwnerSettings
from tlcore.photos import PhotoStore

pytestmark = pytest.mark.browser

SHOTS = Path(tempfile.gettempdir()) / "tllab-screenshots" / "class-layout"
TEACHER, ADA = new_token(), new_token()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tlcore.data import scan
    from tlcore.runs import RunStore
    from tlcore.tf.training import train_and_record

    runs = tmp_path_factory.mktemp("class-layout-runs")
    roster = Roster(runs)
    roster.make_teacher(roster.join("Ms Teacher", TEACHER).owner)
    info = scan(make_dataset_folder(tmp_path_factory.mktemp("data"), n_train=4, n_val=2))
    for i, name in enumerate(["Ada Lovelace", "Grace Hopper", "Katherine Johnson-Goble"]):
        member = roster.join(name, ADA if i == 0 else new_token())
        for freeze_at in (18, 10 - 5 * i):
            train_and_record(TINY_CONFIG.replace(freeze_at=freeze_at), info, RunStore(runs, student(member.owner)))
    ada = roster.who(ADA)
    photos = PhotoStore(ada.owner, runs)
    for name in ("cups", "keys"):
        photos.add_class(name)
        for seed in range(5):
            photos.add(name, _jpeg(seed + (10 if name == "keys" else 0)), f"{name}{seed}.jpg")
    OwnerSettings(runs).save(ada.owner, {K.source: SOURCE_PHOTOS})  # her dataset: her photos
    ClassSettings(runs).update(assignment={ada.owner: {"freeze_at": 10, "pretrained": True}})
    env = {CLASS_KEY_ENV: "the-class-key-for-layout", "TLLAB_RUNS_DIR": str(runs), "TLLAB_WEIGHTS": ""}
    with streamlit_server(env, script="classroom.py") as url:
        yield url


# (who, page path, its heading, size): the teacher's board on the projector, the student's maker on a phone.
VIEWS = [
    (TEACHER, "class_board", "Class", "projector"),
    (ADA, "", "Dataset", "phone"),
    (ADA, "model", "Model & freeze", "phone"),
    (ADA, "runs", "Runs", "phone"),
]


@pytest.mark.parametrize(("token", "path", "title", "size"), VIEWS, ids=[f"{v[1] or 'dataset'}-{v[3]}" for v in VIEWS])
def test_class_screens_fit(server, browser, token, path, title, size):  # noqa: F811
    width, height = SIZES[size]
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for theme in ("light", "dark"):
        phone = width < 500
        context = browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=theme, is_mobile=phone, has_touch=phone
        )
        context.add_cookies([{"name": COOKIE_NAME, "value": token, "url": server}])
        page = context.new_page()
        page.goto(f"{server}/{path}")
        page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
        time.sleep(1)
        _settled(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(SHOTS / f"{path or 'dataset'}-{size}-{theme}.png"), full_page=True)
        if theme == "light":
            problems += page.evaluate(CUT_OFF)
            if page.evaluate(PAGE_WIDER_THAN_SCREEN):
                problems.append("the page scrolls sideways")
        context.close()
    assert not problems, problems
