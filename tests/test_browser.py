"""The app in a real browser: Debian's chromium driven by Playwright against `streamlit run app.py`.

Screenshots of every page go to a folder printed by the tests (tall viewport:
Streamlit scrolls an inner container, so full-page shots would be cut).
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bench._common import wait_for
from bench.devserver import CHROMIUM, CHROMIUM_ARGS, FAKE_CAMERA_ARGS, streamlit_server
from dashboard.state import K
from tests.helpers import TINY_CONFIG, make_dataset_folder
from tlcore.neighbours import NEIGHBOURS_FILE
from tlcore.owner_settings import SETTINGS_DIR
from tlcore.runs import RunStore

if TYPE_CHECKING:  # for an annotation: the browser fixtures import Playwright
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(tempfile.gettempdir()) / "tllab-screenshots"
PAGES = [("", "Dataset"), ("model", "Model & freeze"), ("train", "Train"), ("inference", "Inference"), ("runs", "Runs")]
# Something each page shows once its script has really run (not just its title).
READY = {
    "Dataset": [
        ('[data-testid="stImage"]', 16),
        ('[data-testid="stVegaLiteChart"]', 1),
        ('[data-testid="stExpander"]', 1),
    ],
    "Model & freeze": [('[data-testid="stDataFrame"]', 1), ('[data-testid="stMetric"]', 2)],
    "Train": [(".st-key-start_training button", 1)],
    "Inference": [('[data-testid="stAlert"], [data-testid="stSelectbox"]', 1)],
    "Runs": [('[data-testid="stAlert"], [data-testid="stDataFrame"]', 1)],
}


@dataclass
class Server:
    url: str
    runs: Path

    def run_statuses(self) -> list[str]:
        return [summary.status for summary in RunStore(self.runs).list()]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("browser-runs")
    log = tmp_path_factory.mktemp("browser-log") / "streamlit.log"
    # No TLLAB_WEIGHTS: the user picks weights in the sidebar.
    env = {"TLLAB_RUNS_DIR": str(runs), "TLLAB_WEIGHTS": ""}
    with streamlit_server(env, log) as url:
        yield Server(url, runs)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # A fake camera (a moving test picture, allowed without a prompt) for the Inference page's snapshot.
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + FAKE_CAMERA_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2600})
    page = context.new_page()
    yield page
    context.close()


wait_until = wait_for  # the other browser tests import it from here


def settle(page) -> None:
    """Wait until Streamlit has finished running the script."""
    page.wait_for_selector('[data-testid="stApp"]')
    wait_until(lambda: page.locator('[data-testid="stStatusWidget"]').count() == 0, 120, "the script run to finish")


def assert_no_exception(page) -> None:
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, boxes.first.inner_text()


def shown_at_least(page: Page, selector: str, n: int) -> Callable[[], bool]:
    """A condition: `selector` on the page at least n times."""
    return lambda: page.locator(selector).count() >= n


def wait_ready(page, title: str) -> None:
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
    for selector, count in READY[title]:
        wait_until(shown_at_least(page, selector, count), 120, f"{selector} on the {title} page")
    settle(page)


def open_page(page, url: str, path: str, title: str) -> None:
    page.goto(f"{url}/{path}")
    wait_ready(page, title)


def test_every_page_renders_and_is_screenshotted(server, page):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {SCREENSHOTS}")
    for path, title in PAGES:
        open_page(page, server.url, path, title)
        assert_no_exception(page)
        page.screenshot(path=str(SCREENSHOTS / f"{path or 'dataset'}.png"))
    # The dataset grid shows 16 labelled images (open_page waited for them).
    open_page(page, server.url, "", "Dataset")
    captions = page.locator('[data-testid="stImageCaption"]').all_inner_texts()
    assert sorted(set(captions[:16])) == ["animals", "vehicles"], captions[:16]


def nav(page, title: str) -> None:
    """Switch pages the way a user does: the sidebar navigation (same session)."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    wait_ready(page, title)


def press_slider(page, container: str, *keys: str) -> None:
    thumb = page.locator(f'{container} input[type="range"]').first
    thumb.focus()
    for key in keys:
        thumb.press(key)
    settle(page)


def train_status(page) -> str:
    """The Train page's one status line ("Run: running · epoch 3 of 500 …"); "" before it shows."""
    line = page.locator(".st-key-train_status").first
    return line.inner_text() if line.count() else ""


def epochs(page) -> tuple[int, int]:
    """(epoch, of total) from the Train page's status line; (0, 0) before it says."""
    match = re.search(r"epoch (\d+) of (\d+)", train_status(page))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def until_shown(page, act, text: str, deadline_s: float, what: str) -> None:
    """Do `act` until `text` shows. A click or key press that a rerun overtook is simply made again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        act()
        try:
            page.get_by_text(text).first.wait_for(timeout=15_000)
            return
        except PlaywrightTimeout:
            continue
    pytest.fail(f"timed out after {deadline_s:.0f} s waiting for {what} ({text!r} never showed)")


def fill_number(page, key: str, value: int) -> None:
    box = page.locator(f".st-key-{key} input")
    box.fill(str(value))
    box.press("Enter")


def runs_files(runs: Path) -> list[Path]:
    """The runs folder's files, less each tab's kept settings (a small JSON of widget values, no images) and each
    run's kept training-image vectors (`NEIGHBOURS_FILE`: made from its training images, never from a snapshot)."""
    return sorted(
        p for p in runs.rglob("*") if SETTINGS_DIR not in p.relative_to(runs).parts and p.name != NEIGHBOURS_FILE
    )


def early_stopping_off(page) -> bool:
    """True once the plan no longer ends a phase early; otherwise flips the early-stopping toggle once."""
    if page.get_by_text("a phase ends after").count() == 0:
        return True
    page.locator(f".st-key-{K.early_stopping} label").click()
    settle(page)
    return False


EPOCHS = 500  # far more than the test lasts, even on a quiet machine: it ends the run with Stop


def test_live_training_survives_clicks_page_switches_and_a_reload(server, page):
    open_page(page, server.url, "", "Dataset")
    sidebar = page.locator('[data-testid="stSidebar"]')
    until_shown(
        page,
        lambda: sidebar.get_by_text("Random weights (no transfer)", exact=True).click(),
        "No transfer: random weights.",
        120,
        "random weights in the sidebar",
    )
    until_shown(
        page,
        lambda: press_slider(page, ".st-key-image_size", "Home"),  # 32 px: quick epochs on a CPU
        "at 32 × 32 px",
        120,
        "32 px images",
    )

    nav(page, "Model & freeze")
    # Everything trains, end to end, for all its epochs (no early stopping). One setting at a time, each until
    # the server's summary says it took it: on a loaded machine a rerun that overtook the click left the freeze
    # point as it was while the epochs' text showed.
    until_shown(
        page, lambda: page.get_by_role("button", name="Everything").click(), "at freeze point 0.", 120, "freeze point 0"
    )
    until_shown(page, lambda: fill_number(page, "epochs", EPOCHS), f"{EPOCHS} epoch(s) (", 120, f"{EPOCHS} epochs")
    page.get_by_text("Ready to train at freeze point 0.").first.wait_for(timeout=60_000)
    wait_until(lambda: early_stopping_off(page), 120, "early stopping off")

    nav(page, "Train")
    page.get_by_text("at 32 px · freeze point 0 · weights random weights, every layer trains").first.wait_for(
        timeout=60_000
    )
    page.locator(".st-key-start_training button").click()
    wait_until(lambda: "running" in train_status(page), 120, "the run to start")
    # The curves grow while the run is still running.
    wait_until(lambda: epochs(page)[0] >= 2, 240, "two epochs plotted")
    assert "running" in train_status(page)
    # The fragment redraws every second: give the charts a moment to be in the page.
    wait_until(lambda: page.locator('[data-testid="stVegaLiteChart"]').count() >= 2, 30, "the loss and accuracy charts")
    assert_no_exception(page)
    page.screenshot(path=str(SCREENSHOTS / "train-running.png"))

    # Other widgets and other pages while it runs: the run goes on.
    nav(page, "Dataset")
    assert server.run_statuses() == ["running"]  # at the moment of the click
    page.locator(".st-key-new_sample button").click()
    settle(page)
    assert_no_exception(page)
    nav(page, "Model & freeze")
    nav(page, "Train")
    wait_until(lambda: "running" in train_status(page), 60, "the run's status, still running, on the Train page")

    # A reload is a new session: the tab finds its run again from the URL, and the run has kept going.
    seen = wait_until(lambda: epochs(page)[0], 60, "the epochs metric")
    page.reload()
    wait_ready(page, "Train")
    wait_until(lambda: "running" in train_status(page) and epochs(page)[0] > seen, 120, "more epochs after the reload")
    assert_no_exception(page)

    nav(page, "Runs")
    page.get_by_role("heading", name="Training now").wait_for(timeout=30_000)
    assert server.run_statuses() == ["running"]
    assert_no_exception(page)
    page.screenshot(path=str(SCREENSHOTS / "runs-training-now.png"))

    nav(page, "Train")
    page.locator(".st-key-stop_training button").click()
    wait_until(lambda: "stopped" in train_status(page), 120, "the run to stop")
    # The heading comes first in the page's rerun, the metrics after it: wait for them too.
    done, total = wait_until(lambda: shown if (shown := epochs(page))[1] else None, 60, "the stopped run's epochs")
    assert seen < done < total == EPOCHS
    wait_until(lambda: page.get_by_text("Download model (.keras)").count() == 1, 60, "the model download")
    assert server.run_statuses() == ["stopped"]
    assert_no_exception(page)
    page.screenshot(path=str(SCREENSHOTS / "train-stopped.png"))


def test_a_camera_snapshot_is_predicted_and_explained_and_not_stored(server, page, tmp_path):
    """The live demo: chromium's fake camera, one snapshot, its prediction and Grad-CAM overlay."""
    from tlcore.data import scan
    from tlcore.tf.training import train_and_record

    # A model of the sample data's classes, trained in seconds: the newest run, so the page picks it.
    data = make_dataset_folder(tmp_path / "data", classes=("animals", "vehicles"), n_train=4, n_val=1)
    train_and_record(TINY_CONFIG, scan(data), RunStore(server.runs))
    stored = runs_files(server.runs)
    page.goto(f"{server.url}/inference")
    page.get_by_role("heading", name="Try it on images").wait_for(timeout=120_000)
    settle(page)
    # Behind a toggle: no camera (and no browser prompt) until it is asked for; where it works is said beside it.
    assert page.locator('[data-testid="stCameraInput"]').count() == 0
    page.get_by_text("the camera only on localhost or over HTTPS").first.wait_for(timeout=30_000)
    until_shown(
        page, lambda: page.locator(".st-key-inference_camera_on label").click(), "Take Photo", 120, "the camera"
    )
    video = page.locator('[data-testid="stCameraInput"] video')
    wait_until(lambda: video.evaluate("v => v.readyState >= 2 && v.videoWidth > 0"), 60, "the fake camera's picture")
    settle(page)

    def take_photo() -> None:  # once the photo is taken the button reads "Clear photo": a second try is a no-op
        button = page.get_by_role("button", name="Take Photo")
        if button.count():
            button.click()

    until_shown(page, take_photo, "camera snapshot", 180, "the snapshot's prediction")
    wait_until(
        lambda: page.locator('[data-testid="stImageCaption"]', has_text="where it looked for").count() >= 1,
        120,
        "the snapshot's Grad-CAM overlay",
    )
    settle(page)
    assert_no_exception(page)
    prediction = page.locator('[data-testid="stMetric"]', has_text="Prediction").first.inner_text()
    assert "animals" in prediction or "vehicles" in prediction
    assert "probability" in prediction
    assert runs_files(server.runs) == stored  # nothing written for the snapshot
    kept = next(server.runs.rglob(NEIGHBOURS_FILE), None)  # the neighbours' vectors: training images only
    if kept is not None:
        import numpy as np

        with np.load(kept) as vectors:
            assert all("/train/" in str(name) for name in vectors["files"])
    page.screenshot(path=str(SCREENSHOTS / "inference-camera.png"))


def test_clicking_a_confusion_cell_shows_its_images_with_both_maps(server, page, tmp_path):
    """The confusion matrix opens its cells: a click on a cell (an Altair selection) lists that cell's images,
    each with Grad-CAM for the true and the predicted class."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from tlcore.data import scan
    from tlcore.tf.training import train_and_record

    data = make_dataset_folder(tmp_path / "data", classes=("animals", "vehicles"), n_train=4, n_val=1)
    train_and_record(TINY_CONFIG, scan(data), RunStore(server.runs))  # the newest run: the page picks it
    page.goto(f"{server.url}/inference")
    page.get_by_role("heading", name="Evaluate on the validation split").wait_for(timeout=120_000)
    settle(page)
    until_shown(
        page,
        lambda: page.get_by_role("button", name="Evaluate on the validation split").click(),
        "Click a cell to see its images",
        180,
        "the evaluation",
    )
    settle(page)
    matrix = page.locator('.st-key-inference_confusion [data-testid="stVegaLiteChart"] .marks').first
    matrix.wait_for(timeout=60_000)
    box = matrix.bounding_box()
    assert box is not None
    images = page.locator('[data-testid="stImageCaption"]', has_text="· predicted:")
    maps = page.locator('[data-testid="stImageCaption"]', has_text="where it looked for")
    images_before, maps_before = images.count(), maps.count()  # the hardest images' rows, further down
    # The plot sits right of the class labels and under the axis title: try points over the chart until a cell
    # with images answers (a click beside the plot selects nothing; this tiny model leaves some cells empty).
    heading, count, started = "", 0, time.monotonic()
    for fx, fy in ((0.5, 0.3), (0.5, 0.5), (0.75, 0.3), (0.75, 0.5), (0.6, 0.4), (0.6, 0.6)):
        started = time.monotonic()
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        try:
            page.get_by_text(re.compile(r"True “\w+”, predicted “\w+”")).first.wait_for(timeout=15_000)
        except PlaywrightTimeout:  # not on a cell: try the next point
            continue
        settle(page)
        heading = (  # the whole line: the bold words, then the count
            page.locator(
                '[data-testid="stMarkdownContainer"] p', has_text=re.compile(r"True “\w+”, predicted “\w+”")
            ).first.inner_text()
        )
        found = re.search(r"(\d+) image\(s\)", heading)
        count = int(found.group(1)) if found else 0
        if count:
            break
    assert count > 0, f"no cell with images answered a click ({heading!r})"
    true_class, predicted = re.findall(r"“(\w+)”", heading)[:2]
    # Each of the cell's images with a map per class (one when right: the true class is the predicted one).
    per_image = 1 if true_class == predicted else 2
    # The cell's own captions: while the script reruns, the page can briefly hold the old rows beside the new.
    cell = page.locator('[data-testid="stImageCaption"]', has_text=f"true: {true_class} · predicted: {predicted}")
    shown = min(count, 8)
    wait_until(lambda: cell.count() >= shown and images.count() >= images_before + shown, 120, "the cell's images")
    wait_until(lambda: maps.count() >= maps_before + per_image * shown, 120, "the cell's Grad-CAM maps")
    seconds = time.monotonic() - started
    settle(page)  # then the page holds only what the last run drew
    assert cell.count() >= shown and images.count() >= images_before + shown
    assert maps.count() >= maps_before + per_image * shown
    assert_no_exception(page)
    print(f"the first {shown} images of the cell with their maps in {seconds:.1f} s")
    page.screenshot(path=str(SCREENSHOTS / "inference-confusion-cell.png"))


def test_see_inside_shows_feature_maps_the_probe_and_the_map(server, page):
    """Last in this file: its background pass through VGG16 must not share the machine with the run above."""
    # At 32 px, as a learner on a CPU would set it: the page's pass over every sample image through VGG16 is
    # then a sixteenth of the default 128 px one. The sidebar's page link keeps the session (and its size).
    open_page(page, server.url, "", "Dataset")
    until_shown(page, lambda: press_slider(page, ".st-key-image_size", "Home"), "at 32 × 32 px", 120, "32 px images")
    page.locator('[data-testid="stSidebarNav"] a', has_text="See inside").first.click()
    page.get_by_role("heading", name="See inside", exact=True).first.wait_for(timeout=120_000)
    # No weights file on this server: the random side shows alone, and the page says why.
    page.get_by_text("No pretrained side").first.wait_for(timeout=60_000)
    page.get_by_role("heading", name="What the frozen layers see").wait_for(timeout=120_000)
    # The input image and the random side's mosaic of feature maps.
    wait_until(lambda: page.locator('[data-testid="stImage"]').count() >= 2, 120, "the feature maps")
    # The probe chart and the random side's map come when the background pass over every image ends.
    page.get_by_role("heading", name="The same features as a map").wait_for(timeout=300_000)
    wait_until(lambda: page.locator('[data-testid="stVegaLiteChart"]').count() >= 2, 60, "the probe chart and the map")
    settle(page)
    assert_no_exception(page)
    page.screenshot(path=str(SCREENSHOTS / "inside.png"))
