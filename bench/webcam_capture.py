"""Webcam snapshots a minute on the Dataset page's photo maker, in chromium with its fake camera.

Starts the class server (`streamlit run classroom.py`, TLLAB_CLASS_KEY) on 127.0.0.1 over HTTPS with a
self-signed certificate (dashboard/certificate.py) and a temporary runs folder (removed at the end), and
drives Debian's chromium with Playwright, its fake camera on (a moving test picture, the permission
granted). For each viewport (a 1280 x 800 desktop, a 390 x 844 phone with touch) a new student joins,
chooses "My photos (made here)" in the sidebar, names two classes and turns the camera on, then takes
snapshots as fast as a person clicking can: wait until the app is idle and the camera shows a picture,
press "Take Photo", wait for the class's count in its tab to go up, and again (a click whose count has
not gone up within 10 s is made again, and counted). The first half of the time goes to the first class,
the second half to the second: once both classes have photos, each rerun also draws the rest of the
Dataset page (the sample grid, the chart).

Measured per viewport: snapshots a minute (from the first click to the last count going up, or to where
the run stopped short), seconds from each click to its count going up and from there to the next camera
ready (median, p95, max), clicks made again, and whether the store holds every snapshot in the class it
was taken for (PhotoStore's counts, the tabs' counts and the bench's own). Goal: 20 a minute or more.
Prints the CPU and one JSON object; the server's log, a screenshot and a row per click (JSON) for each
viewport go to --out. Every wait is bounded: --limit-s caps each viewport's snapshots.

Run: python -m bench.webcam_capture [--duration-s 60] [--count N] [--viewports desktop,phone]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._common import cpu_info, emit, load_average, note, rounded
from bench.classroom_load import percentile

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

GOAL_PER_MIN = 20.0
CLASSES = ("cups", "keys")
CLASS_KEY = "the-benchmark-class-key"
LANDED_TIMEOUT_S = 10.0  # after this long a click counts as lost and is made again
READY_TIMEOUT_S = 60.0  # for the camera to show a picture and its button
SETUP_TIMEOUT_S = 120.0  # joining, the sidebar, the classes
VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}
# Whether a <video> shows a picture a person would take: a frame, and not a black one (a new camera's
# first frame can be black; the store would keep it as a photo).
_SHOWS_A_PICTURE = """v => {
    if (v.readyState < 2 || !v.videoWidth) return false;
    const canvas = document.createElement("canvas");
    canvas.width = 16;
    canvas.height = 9;
    const context = canvas.getContext("2d");
    context.drawImage(v, 0, 0, 16, 9);
    return context.getImageData(0, 0, 16, 9).data.some((value, i) => i % 4 !== 3 && value > 16);
}"""
_TAB = re.compile(r"^(?P<name>.+) \((?P<count>\d+)\)$")


# --- pure helpers (tests/test_bench_webcam.py) ---------------------------------------------


@dataclass
class Snapshots:
    """One viewport's snapshots: how long each took, and the counts at the end."""

    latencies_s: list[float] = field(default_factory=list)  # click (the last one, if made again) to count up
    ready_s: list[float] = field(default_factory=list)  # count up (or camera opened) to camera ready, every click
    taken: dict[str, int] = field(default_factory=dict)  # snapshots whose count went up, per class
    retries: int = 0  # clicks made again: their count had not gone up within LANDED_TIMEOUT_S
    first_click: float | None = None
    ended: float | None = None  # the last count going up, or when the snapshots stopped short
    cut_short: str = ""  # why the snapshots stopped before their time or count, if they did
    trace: list[dict[str, Any]] = field(default_factory=list)  # one row per click, for a look afterwards
    shown: dict[str, int] = field(default_factory=dict)  # the counts in the tabs at the end
    stored: dict[str, int] = field(default_factory=dict)  # PhotoStore's counts at the end


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=60.0, help="snapshot time per viewport (seconds)")
    parser.add_argument("--count", type=int, default=0, help="stop a viewport after this many snapshots (0: none)")
    parser.add_argument("--viewports", default="desktop,phone", help=f"comma-separated, of {', '.join(VIEWPORTS)}")
    parser.add_argument(
        "--limit-s", type=float, default=0.0, help="most snapshot seconds per viewport (0: duration + 60, or 300)"
    )
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "tllab-bench-webcam")
    args = parser.parse_args(argv)
    args.viewports = [v.strip() for v in args.viewports.split(",") if v.strip()]
    unknown = [v for v in args.viewports if v not in VIEWPORTS]
    if unknown or not args.viewports:
        parser.error(f"unknown viewport(s) {', '.join(unknown)}; choose from {', '.join(VIEWPORTS)}")
    if args.duration_s <= 0 and args.count <= 0:
        parser.error("give a --duration-s or a --count above 0")
    if args.limit_s <= 0:
        args.limit_s = args.duration_s + 60 if args.duration_s > 0 else 300.0
    return args


def tab_counts(labels: Sequence[str]) -> dict[str, int]:
    """{class: count} from the maker's tab labels ("cups (3)"); other labels are left out."""
    counts = {}
    for label in labels:
        if match := _TAB.match(label.strip()):
            counts[match["name"]] = int(match["count"])
    return counts


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "median": rounded(statistics.median(values), 3) if values else None,
        "p95": rounded(percentile(values, 95), 3),
        "max": rounded(max(values), 3) if values else None,
    }


def summary(shots: Snapshots) -> dict[str, Any]:
    """One viewport's figures: snapshots a minute (from the first click to the last count going up, or to
    where they stopped short), click-to-count and count-to-ready seconds, and whether the store holds each
    snapshot in the class it was taken for."""
    n = len(shots.latencies_s)
    span = shots.ended - shots.first_click if shots.first_click is not None and shots.ended is not None else 0.0
    per_min = 60.0 * n / span if span > 0 else None
    all_stored = shots.stored == shots.shown == {name: shots.taken.get(name, 0) for name in shots.stored}
    return {
        "snapshots": n,
        "seconds": rounded(span, 2),
        "per_min": rounded(per_min, 1),
        "click_to_count_s": _spread(shots.latencies_s),
        "count_to_camera_ready_s": _spread(shots.ready_s),
        "clicks_made_again": shots.retries,
        "cut_short": shots.cut_short,
        "taken": shots.taken,
        "shown": shots.shown,
        "stored": shots.stored,
        "all_stored": all_stored,
        "goal_met": per_min is not None and per_min >= GOAL_PER_MIN and all_stored and not shots.cut_short,
    }


# --- the browser ----------------------------------------------------------------------------


def _shown_counts(page: Page) -> dict[str, int]:
    return tab_counts(page.get_by_role("tab").all_inner_texts())


def _count_above(page: Page, class_name: str, count: int) -> bool:
    return _shown_counts(page).get(class_name, 0) > count


def _wait(condition: Callable[[], Any], deadline_s: float, what: str, poll_s: float = 0.02) -> Any:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(poll_s)
    raise TimeoutError(f"timed out after {deadline_s:.0f} s waiting for {what}")


def _join_and_make_classes(page: Page, url: str, name: str, phone: bool) -> None:
    page.goto(url)
    page.get_by_role("heading", name="Join the class").wait_for(timeout=SETUP_TIMEOUT_S * 1000)
    box = page.get_by_label("Your name").first
    box.fill(name)
    box.press("Enter")
    page.get_by_role("heading", name="Dataset").first.wait_for(timeout=SETUP_TIMEOUT_S * 1000)
    if phone:  # the sidebar starts closed on a phone
        page.locator(
            '[data-testid="stSidebarCollapsedControl"] button, [data-testid="stExpandSidebarButton"]'
        ).first.click()
    page.get_by_text("My photos (made here)").click()
    page.get_by_role("heading", name="Make your dataset").wait_for(timeout=SETUP_TIMEOUT_S * 1000)
    if phone:  # it covers a phone's screen: closed as a student would
        page.locator('[data-testid="stSidebarCollapseButton"] button').first.click()
    for class_name in CLASSES:
        box = page.get_by_label("New class")
        box.fill(class_name)
        box.press("Enter")
        page.get_by_role("tab", name=f"{class_name} (0)", exact=True).wait_for(timeout=SETUP_TIMEOUT_S * 1000)


def _keep_camera_running(page: Page) -> dict[str, Any]:
    """Hold one stream of the fake camera open in the page for the whole run; its settings.

    Chromium's fake camera draws each frame from the time since its stream started, and a fresh
    st.camera_input starts a fresh stream: two snapshots taken as quickly after their camera appeared are
    the same picture, which the store keeps once (a file per picture). A real camera never gives the same
    pixels twice. With a stream held open, every camera of the page shares one running device, and each
    snapshot is a new picture, as with a real camera (at 1280 x 720, a common webcam's size).
    """
    return page.evaluate(
        """async () => {
            const stream = await navigator.mediaDevices.getUserMedia(
                {video: {width: {ideal: 1280}, height: {ideal: 720}}});
            window.__benchCamera = stream;
            const s = stream.getVideoTracks()[0].getSettings();
            return {width: s.width, height: s.height, frame_rate: s.frameRate};
        }"""
    )


def _open_camera(page: Page, class_name: str) -> None:
    """The class's tab, its camera switched on."""
    page.get_by_role("tab", name=re.compile(rf"^{re.escape(class_name)} \(\d+\)$")).click()
    page.locator(f".st-key-photo_camera_on_{class_name} label").click()


def _ready_button(page: Page) -> Locator | None:
    """The visible camera's "Take Photo" button once its video shows a picture and no rerun runs, else None."""
    if not page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').count():
        return None  # a rerun is still drawing the page: its camera may be the one being replaced
    camera = page.locator('[data-testid="stCameraInput"]:visible')
    if camera.count() != 1:
        return None
    clear = camera.get_by_role("button", name="Clear photo")
    if clear.count():  # a camera that keeps its photo: cleared for the next, as a person would
        clear.click()
        return None
    video = camera.locator("video")
    if video.count() != 1 or not video.evaluate(_SHOWS_A_PICTURE):
        return None
    button = camera.get_by_role("button", name="Take Photo")
    return button if button.count() == 1 and button.is_enabled() else None


def take_snapshots(page: Page, duration_s: float, count: int, limit_s: float) -> Snapshots:
    """Snapshot after snapshot, the first class for the first half, the second for the rest; never past limit_s."""
    shots = Snapshots()
    start = time.monotonic()
    stop_at = start + limit_s

    def left(timeout_s: float) -> float:
        return max(0.0, min(timeout_s, stop_at - time.monotonic()))

    def done(taken: int) -> bool:
        return (count > 0 and taken >= count) or (duration_s > 0 and time.monotonic() - start >= duration_s)

    def second_half(taken: int) -> bool:
        by_time = duration_s > 0 and time.monotonic() - start >= duration_s / 2
        return by_time or (count > 0 and taken >= count / 2)

    class_name = CLASSES[0]
    _open_camera(page, class_name)
    try:
        while not done(len(shots.latencies_s)):
            if class_name == CLASSES[0] and second_half(len(shots.latencies_s)):
                class_name = CLASSES[1]
                note(f"{len(shots.latencies_s)} snapshots; now the class {class_name}")
                _open_camera(page, class_name)
            before = _shown_counts(page).get(class_name, 0)
            while True:  # one snapshot: clicked again if its count did not go up
                waiting = time.monotonic()
                button = _wait(lambda: _ready_button(page), left(READY_TIMEOUT_S), "the camera to be ready")
                clicked = time.monotonic()
                shots.ready_s.append(clicked - waiting)
                button.click()
                if shots.first_click is None:
                    shots.first_click = clicked
                row = {"t": round(clicked - start, 3), "class": class_name, "ready_s": round(clicked - waiting, 3)}
                shots.trace.append(row)
                with contextlib.suppress(TimeoutError):
                    _wait(
                        functools.partial(_count_above, page, class_name, before), left(LANDED_TIMEOUT_S), "the count"
                    )
                    break
                if not left(1.0):
                    raise TimeoutError(f"the snapshot phase passed its {limit_s:.0f} s")
                shots.retries += 1
                row["lost"] = True  # what the page says, if anything (a notice of the maker's, say)
                row["alerts"] = [text[:200] for text in page.locator('[data-testid="stAlert"]').all_inner_texts()]
                note(f"snapshot {len(shots.latencies_s) + 1} of {class_name}: no count after {LANDED_TIMEOUT_S:.0f} s")
            shots.ended = time.monotonic()
            row["click_to_count_s"] = round(shots.ended - clicked, 3)
            shots.latencies_s.append(shots.ended - clicked)
            shots.taken[class_name] = shots.taken.get(class_name, 0) + 1
    except TimeoutError as err:  # what was measured so far still counts, marked as cut short
        note(f"stopped early: {err}")
        shots.cut_short = str(err)
        shots.ended = time.monotonic()
    return shots


def run_viewport(browser: Browser, url: str, runs_dir: Path, viewport: str, args: argparse.Namespace) -> dict[str, Any]:
    from tlcore.classroom import Roster
    from tlcore.photos import PhotoStore

    context = browser.new_context(ignore_https_errors=True, **VIEWPORTS[viewport])  # the bench's own certificate
    context.grant_permissions(["camera"])
    try:
        page = context.new_page()
        name = f"Bench {viewport}"
        _join_and_make_classes(page, url, name, phone=viewport == "phone")
        camera = _keep_camera_running(page)
        note(f"{viewport}: joined, classes named; snapshots for {args.duration_s:.0f} s / {args.count or '-'}")
        shots = take_snapshots(page, args.duration_s, args.count, args.limit_s)
        time.sleep(1.0)  # the last rerun's tabs settle
        shots.shown = _shown_counts(page)
        page.screenshot(path=str(args.out / f"webcam-{viewport}.png"), full_page=True)
    finally:
        context.close()
    (person,) = [p for p in Roster(runs_dir).people() if p.name == name]
    shots.stored = PhotoStore(person.owner, runs_dir).counts()
    result = {**summary(shots), "camera": camera}
    (args.out / f"webcam-{viewport}.json").write_text(json.dumps(shots.trace, indent=1))
    note(
        f"{viewport}: {result['snapshots']} snapshots in {result['seconds']} s = {result['per_min']}/min; "
        f"click to count median {result['click_to_count_s']['median']} s, p95 {result['click_to_count_s']['p95']} s"
    )
    return result


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # A `timeout` or Ctrl-C still stops the server and the browser: SIGTERM unwinds like an exception.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from playwright.sync_api import sync_playwright

    from bench.devserver import CHROMIUM, CHROMIUM_ARGS, FAKE_CAMERA_ARGS, streamlit_server
    from dashboard.certificate import write_certificate
    from tlcore.classroom import CLASS_KEY_ENV
    from tlcore.environment import RUNS_ENV

    args.out.mkdir(parents=True, exist_ok=True)
    runs_dir = Path(tempfile.mkdtemp(prefix="tllab-bench-webcam-"))
    tls = write_certificate(runs_dir / ".tls", [])
    cpu = cpu_info()
    note(f"CPU: {cpu['model_name']} ({cpu['cpu_count']} cores); runs folder {runs_dir}")
    load_before = load_average()
    env = {CLASS_KEY_ENV: CLASS_KEY, RUNS_ENV: str(runs_dir), "TLLAB_WEIGHTS": ""}  # the Dataset page needs no TF
    results: dict[str, Any] = {}
    # streamlit_server binds 127.0.0.1 only and stops the server on the way out, error or not.
    with (
        streamlit_server(env, log_path=args.out / "server.log", script="classroom.py", tls=tls) as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + FAKE_CAMERA_ARGS)
        try:
            for viewport in args.viewports:
                results[viewport] = run_viewport(browser, url, runs_dir, viewport, args)
        finally:
            browser.close()
    shutil.rmtree(runs_dir, ignore_errors=True)
    emit(
        {
            "bench": "webcam_capture",
            "date": time.strftime("%Y-%m-%d"),
            "goal_per_min": GOAL_PER_MIN,
            "duration_s": args.duration_s,
            "count": args.count,
            "viewports": results,
            "goal_met": all(r["goal_met"] for r in results.values()),
            "cpu": cpu,
            "load_average_before": load_before,
            "load_average_after": load_average(),
        }
    )


if __name__ == "__main__":
    main()
