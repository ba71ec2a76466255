"""From clicks to code: how long the script sections take to appear in a real browser.

Starts `streamlit run app.py` on a free loopback port with the offline ImageNet
weights file (TLLAB_WEIGHTS) and a runs folder holding one run record, and drives
Debian's chromium with Playwright. Prints one JSON object:
  write_ms        writing one script in this process (tlcore.codegen: DataFolder.from_info + training_script),
                  median of 20 after a first one (which loads the template)
  model_first_s   opening the Model & freeze page on a fresh server until the section's download button is
                  shown and the script run has ended (the whole page: the section is its last part)
  model_again_s   the same in a new tab (warm server)
  expand_s        clicking "Show train.py" until the script's text is visible (no rerun: it is on the page)
  freeze_s        clicking "Train block 5 + head" until the shown script reads FINE_TUNE_AT = 14 (with
                  pretrained weights the button sets a second phase)
  runs_s          opening the Runs page until its section's script is on the page
  screenshots     the Model page's section, opened, at 1280 x 900 and at a projector-like 1024 x 768;
                  the Runs page's section at 1280 x 900
Run: python -m bench.code_section [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench import _common
from bench._common import SAMPLE_DATA, cpu_info, emit, load_average, note, weights_file
from bench.devserver import CHROMIUM, CHROMIUM_ARGS, streamlit_server

if TYPE_CHECKING:  # for the annotations: main() imports Playwright when it runs
    from playwright.sync_api import Browser, Page

DEADLINE_S = 120
SETTINGS_SECTION = "The code behind these settings"
RUN_SECTION = "The code behind a run"
VIEWPORTS = {"1280x900": (1280, 900), "1024x768": (1024, 768)}


def write_ms() -> float:
    """Median milliseconds to write the default settings' script for the sample data (template loaded)."""
    from tlcore.codegen import training_script
    from tlcore.config import TrainConfig
    from tlcore.data import scan
    from tlcore.script_folder import DataFolder

    info, config = scan(SAMPLE_DATA), TrainConfig(weights=str(weights_file()))
    training_script(config, DataFolder.from_info(info))
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        training_script(config, DataFolder.from_info(info))
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def settled(page: Page) -> None:
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=DEADLINE_S * 1000)


def open_page(browser: Browser, url: str, path: str, heading: str, viewport: tuple[int, int]) -> tuple[Page, float]:
    """A new tab on a page; seconds until the section's heading and download button show and the run has ended."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    t0 = time.perf_counter()
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", name=heading).first.wait_for(timeout=DEADLINE_S * 1000)
    page.get_by_role("button", name="Download train.py").first.wait_for(timeout=DEADLINE_S * 1000)
    settled(page)
    return page, time.perf_counter() - t0


def expand(page: Page) -> float:
    """Seconds from clicking the expander to the script's text visible."""
    t0 = time.perf_counter()
    page.get_by_text("Show train.py").first.click()
    page.locator('[data-testid="stCode"]').filter(has_text="FREEZE_AT").first.wait_for(
        state="visible", timeout=DEADLINE_S * 1000
    )
    return time.perf_counter() - t0


def shoot(page: Page, heading: str, path: Path) -> str:
    """The section from its heading at the top of the window (Streamlit scrolls an inner container)."""
    page.get_by_role("heading", name=heading).first.evaluate("e => e.scrollIntoView({block: 'start'})")
    time.sleep(0.5)
    page.screenshot(path=str(path))
    return str(path)


def a_run(runs_dir: Path) -> None:
    """One finished run record on the sample data (no training: the section reads only the record)."""
    from tlcore.config import FineTuneConfig, TrainConfig
    from tlcore.data import scan
    from tlcore.records import COMPLETED
    from tlcore.runs import RunStore

    config = TrainConfig(weights=str(weights_file()), fine_tune=FineTuneConfig())
    RunStore(runs_dir).create(config, scan(SAMPLE_DATA)).finish(COMPLETED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "tllab-code-section"))
    args = parser.parse_args()
    out = _common.browser_bench_folder(args.out)
    from playwright.sync_api import sync_playwright

    result: dict[str, object] = {"load_average_before": load_average(), "write_ms": write_ms()}
    runs_dir = Path(tempfile.mkdtemp(prefix="tllab-bench-code-"))
    a_run(runs_dir)
    shots: dict[str, str] = {}
    env = {"TLLAB_WEIGHTS": str(weights_file()), "TLLAB_RUNS_DIR": str(runs_dir)}
    with sync_playwright() as p, streamlit_server(env) as url:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        note("the Model page on a fresh server")
        page, result["model_first_s"] = open_page(browser, url, "model", SETTINGS_SECTION, VIEWPORTS["1280x900"])
        page.close()
        note("again, in a new tab")
        page, result["model_again_s"] = open_page(browser, url, "model", SETTINGS_SECTION, VIEWPORTS["1280x900"])
        result["expand_s"] = expand(page)
        t0 = time.perf_counter()
        page.get_by_role("button", name="Train block 5 + head").first.click()
        page.locator('[data-testid="stCode"]').filter(has_text="FINE_TUNE_AT = 14").first.wait_for(
            timeout=DEADLINE_S * 1000
        )
        settled(page)
        result["freeze_s"] = time.perf_counter() - t0
        page.close()
        for name, viewport in VIEWPORTS.items():
            page, _ = open_page(browser, url, "model", SETTINGS_SECTION, viewport)
            expand(page)
            shots[f"model_{name}"] = shoot(page, SETTINGS_SECTION, out / f"code_model_{name}.png")
            page.close()
        note("the Runs page")
        page, result["runs_s"] = open_page(browser, url, "runs", RUN_SECTION, VIEWPORTS["1280x900"])
        expand(page)
        shots["runs_1280x900"] = shoot(page, RUN_SECTION, out / "code_runs_1280x900.png")
        browser.close()
    result = {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
    emit({**result, "screenshots": shots, "load_average_after": load_average(), "cpu": cpu_info()})


if __name__ == "__main__":
    main()
