"""App latency in a real browser: start-up to the Dataset grid and the Model table, and slider response.

Starts `streamlit run app.py` on a free loopback port and drives Debian's
chromium with Playwright. Prints one JSON object:
  server_ready_s       from launching streamlit to its health check answering
  dataset_grid_s       from launching streamlit to the 16-image grid visible
  model_table_s        from opening the Model page (new session) to its layer table visible
  slider_update_s      median time from a freeze-slider key press to the new trainable count
Run: python bench/app_latency.py [--slider-moves 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.appserver import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402


def _wait(condition, deadline_s: float, what: str):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


def trainable_text(page) -> str:
    metric = page.locator('[data-testid="stMetric"]', has_text="Trainable").first
    return metric.locator('[data-testid="stMetricValue"]').inner_text() if metric.count() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slider-moves", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    started = time.perf_counter()
    with streamlit_server({"TLLAB_WEIGHTS": ""}) as url:
        server_ready = time.perf_counter() - started
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 2600})
            page.goto(url)
            _wait(lambda: page.locator('[data-testid="stImage"]').count() >= 16, 120, "the dataset grid")
            dataset_grid = time.perf_counter() - started

            t0 = time.perf_counter()
            model_page = browser.new_page(viewport={"width": 1400, "height": 2600})
            model_page.goto(f"{url}/model")
            model_page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=120_000)
            _wait(lambda: trainable_text(model_page), 120, "the trainable count")
            model_table = time.perf_counter() - t0

            thumb = model_page.locator('.st-key-freeze_at input[type="range"]').first
            thumb.focus()
            # From 18 to 16: between 16 and 15 a conv layer changes side, so every move changes the count.
            for _ in range(2):
                before = trainable_text(model_page)
                thumb.press("ArrowLeft")
                time.sleep(0.5)
            _wait(lambda: trainable_text(model_page) not in ("", before), 30, "the counts at k=16")
            latencies = []
            for i in range(args.slider_moves):
                before = trainable_text(model_page)
                t0 = time.perf_counter()
                thumb.press("ArrowLeft" if i % 2 == 0 else "ArrowRight")
                _wait(lambda: trainable_text(model_page) not in ("", before), 30, "the counts to update")
                latencies.append(time.perf_counter() - t0)
            browser.close()
    print(json.dumps({
        "server_ready_s": round(server_ready, 2),
        "dataset_grid_s": round(dataset_grid, 2),
        "model_table_s": round(model_table, 2),
        "slider_update_s": round(statistics.median(latencies), 3),
        "slider_update_all_s": [round(x, 3) for x in latencies],
    }))


if __name__ == "__main__":
    main()
