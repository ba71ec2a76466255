"""Model page, "Find a learning rate": how long the curve takes to appear in a real browser, and screenshots.

Starts `streamlit run app.py` on a free loopback port with the offline ImageNet
weights file (TLLAB_WEIGHTS) and drives Debian's chromium with Playwright on the
sample data at the app's default 128 px. Prints one JSON object:
  head_s     from the click on "Sweep the learning rate" (default settings: the head alone, freeze 18)
             until the chart and its caption show and the script run has ended
  phase_2_s  the same after "Train block 5 + head" and "phase 2" (the head trained first, then k=14)
  use_rate   the learning-rate slider's value after "Use this rate" on the phase-2 curve
  captions   each curve's route, steps and seconds as the page writes them
  screenshots  the section at 1280 and 1024 px wide
Run: python -m bench.lr_finder_page [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench import _common
from bench._common import cpu_info, emit, load_average, note, weights_file
from bench.devserver import CHROMIUM, CHROMIUM_ARGS, streamlit_server

if TYPE_CHECKING:  # for the annotations: main() imports Playwright when it runs
    from playwright.sync_api import Page

DEADLINE_S = 300
SECTION = "Find a learning rate"
VIEWPORTS = {"1280": (1280, 1100), "1024": (1024, 1100)}


def settled(page: Page) -> None:
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=DEADLINE_S * 1000)


def scroll_to_section(page: Page) -> None:
    """The section's heading at the top of the window (Streamlit scrolls an inner container)."""
    page.get_by_role("heading", name=SECTION).first.evaluate("e => e.scrollIntoView({block: 'start'})")
    time.sleep(0.8)


def sweep(page: Page) -> tuple[float, str]:
    """Seconds from the click to the curve's caption shown and the run ended, and that caption."""
    scroll_to_section(page)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Sweep the learning rate").click()
    caption = page.get_by_text("Route:").first
    caption.wait_for(timeout=DEADLINE_S * 1000)
    page.locator('[data-testid="stVegaLiteChart"]').last.wait_for(timeout=DEADLINE_S * 1000)
    settled(page)
    return time.perf_counter() - t0, caption.inner_text()


def shoot(page: Page, out: Path, name: str) -> str:
    scroll_to_section(page)
    path = str(out / f"lr_finder_{name}.png")
    page.screenshot(path=path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "tllab-lr-finder"))
    args = parser.parse_args()
    out = _common.browser_bench_folder(args.out)
    from playwright.sync_api import sync_playwright

    result: dict[str, object] = {"load_average_before": load_average()}
    shots: dict[str, str] = {}
    captions: dict[str, str] = {}
    env = {"TLLAB_WEIGHTS": str(weights_file()), "TLLAB_RUNS_DIR": tempfile.mkdtemp(prefix="tllab-bench-lr-")}
    with sync_playwright() as p, streamlit_server(env) as url:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = {}
        for name, (width, height) in VIEWPORTS.items():
            pages[name] = browser.new_page(viewport={"width": width, "height": height})
            pages[name].goto(f"{url}/model")
            pages[name].get_by_role("heading", name=SECTION).first.wait_for(timeout=DEADLINE_S * 1000)
            settled(pages[name])
        page = pages["1280"]
        note("the head alone (freeze 18)")
        result["head_s"], captions["head"] = sweep(page)
        for name, shot_page in pages.items():  # the other tab shares the finished sweep
            if shot_page is not page:
                shot_page.reload()
                shot_page.get_by_text("Route:").first.wait_for(timeout=DEADLINE_S * 1000)
                settled(shot_page)
            shots[f"head_{name}"] = shoot(shot_page, out, f"head_{name}")
        note("Train block 5 + head, phase 2")
        page.get_by_role("button", name="Train block 5 + head").click()
        settled(page)
        page.get_by_text("phase 2: freeze point 14").click()
        settled(page)
        result["phase_2_s"], captions["phase_2"] = sweep(page)
        shots["phase_2_1280"] = shoot(page, out, "phase_2_1280")
        page.set_viewport_size({"width": VIEWPORTS["1024"][0], "height": VIEWPORTS["1024"][1]})
        shots["phase_2_1024"] = shoot(page, out, "phase_2_1024")
        page.set_viewport_size({"width": VIEWPORTS["1280"][0], "height": VIEWPORTS["1280"][1]})
        page.get_by_role("button", name="Use this rate").click()
        settled(page)
        result["use_rate"] = page.get_by_text("Phase 2 learning rate set to").first.inner_text()
        shots["used_1280"] = shoot(page, out, "used_1280")
        browser.close()
    result = {k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()}
    result.update(captions=captions, screenshots=shots, load_average_after=load_average(), cpu=cpu_info())
    emit(result)


if __name__ == "__main__":
    main()
