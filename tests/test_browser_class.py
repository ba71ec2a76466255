"""The class server for real (`streamlit run classroom.py` over loopback HTTPS, Debian's chromium): the
browser's identity is an HttpOnly cookie, never the URL; a reload keeps it; Leave gives the browser back.
"""

from __future__ import annotations

import time

import pytest

from dashboard.certificate import write_certificate
from dashboard.devserver import CHROMIUM, CHROMIUM_ARGS, streamlit_server
from tlcore.classroom import CLASS_KEY_ENV, COOKIE_NAME, Roster

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def class_server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("class-runs")
    tls = write_certificate(tmp_path_factory.mktemp("tls"), [])
    env = {CLASS_KEY_ENV: "a-class-key-of-the-teacher", "TLLAB_RUNS_DIR": str(runs), "TLLAB_WEIGHTS": ""}
    with streamlit_server(env, script="classroom.py", tls=tls) as url:
        yield url, runs


def _wait_for_text(page, text: str, timeout_s: float = 120) -> None:
    page.get_by_text(text).first.wait_for(timeout=timeout_s * 1000)


def test_a_student_joins_with_enter_and_a_reload_keeps_them(class_server):
    from playwright.sync_api import sync_playwright

    url, runs = class_server
    assert url.startswith("https://")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(ignore_https_errors=True)  # the test's own self-signed certificate
        page = context.new_page()
        page.goto(url)
        page.get_by_role("heading", name="Join the class").wait_for(timeout=120_000)
        box = page.get_by_label("Your name").first
        box.fill("Ada Lovelace")
        box.press("Enter")  # Enter in the first text box joins
        _wait_for_text(page, "Signed in as")
        page.get_by_role("heading", name="Dataset").first.wait_for(timeout=120_000)

        (cookie,) = [c for c in context.cookies() if c["name"] == COOKIE_NAME]
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert COOKIE_NAME not in page.evaluate("document.cookie")  # no script on the page can read it
        assert cookie["value"] not in page.url and "owner" not in page.url and "job" not in page.url
        assert [p.name for p in Roster(runs).people()] == ["Ada Lovelace"]
        assert cookie["value"] not in (runs / ".class" / "roster.json").read_text()

        page.reload()  # the same browser: the same person, no join form
        _wait_for_text(page, "Signed in as")
        assert page.get_by_role("heading", name="Join the class").count() == 0
        assert "owner" not in page.url

        other = browser.new_context(ignore_https_errors=True).new_page()  # another browser: nobody yet
        other.goto(url)
        other.get_by_role("heading", name="Join the class").wait_for(timeout=120_000)

        page.get_by_role("button", name="Leave").click()  # a shared computer
        page.get_by_role("heading", name="Join the class").wait_for(timeout=60_000)
        deadline = time.monotonic() + 30
        while Roster(runs).people()[0].browsers and time.monotonic() < deadline:
            time.sleep(0.2)
        assert Roster(runs).people()[0].browsers == []  # Ada's work stays; this browser is nobody's
        browser.close()
