"""What watching costs: the same run started from the Train page, watched against the tab on another page.

Starts `streamlit run app.py` on a free loopback port and drives Debian's
chromium with Playwright, on this machine. Every run is the default run a
teacher starts (the bundled sample, the ImageNet weights file, freeze point
18, 128 px, 5 epochs) from the Train page's Start button:

  watched  the tab stays on the Train page, whose live view redraws while it trains
  away     right after Start the tab moves to the Dataset page

A first run warms the server up (TensorFlow import, tracing) and is not
counted. Then `--pairs` pairs run interleaved (watched, away; away, watched;
...), so a slow spell of the machine hits both sides. The time of a run is the
run record's own `seconds` (from its first decode to its model saved), with
its training phase (`train_seconds`) beside it. Also printed: the server's
and the browser's CPU seconds per run, and the load average.

Prints one JSON object; the figure to read is `median_ratio` (watched / away).
Run: python -m bench.live_view [--pairs 2] [--epochs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import _common

_common.setup()
from bench._common import cpu_info, emit, load_average, median, note, rounded, wait_for, weights_file  # noqa: E402
from bench.devserver import CHROMIUM, CHROMIUM_ARGS, streamlit_process  # noqa: E402
from tlcore.runs import RunStore  # noqa: E402

if TYPE_CHECKING:  # for the annotations: main() imports Playwright when it runs
    from playwright.sync_api import Page

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (threads included), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended since
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def chromium_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"chromium" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def nav(page: Page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)


def set_epochs(page: Page, epochs: int) -> None:
    nav(page, "Model & freeze")
    box = page.locator(".st-key-epochs input")
    box.fill(str(epochs))
    box.press("Enter")
    wait_for(
        lambda: box.input_value() == str(epochs) and page.get_by_text("Ready to train").count() >= 1,
        60,
        f"the Model page to take {epochs} epochs",
    )


def one_run(page: Page, store: RunStore, server_pid: int, watched: bool) -> dict[str, Any]:
    nav(page, "Train")
    start = page.locator(".st-key-start_training button")
    wait_for(lambda: start.count() == 1 and start.first.is_enabled(), 120, "an enabled Start button")
    before = {s.run_id for s in store.list()}
    cpu0, browser0, t0 = cpu_seconds([server_pid]), cpu_seconds(chromium_pids()), time.monotonic()
    start.first.click()  # the one button left once the page's rerun has replaced the old one
    run_id = wait_for(
        lambda: next((s.run_id for s in store.list() if s.run_id not in before), None), 120, "the run folder"
    )
    if not watched:
        nav(page, "Dataset")
    summary = wait_for(lambda: (s := store.summary(run_id)).status != "running" and s, 900, "the run to end")
    record = summary.record
    return {
        "watched": watched,
        "status": summary.status,
        "seconds": rounded(record.seconds, 2),
        "train_seconds": rounded(record.train_seconds, 2),
        "extract_seconds": rounded(record.extract_seconds, 2),
        "click_to_end_s": round(time.monotonic() - t0, 2),
        "server_cpu_s": round(cpu_seconds([server_pid]) - cpu0, 1),
        "browser_cpu_s": round(cpu_seconds(chromium_pids()) - browser0, 1),
        "load_average": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2, help="interleaved watched/away pairs (default 2)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run (default 5)")
    args = parser.parse_args()
    weights = weights_file()  # this benchmark runs the default ImageNet run
    from playwright.sync_api import sync_playwright

    runs_dir = Path(tempfile.mkdtemp(prefix="tllab-bench-live-"))
    store = RunStore(runs_dir)
    env = {"TLLAB_RUNS_DIR": str(runs_dir), "TLLAB_WEIGHTS": str(weights)}
    order = [True]  # warm-up, watched
    for i in range(args.pairs):
        order += [True, False] if i % 2 == 0 else [False, True]
    results: list[dict[str, Any]] = []
    with streamlit_process(env) as (url, proc), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2600})
        page.goto(url)
        page.get_by_role("heading", name="Dataset", exact=True).first.wait_for(timeout=120_000)
        if args.epochs != 5:
            set_epochs(page, args.epochs)
        for i, watched in enumerate(order):
            result = one_run(page, store, proc.pid, watched)
            note(f"run {i} ({'warm-up, ' if i == 0 else ''}{'watched' if watched else 'away'}): {json.dumps(result)}")
            if i:
                results.append(result)
        browser.close()

    watched_runs = [r for r in results if r["watched"]]
    away_runs = [r for r in results if not r["watched"]]
    pairs = [(results[i], results[i + 1]) for i in range(0, len(results) - 1, 2)]
    ratios = [(a if a["watched"] else b)["seconds"] / (b if a["watched"] else a)["seconds"] for a, b in pairs]
    emit(
        {
            "benchmark": "live_view",
            "cpu": cpu_info(),
            "run": f"sample data, ImageNet weights file, freeze point 18, 128 px, {args.epochs} epochs",
            "runs": results,
            "median_seconds_watched": rounded(median(r["seconds"] for r in watched_runs), 2),
            "median_seconds_away": rounded(median(r["seconds"] for r in away_runs), 2),
            "median_train_seconds_watched": rounded(median(r["train_seconds"] for r in watched_runs), 2),
            "median_train_seconds_away": rounded(median(r["train_seconds"] for r in away_runs), 2),
            "median_server_cpu_s_watched": rounded(median(r["server_cpu_s"] for r in watched_runs), 1),
            "median_server_cpu_s_away": rounded(median(r["server_cpu_s"] for r in away_runs), 1),
            "pair_ratios": [round(r, 3) for r in ratios],
            "median_ratio": rounded(median(ratios), 3),
            "goal": "median_ratio <= 1.10",
        }
    )


if __name__ == "__main__":
    main()
