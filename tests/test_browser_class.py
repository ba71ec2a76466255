"""The class server for real (`streamlit run classroom.py` over loopback HTTPS, Debian's chromium): the
browser's identity is an HttpOnly cookie, never the URL; a reload keeps it; Leave gives the browser back.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

import pytest

from bench.devserver import CHROMIUM, CHROMIUM_ARGS, FAKE_CAMERA_ARGS, streamlit_server
from dashboard.certificate import write_certificate
from tlcore.classroom import CLASS_KEY_ENV, COOKIE_NAME, Roster

pytestmark = pytest.mark.browser
SHOTS = Path(tempfile.gettempdir()) / "tllab-screenshots" / "class"


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


def _wait(condition, deadline_s: float, what: str):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out after {deadline_s:.0f} s waiting for {what}")


def test_a_student_on_a_phone_makes_a_dataset_with_the_webcam(class_server):
    """Over loopback HTTPS, chromium's fake camera, at a 390 x 844 phone viewport: snapshot after snapshot."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    url, runs = class_server
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + FAKE_CAMERA_ARGS, headless=True)
        context = browser.new_context(
            ignore_https_errors=True, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        context.grant_permissions(["camera"])
        page = context.new_page()
        page.goto(url)
        page.get_by_role("heading", name="Join the class").wait_for(timeout=120_000)
        box = page.get_by_label("Your name").first
        box.fill("Grace")
        box.press("Enter")
        page.get_by_role("heading", name="Dataset").first.wait_for(timeout=120_000)
        page.locator(
            '[data-testid="stSidebarCollapsedControl"] button, [data-testid="stExpandSidebarButton"]'
        ).first.click()
        page.get_by_text("My photos (made here)").click()
        page.get_by_role("heading", name="Make your dataset").wait_for(timeout=60_000)
        # The sidebar covers a phone's screen: close it as a student would.
        page.locator('[data-testid="stSidebarCollapseButton"] button').first.click()
        for name in ("cups", "keys"):
            field = page.get_by_label("New class")
            field.fill(name)
            field.press("Enter")
            page.get_by_role("tab", name=f"{name} (0)").wait_for(timeout=60_000)
        page.locator(".st-key-photo_camera_on_cups label").click()
        taken = 0
        video = page.locator('[data-testid="stCameraInput"] video')
        for taken in range(1, 4):
            # A loaded server may still be replacing the last camera with a fresh one: a click that its rerun
            # overtook is simply made again, as a student would.
            def snapshot_landed(taken: int = taken) -> bool:
                if page.get_by_role("tab", name=f"cups ({taken})").count():
                    return True
                ready = video.count() == 1 and video.evaluate("v => v.readyState >= 2 && v.videoWidth > 0")
                button = page.get_by_role("button", name="Take Photo")
                if ready and button.count() == 1 and not page.locator('[data-testid="stStatusWidget"]').count():
                    button.click()
                    landed = page.get_by_role("tab", name=f"cups ({taken})")
                    with contextlib.suppress(PlaywrightTimeout):  # slow: give the click its rerun first
                        landed.wait_for(timeout=20_000)
                return bool(page.get_by_role("tab", name=f"cups ({taken})").count())

            _wait(snapshot_landed, 120, f"snapshot {taken}")
        page.screenshot(path=str(SHOTS / "maker-phone.png"), full_page=True)
        grace = Roster(runs).people()[-1]
        stored = sorted((runs / ".photos" / grace.owner).rglob("*.jpg"))
        assert len(stored) == 3 and all(p.parent.name == "cups" for p in stored)
        assert grace.name not in str(stored[0])  # folders are named by the opaque id, never the name
        overflow = page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth + 1")
        assert not overflow, "the maker scrolls sideways on a phone"
        browser.close()
