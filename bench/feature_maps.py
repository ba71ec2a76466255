"""See inside, "What the frozen layers see": how long the section takes to appear in a real browser.

Starts `streamlit run app.py` on a free loopback port with the offline ImageNet
weights file (TLLAB_WEIGHTS) and drives Debian's chromium with Playwright at the
app's default image size (128 px) and freeze point. Prints one JSON object:
  first_s         opening the See inside page on a fresh server (TensorFlow, both backbones, the maps) until
                  the section's image and both mosaics are shown and the script run has ended
  rerun_s         opening the page again in a new tab (warm server: the maps come from the cache)
  new_layer_s     picking a layer not computed yet (warm backbones: two forward passes and mosaics)
  cached_layer_s  picking the first layer again (a rerun whose maps come from the cache)
  screenshots     the page at 1280 x 900 and at a projector-like 1024 x 768
Run: python -m bench.feature_maps [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench import _common
from bench._common import cpu_info, emit, load_average, note, wait_for, weights_file
from bench.devserver import CHROMIUM, CHROMIUM_ARGS, streamlit_server

if TYPE_CHECKING:  # for the annotations: main() imports Playwright when it runs
    from playwright.sync_api import Browser, Locator, Page

DEADLINE_S = 180
SECTION = "What the frozen layers see"
VIEWPORTS = {"1280x900": (1280, 900), "1024x768": (1024, 768)}
NEW_LAYER = "block2_conv2"


def section_images(page: Page) -> int:
    """Images shown under the section's heading: the input and one mosaic per weighting."""
    return page.locator('[data-testid="stMainBlockContainer"] [data-testid="stImage"]').count()


def settled(page: Page) -> None:
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=DEADLINE_S * 1000)


def open_inside(browser: Browser, url: str, viewport: tuple[int, int]) -> tuple[Page, float]:
    """A new tab on the See inside page; seconds until the section's three images show and the run has ended."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    t0 = time.perf_counter()
    page.goto(f"{url}/inside")
    page.get_by_role("heading", name=SECTION).first.wait_for(timeout=DEADLINE_S * 1000)
    wait_for(lambda: section_images(page) >= 3, DEADLINE_S, "the image and both mosaics", poll_s=0.02)
    settled(page)
    return page, time.perf_counter() - t0


def scroll_to(page: Page, heading: Locator) -> None:
    """A heading at the top of the window (Streamlit scrolls an inner container, so full-page shots would be cut)."""
    heading.first.evaluate("e => e.scrollIntoView({block: 'start'})")
    time.sleep(0.5)


def screenshots(page: Page, out: Path, name: str) -> dict[str, str]:
    """The section from its heading, and its maps from the layer's heading."""
    shots = {}
    for part, heading in (("section", page.get_by_role("heading", name=SECTION)), ("maps", page.locator("h4"))):
        scroll_to(page, heading)
        shots[f"{name}_{part}"] = str(out / f"feature_maps_{name}_{part}.png")
        page.screenshot(path=shots[f"{name}_{part}"])
    return shots


def pick_layer(page: Page, layer: str) -> float:
    """Seconds from choosing `layer` in the Layer box to its heading and mosaics shown, run ended."""
    page.locator(".st-key-feature_maps_layer").click()
    page.keyboard.type(layer)  # the box filters its options: the long list need not be scrolled
    option = page.get_by_role("option", name=f"{layer} ·")
    t0 = time.perf_counter()
    option.first.click()
    page.locator("h4", has_text=f"{layer} ·").first.wait_for(timeout=DEADLINE_S * 1000)
    wait_for(lambda: section_images(page) >= 3, DEADLINE_S, "the new mosaics", poll_s=0.02)
    settled(page)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "tllab-feature-maps"))
    args = parser.parse_args()
    out = _common.browser_bench_folder(args.out)
    from playwright.sync_api import sync_playwright

    result: dict[str, object] = {"load_average_before": load_average()}
    env = {"TLLAB_WEIGHTS": str(weights_file()), "TLLAB_RUNS_DIR": tempfile.mkdtemp(prefix="tllab-bench-maps-")}
    with sync_playwright() as p, streamlit_server(env) as url:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        note("first opening (fresh server)")
        page, result["first_s"] = open_inside(browser, url, VIEWPORTS["1280x900"])
        first_layer = page.locator("h4").first.inner_text().split(" ·")[0]
        note("again, in a new tab")
        again, result["rerun_s"] = open_inside(browser, url, VIEWPORTS["1280x900"])
        again.close()
        shots = {}
        for name, viewport in VIEWPORTS.items():
            shot_page, _ = open_inside(browser, url, viewport)
            shots.update(screenshots(shot_page, out, name))
            shot_page.close()
        note(f"a new layer: {NEW_LAYER}")
        result["new_layer_s"] = pick_layer(page, NEW_LAYER)
        shots.update(screenshots(page, out, f"{NEW_LAYER}_1280x900"))
        result["cached_layer_s"] = pick_layer(page, first_layer)
        browser.close()
    result = {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
    emit({**result, "screenshots": shots, "load_average_after": load_average(), "cpu": cpu_info()})


if __name__ == "__main__":
    main()
