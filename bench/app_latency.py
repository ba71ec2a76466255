"""App latency in a real browser: each page's first render after a fresh server start, and slider response.

Starts `streamlit run app.py` on a free loopback port and drives Debian's
chromium with Playwright. For each of the five pages it starts a fresh server
(nothing cached, nothing imported yet), opens that page's URL and times until
the page's own content is visible and the script run has finished. On the
Model page's server it then times freeze-slider steps and a second opening of
the Model page in a new session. Prints one JSON object:
  server_ready_s       from launching streamlit to its health check answering (Dataset page's server)
  first_render_s       {page: seconds from opening its URL on a fresh server to its content shown, run finished}
  dataset_grid_s       from launching streamlit to the Dataset page's 16-image grid visible
  model_table_s        from opening the Model page again (new session, warm server) to its table and counts
  slider_update_s      median time from a freeze-slider key press to the new trainable count
Run: python -m bench.app_latency [--slider-moves 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bench._common import wait_for
from bench.devserver import CHROMIUM, CHROMIUM_ARGS, streamlit_server

if TYPE_CHECKING:  # for the annotations: main() imports Playwright when it runs
    from playwright.sync_api import Browser, Page

# (url path, title, selectors that must be shown (with a minimum count) before the page counts as rendered)
PAGES = [
    ("", "Dataset", [('[data-testid="stImage"]', 16)]),
    ("model", "Model & freeze", [('[data-testid="stDataFrame"]', 1), ('[data-testid="stMetric"]', 2)]),
    ("train", "Train", [(".st-key-start_training button", 1)]),
    ("inference", "Inference", [('[data-testid="stAlert"], [data-testid="stSelectbox"]', 1)]),
    ("runs", "Runs", [('[data-testid="stAlert"], [data-testid="stDataFrame"]', 1)]),
]
DEADLINE_S = 180


def trainable_text(page: Page) -> str:
    metric = page.locator('[data-testid="stMetric"]', has_text="Trainable").first
    return metric.locator('[data-testid="stMetricValue"]').inner_text() if metric.count() else ""


def shown_at_least(page: Page, selector: str, n: int) -> Callable[[], bool]:
    """A condition: `selector` on the page at least n times."""
    return lambda: page.locator(selector).count() >= n


def count_changed_from(page: Page, shown: str) -> Callable[[], bool]:
    """A condition: the trainable count shows, and differs from `shown`."""
    return lambda: trainable_text(page) not in ("", shown)


def open_and_time(
    browser: Browser, url: str, path: str, title: str, ready: list[tuple[str, int]]
) -> tuple[Page, float]:
    """Open url/path in a new tab; seconds until its title, its content and a finished script run show."""
    page = browser.new_page(viewport={"width": 1400, "height": 2600})
    t0 = time.perf_counter()
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=DEADLINE_S * 1000)
    for selector, count in ready:
        wait_for(shown_at_least(page, selector, count), DEADLINE_S, f"{selector} on the {title} page", poll_s=0.02)
    # The app root says when the script run (imports, caches, the whole page) has ended.
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=DEADLINE_S * 1000)
    return page, time.perf_counter() - t0


def slider_steps(page: Page, moves: int) -> list[float]:
    """Seconds from each freeze-slider key press to the new trainable count shown."""
    thumb = page.locator('.st-key-freeze_at input[type="range"]').first
    thumb.focus()
    # From 18 to 16: between 16 and 15 a conv layer changes side, so every move changes the count.
    for _ in range(2):
        before = trainable_text(page)
        thumb.press("ArrowLeft")
        time.sleep(0.5)
    wait_for(lambda: trainable_text(page) not in ("", before), 30, "the counts at k=16", poll_s=0.02)
    latencies = []
    for i in range(moves):
        before = trainable_text(page)
        t0 = time.perf_counter()
        thumb.press("ArrowLeft" if i % 2 == 0 else "ArrowRight")
        wait_for(count_changed_from(page, before), 30, "the counts to update", poll_s=0.02)
        latencies.append(time.perf_counter() - t0)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slider-moves", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    first_render: dict[str, float] = {}
    # No saved run: the Inference page's first screen, not the loading of a model (that is a prediction).
    runs_dir = tempfile.mkdtemp(prefix="tllab-bench-latency-")
    result: dict[str, object] = {}
    with sync_playwright() as p:
        for path, title, ready in PAGES:
            started = time.perf_counter()
            with streamlit_server({"TLLAB_WEIGHTS": "", "TLLAB_RUNS_DIR": runs_dir}) as url:
                ready_s = time.perf_counter() - started
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page, first_render[title] = open_and_time(browser, url, path, title, ready)
                if title == "Dataset":
                    result["server_ready_s"] = round(ready_s, 2)
                    result["dataset_grid_s"] = round(time.perf_counter() - started, 2)
                if title == "Model & freeze":
                    latencies = slider_steps(page, args.slider_moves)
                    result["slider_update_s"] = round(statistics.median(latencies), 3)
                    result["slider_update_all_s"] = [round(x, 3) for x in latencies]
                    _, again = open_and_time(browser, url, path, title, ready)  # its metrics are in `ready`
                    result["model_table_s"] = round(again, 2)
                browser.close()
    result["first_render_s"] = {title: round(seconds, 2) for title, seconds in first_render.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
