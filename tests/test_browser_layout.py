"""Every page fits a projector (1024 x 768) and a phone (390 x 844): no label or button text is cut off.

Debian's chromium (Playwright) against `streamlit run app.py`, with a run, a saved sweep and a model in its
runs folder so every page shows its sections; expanders are opened before measuring. A text is cut off when
its element scrolls sideways (scrollWidth over clientWidth) while hiding the overflow; a wide table may
scroll inside itself on a phone, the page itself never. Screenshots, light and dark, go to
$TMPDIR/tllab-screenshots/layout.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from bench.devserver import CHROMIUM, CHROMIUM_ARGS, streamlit_server
from dashboard.state import K
from tests.helpers import TINY_CONFIG, make_dataset_folder
from tlcore.owner_settings import OwnerSettings

pytestmark = pytest.mark.browser

SHOTS = Path(tempfile.gettempdir()) / "tllab-screenshots" / "layout"
PAGES = [("", "Dataset"), ("model", "Model & freeze"), ("inside", "See inside"), ("train", "Train")]
PAGES += [("inference", "Inference"), ("runs", "Runs")]
SIZES = {"projector": (1024, 768), "phone": (390, 844)}
OWNER = "layout-test"
# Texts whose overflow is hidden (ellipsis or clipping) in labels, buttons, expander titles and metrics.
CUT_OFF = """() => {
  const roots = '[data-testid="stWidgetLabel"], button, label, [data-testid="stExpander"] summary, '
    + '[data-testid="stMetricLabel"], [data-testid="stMetricValue"], [data-testid="stTab"]';
  const cut = [];
  for (const root of document.querySelectorAll(roots)) {
    for (const el of [root, ...root.querySelectorAll('*')]) {
      const text = (el.innerText || '').trim();
      const style = getComputedStyle(el);
      const hides = style.overflowX !== 'visible' || style.textOverflow === 'ellipsis';
      if (text && hides && el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) {
        cut.push(`${text.slice(0, 60)} (${el.scrollWidth} px in ${el.clientWidth})`);
        break;
      }
    }
  }
  return cut;
}"""
PAGE_WIDER_THAN_SCREEN = "() => document.documentElement.scrollWidth > window.innerWidth + 1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server whose runs folder holds a run and a saved sweep of the sample's classes, and whose test owner
    has the sample at 32 px (See inside's pass over every image then takes seconds)."""
    from tlcore.data import scan
    from tlcore.runs import RunStore
    from tlcore.tf.sweep import run_sweep
    from tlcore.tf.training import train_and_record

    runs = tmp_path_factory.mktemp("layout-runs")
    data = make_dataset_folder(tmp_path_factory.mktemp("layout-data"), classes=("animals", "vehicles"), n_train=4)
    info = scan(data)
    train_and_record(TINY_CONFIG, info, RunStore(runs))
    run_sweep(TINY_CONFIG, info, [18, 14], scratch=True, store=RunStore(runs))
    OwnerSettings(runs).save(OWNER, {K.image_size: 32})
    with streamlit_server({"TLLAB_RUNS_DIR": str(runs), "TLLAB_WEIGHTS": ""}) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def _settled(page) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            return
        time.sleep(0.25)
    pytest.fail("the page's script run did not finish")


def _open(page, url: str, path: str, title: str) -> None:
    page.goto(f"{url}/{path}?owner={OWNER}")
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
    time.sleep(1)  # fragments and background views draw once more
    _settled(page)
    for summary in page.locator('[data-testid="stExpander"] summary').all():
        if summary.is_visible():
            summary.click()
    _settled(page)


@pytest.mark.parametrize("size", SIZES)
def test_no_label_or_button_is_cut_off_on_any_page(server, browser, size):
    width, height = SIZES[size]
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems = {}
    for theme in ("light", "dark"):
        phone = width < 500
        context = browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=theme, is_mobile=phone, has_touch=phone
        )
        page = context.new_page()
        for path, title in PAGES:
            _open(page, server, path, title)
            assert page.locator('[data-testid="stException"]').count() == 0, f"{title}: an exception"
            page.screenshot(path=str(SHOTS / f"{path or 'dataset'}-{size}-{theme}.png"))
            if theme == "light":  # the layout is the theme's to colour, not to change
                if cut := page.evaluate(CUT_OFF):
                    problems[title] = cut
                if page.evaluate(PAGE_WIDER_THAN_SCREEN):
                    problems.setdefault(title, []).append("the page scrolls sideways")
        context.close()
    assert not problems, problems
