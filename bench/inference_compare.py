"""Inference page, explanations that compare and the camera: how long each takes to appear.

Three runs on the sample data at 128 px (made with the CLI unless --runs names a
folder holding them): pretrained with k=18 (the ImageNet weights file), head first
then k=14 at 1e-5, and from scratch (random weights, every layer trains). Then:

  core (in this process, models loaded, no browser; NAME_first_call_s: the first call, which traces the
  functions as a fresh server does; NAME_s: the median of 3 after it):
    compare                one validation image explained by the three runs (tlcore explain_with_each)
    single                 one image explained by one run (what a camera snapshot costs)
    evaluate               predicting the 50 validation images (evaluate_split)
    top_losses             the 8 hardest images' Grad-CAMs for the predicted and the true class (one batch)
  browser (streamlit run app.py on loopback, Debian's chromium with a fake camera, 1280 px wide):
    first_image_s          a validation image picked on a fresh server until its prediction, overlay and five
                           nearest training images show (TensorFlow imported, the model loaded, every training
                           image through VGG16 once)
    next_image_s           another validation image until its prediction and nearest training images show
    compare_first_s        two more runs added to the comparison until three columns show (two models loaded)
    compare_new_image_s    another image picked: the image above and the three columns again (models warm)
    compare_other_class_s  Grad-CAM for the other class: the image above and the three columns again
    camera_s               "Take Photo" until the snapshot's prediction and overlay show
    evaluate_s             "Evaluate" until the validation accuracy shows (first evaluation on this server)
    evaluate_and_top_losses_s  "Evaluate" until the hardest images' maps show too
    cell_s                 a click on a confusion-matrix cell until its first 8 images (fewer if it has fewer)
                           and their Grad-CAM for the true and the predicted class show
  screenshots at 1280 x 900 and 1024 x 768 of the snapshot, the comparison, the hardest images and a
  confusion cell's images.
Run: python -m bench.inference_compare [--runs DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import _common
from bench._common import SAMPLE_DATA, cpu_info, emit, load_average, median, note, setup, wait_for, weights_file
from bench.devserver import CHROMIUM, CHROMIUM_ARGS, FAKE_CAMERA_ARGS, streamlit_server

if TYPE_CHECKING:  # for the annotations: browser_timings() imports Playwright when it runs
    from playwright.sync_api import Page

DEADLINE_S = 300
VIEWPORTS = {"1280x900": (1280, 900), "1024x768": (1024, 768)}
RUNS = {  # name -> the train command's options ("{weights}": the ImageNet weights file)
    "pretrained": ["--weights", "{weights}", "--freeze-at", "18", "--epochs", "5"],
    "fine-tuned": [
        *("--weights", "{weights}", "--freeze-at", "18", "--epochs", "3"),
        *("--fine-tune-at", "14", "--fine-tune-epochs", "2", "--fine-tune-lr", "1e-5"),
    ],
    "scratch": ["--weights", "none", "--freeze-at", "0", "--epochs", "2", "--learning-rate", "1e-4"],
}


def train_runs(runs_dir: Path) -> dict[str, Any]:
    """The three runs, trained with the CLI at 128 px: name -> (run folder, seconds, val accuracy)."""
    made = {}
    weights = str(weights_file())
    for name, template in RUNS.items():
        options = [weights if o == "{weights}" else o for o in template]
        note(f"training {name}")
        command = [sys.executable, "-m", "tlcore", "train", "--data", str(SAMPLE_DATA), "--image-size", "128"]
        out = subprocess.run(
            [*command, *options, "--runs-dir", str(runs_dir), "--json"], capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout)
        made[name] = {k: result[k] for k in ("run_dir", "seconds", "val_accuracy")}
    return made


def core_timings(run_dirs: list[str]) -> dict[str, float | None]:
    """The tlcore functions behind the page, timed in this process."""
    setup()
    from tlcore.data import scan
    from tlcore.run_folder import MODEL_FILE
    from tlcore.tf.gradcam import explainer_for
    from tlcore.tf.inference import evaluate_split, explain, explain_top_losses, explain_with_each
    from tlcore.tf.model import load_model

    models = [(m, explainer_for(m)) for m in (load_model(Path(d) / MODEL_FILE) for d in run_dirs)]
    info = scan(SAMPLE_DATA)
    names, image = list(info.class_names), str(info.items("validation")[0][0])

    def timed(name: str, call: Callable[[], object]) -> dict[str, float | None]:
        """The first call (it traces the functions: the page pays it once per server), then the median of 3."""
        t0 = time.perf_counter()
        call()
        first = time.perf_counter() - t0
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        return {f"{name}_first_call_s": first, f"{name}_s": median(times)}

    evaluation = evaluate_split(models[0][0], info, names)  # evaluate_s below is timed on a traced function
    return {
        **timed("compare", lambda: explain_with_each(models, ("image", image), names)),
        **timed("single", lambda: explain(*models[0], [("image", image)], names)),
        **timed("evaluate", lambda: evaluate_split(models[0][0], info, names)),
        **timed("top_losses", lambda: explain_top_losses(*models[0], evaluation, 8, 160)),
    }


def settled(page: Page) -> None:
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=DEADLINE_S * 1000)


def count(page: Page, selector: str, text: str | None = None) -> int:
    located = page.locator(selector)
    return (located.filter(has_text=text) if text else located).count()


def until(page: Page, condition: Callable[[], bool], what: str) -> float:
    """Seconds until `condition` holds and the script run has ended."""
    t0 = time.perf_counter()
    wait_for(condition, DEADLINE_S, what, poll_s=0.02)
    settled(page)
    return time.perf_counter() - t0


def choose(page: Page, key: str, text: str) -> None:
    """Open a select box (or multiselect) by its key, type to filter its options, click the first match."""
    page.locator(f".st-key-{key} input").first.click()
    page.keyboard.type(text)
    page.get_by_role("option").filter(has_text=text).first.click()


def compared(page: Page) -> int:
    return count(page, '[data-testid="stMetric"]', "Predicts")


def overlays(page: Page, words: str = "where it looked for") -> int:
    return count(page, '[data-testid="stImageCaption"]', words)


def examples_rows(page: Page) -> int:
    return count(page, '[data-testid="stCaptionContainer"]', "Most like it among the training images")


def click_a_cell(page: Page) -> tuple[float, int]:
    """Click the confusion matrix's cells until one with images answers: (seconds from that click until its
    first 8 images and their maps show, images shown)."""
    matrix = page.locator('.st-key-inference_confusion [data-testid="stVegaLiteChart"] .marks').first
    matrix.scroll_into_view_if_needed()
    box = matrix.bounding_box()
    assert box is not None
    rows = page.locator('[data-testid="stImageCaption"]', has_text="· predicted:")
    before, maps_before = rows.count(), overlays(page)
    heading = page.locator('[data-testid="stMarkdownContainer"] p', has_text=re.compile(r"True “\w+”, predicted"))
    # The plot sits right of the class labels and under the axis title: a click beside a cell selects nothing.
    for fx, fy in ((0.5, 0.3), (0.75, 0.3), (0.5, 0.5), (0.75, 0.5)):
        t0 = time.perf_counter()
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        try:
            wait_for(lambda: heading.count(), 20, "a cell's heading", poll_s=0.02)
        except TimeoutError:
            continue
        text = heading.first.inner_text()
        found = re.search(r"(\d+) image\(s\)", text)
        shown = min(int(found.group(1)) if found else 0, 8)
        if not shown:
            continue
        per_image = 1 if "(right)" in text else 2  # right: the true class is the predicted one, one map
        rows_needed, maps_needed = before + shown, maps_before + per_image * shown
        wait_for(
            lambda: rows.count() >= rows_needed and overlays(page) >= maps_needed,  # noqa: B023 (awaited here)
            DEADLINE_S,
            "the cell's images and maps",
            poll_s=0.02,
        )
        settled(page)
        return time.perf_counter() - t0, shown
    raise TimeoutError("no cell with images answered a click")


def scroll_to(page: Page, heading: str) -> None:
    page.get_by_role("heading", name=heading).first.evaluate("e => e.scrollIntoView({block: 'start'})")
    time.sleep(0.5)


def browser_timings(url: str, made: dict[str, Any], out: Path) -> tuple[dict[str, float], dict[str, str]]:
    from playwright.sync_api import sync_playwright

    result: dict[str, float] = {}
    shots: dict[str, str] = {}
    tails = {name: Path(run["run_dir"]).name[-6:] for name, run in made.items()}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + FAKE_CAMERA_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/inference")
        page.get_by_role("heading", name="Try it on images").wait_for(timeout=DEADLINE_S * 1000)
        settled(page)
        choose(page, "inference_model", tails["pretrained"])
        settled(page)
        note("a validation image on a fresh server")
        choose(page, "inference_pick", "animals/")
        result["first_image_s"] = until(
            page, lambda: overlays(page) >= 1 and examples_rows(page) >= 1, "the first prediction and its examples"
        )
        choose(page, "inference_pick", "animals/baby_tux")
        result["next_image_s"] = until(
            page, lambda: count(page, "p", "baby_tux") >= 1 and examples_rows(page) >= 1, "the next image's examples"
        )
        note("three runs side by side")
        for name in ("fine-tuned", "scratch"):
            choose(page, "inference_compare_runs", tails[name])
            page.keyboard.press("Escape")
            if name == "fine-tuned":
                t0 = time.perf_counter()
        until(page, lambda: compared(page) == 3, "three compared runs")
        result["compare_first_s"] = time.perf_counter() - t0
        choose(page, "inference_pick", "vehicles/")
        result["compare_new_image_s"] = until(
            page, lambda: compared(page) == 3 and count(page, "p", "vehicles/") >= 1, "the new image compared"
        )
        for name, (width, height) in VIEWPORTS.items():
            page.set_viewport_size({"width": width, "height": height})
            scroll_to(page, "Compare runs on one image")
            shots[f"compare_{name}"] = str(out / f"compare_{name}.png")
            page.screenshot(path=shots[f"compare_{name}"])
        page.set_viewport_size({"width": 1280, "height": 900})
        page.get_by_text("“animals”", exact=True).first.click()
        result["compare_other_class_s"] = until(
            page,
            lambda: overlays(page, "not its pick") + count(page, '[data-testid="stAlert"]', "“animals”") >= 4,
            "the other class's maps",
        )
        shots["other_class_1280x900"] = str(out / "other_class_1280x900.png")
        scroll_to(page, "Compare runs on one image")
        page.screenshot(path=shots["other_class_1280x900"])
        page.get_by_text("the predicted class", exact=True).first.click()
        settled(page)
        note("the camera")
        page.locator(".st-key-inference_camera_on label").click()
        button = page.get_by_role("button", name="Take Photo")
        button.wait_for(timeout=DEADLINE_S * 1000)
        wait_for(lambda: button.is_enabled(), 60, "the camera to stream")
        time.sleep(1.0)  # a second of the fake camera's moving picture
        t0 = time.perf_counter()
        button.click()
        wait_for(lambda: count(page, "p", "camera snapshot") >= 1, DEADLINE_S, "the snapshot's prediction", 0.02)
        settled(page)
        result["camera_s"] = time.perf_counter() - t0
        for name, (width, height) in VIEWPORTS.items():
            page.set_viewport_size({"width": width, "height": height})
            scroll_to(page, "Try it on images")
            shots[f"camera_{name}"] = str(out / f"camera_{name}.png")
            page.screenshot(path=shots[f"camera_{name}"])
            page.get_by_text("camera snapshot", exact=True).first.evaluate("e => e.scrollIntoView({block: 'start'})")
            time.sleep(0.5)
            shots[f"camera_result_{name}"] = str(out / f"camera_result_{name}.png")
            page.screenshot(path=shots[f"camera_result_{name}"])
        page.set_viewport_size({"width": 1280, "height": 900})
        note("evaluation and the hardest images")
        page.locator(".st-key-inference_evaluate button").click()
        t0 = time.perf_counter()
        wait_for(
            lambda: count(page, '[data-testid="stMetric"]', "Validation accuracy"), DEADLINE_S, "the accuracy", 0.02
        )
        result["evaluate_s"] = time.perf_counter() - t0
        wait_for(lambda: overlays(page, "(predicted") >= 8, DEADLINE_S, "the hardest images' maps", 0.02)
        settled(page)
        result["evaluate_and_top_losses_s"] = time.perf_counter() - t0
        note("a confusion cell's images")
        result["cell_s"], result["cell_images"] = click_a_cell(page)
        for name, (width, height) in VIEWPORTS.items():
            page.set_viewport_size({"width": width, "height": height})
            page.get_by_text(re.compile(r"True “\w+”, predicted")).first.evaluate(
                "e => e.scrollIntoView({block: 'center'})"
            )
            time.sleep(0.5)
            shots[f"cell_{name}"] = str(out / f"cell_{name}.png")
            page.screenshot(path=shots[f"cell_{name}"])
        for name, (width, height) in VIEWPORTS.items():
            page.set_viewport_size({"width": width, "height": height})
            page.get_by_text("Where it struggles").first.evaluate("e => e.scrollIntoView({block: 'start'})")
            time.sleep(0.5)
            shots[f"top_losses_{name}"] = str(out / f"top_losses_{name}.png")
            page.screenshot(path=shots[f"top_losses_{name}"])
        browser.close()
    return result, shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", help="a runs folder holding the three runs (made by a previous run of this)")
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "tllab-inference-compare"))
    args = parser.parse_args()
    out = _common.browser_bench_folder(args.out)
    runs_dir = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="tllab-bench-compare-"))
    made_file = runs_dir / "bench-runs.json"
    made = json.loads(made_file.read_text()) if made_file.is_file() else train_runs(runs_dir)
    made_file.write_text(json.dumps(made))
    load_before = load_average()
    note("the core functions")
    core = core_timings([run["run_dir"] for run in made.values()])
    env = {"TLLAB_WEIGHTS": str(weights_file()), "TLLAB_RUNS_DIR": str(runs_dir)}
    with streamlit_server(env) as url:
        browser, shots = browser_timings(url, made, out)
    emit(
        {
            "runs": made,
            "core": {k: None if v is None else round(v, 2) for k, v in core.items()},
            "browser": {k: round(v, 2) for k, v in browser.items()},
            "screenshots": shots,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "cpu": cpu_info(),
        }
    )


if __name__ == "__main__":
    main()
