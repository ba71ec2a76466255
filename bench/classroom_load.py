"""A classroom's load on one server: 30 websocket sessions browse every page while 5 of them train.

Starts `streamlit run app.py` on a free loopback port with its own temporary
runs folder (TLLAB_RUNS_DIR, the feature store inside it) and the offline
ImageNet file, and drives it with real clients of its websocket
(ws://127.0.0.1:PORT/_stcore/stream), speaking Streamlit's own protocol: each
client sends BackMsg `rerun_script` messages (a page is asked for by its
`page_script_hash` from the server's `navigation` message, a widget is set or
a button pressed through the `widget_states` it sends, with widget ids read
from the deltas the server sent) and reads the ForwardMsgs until
`script_finished`. A session on the Train page while its run trains also sends
the live view's fragment ticks, as the browser does on `auto_rerun`. Images,
fonts and scripts a browser would also fetch over HTTP are not fetched.

Timeline: a warm-up session opens every page once (the server's first renders:
imports, VGG16 for See inside), then `--sessions` sessions arrive over
`--arrive-s` seconds and browse the pages in turn (each its own order, a random think time
of `--think` seconds on every page). After `--idle-s` seconds `--trainers` of
them go to the Model page, set the image size, freeze point and epochs of a
small run, open the Train page and press Start (the jobs queue: one trains at
a time, TLLAB_MAX_JOBS), watch it for `--watch-s` seconds and browse on. When
every run has ended the sessions browse `--after-s` seconds more, then leave.

Measured: every render (send → script_finished) per page, split by when it
was asked for: before the jobs ("idle"), while jobs queue or run ("jobs"),
after they ended ("after"); median and 95th percentile. The server's resident
memory (its process and its children, from /proc) every second. At the end
every run record is read back with RunStore: completed, one history row per
epoch, model saved. Prints the CPU and one JSON object.

Run: python -m bench.classroom_load [--sessions 30] [--trainers 5] [--ray local]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import _common

_common.setup()
from bench._common import cpu_info, emit, load_average, note, rounded, weights_file  # noqa: E402
from bench.devserver import streamlit_process  # noqa: E402
from dashboard.browser_cookie import new_token  # noqa: E402
from tlcore.classroom import CLASS_KEY_ENV, COOKIE_NAME  # noqa: E402
from tlcore.environment import RUNS_ENV  # noqa: E402
from tlcore.feature_store import CACHE_DIR_ENV  # noqa: E402
from tlcore.runs import RunStore  # noqa: E402

IDLE, JOBS, AFTER = "idle", "jobs", "after"
PHASES = (IDLE, JOBS, AFTER)
NEW_SESSION = "(new session)"  # a session's first script run: the default page, with its session state made
NO_REPLY = "no reply"  # a fragment tick the server dropped
CLOSED = -1  # what a pending script run reads when the websocket closes
TICK = "fragment tick"  # a fragment's timed rerun (the Train page's live view, background tasks)
GOAL_PAGES = ("Dataset", "Runs")
GOAL_P95_S = 5.0
RAY_ADDRESS_ENV, RAY_CPUS_ENV = "TLLAB_RAY_ADDRESS", "TLLAB_RAY_CPUS"
# Widget keys (dashboard.state.K) the trainers set: a widget's id ends with "-" + its key.
EPOCHS_KEY, FREEZE_KEY, IMAGE_SIZE_KEY, START_KEY = "epochs", "freeze_at", "image_size", "start_training"
JOIN_NAME_KEY, JOIN_SUBMIT_KEY = "join_name", "join_submit"
TEACHER_AT = 1  # in class mode, the session that unlocks the teacher's rights
CLASS_KEY = "the-benchmark-class-key"  # the teacher's key of the benchmark's class (--own-data)
PAGE_MB = 1 << 20


# --- pure helpers (tests/test_bench_classroom.py) ------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between the nearest ranks; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """n, median, 95th percentile and maximum of some durations (seconds), rounded for printing."""
    if not values:
        return {"n": 0, "median": None, "p95": None, "max": None}
    return {
        "n": len(values),
        "median": rounded(statistics.median(values), 3),
        "p95": rounded(percentile(values, 95), 3),
        "max": rounded(max(values), 3),
    }


def phase_of(sent_at: float, windows: Sequence[tuple[float, float | None]]) -> str:
    """Which part of the timeline a render asked at `sent_at` belongs to, given the (from, until) windows in
    which jobs queued or ran (an open window, until None, runs on): before the first, in one, or after."""
    if not windows or sent_at < windows[0][0]:
        return IDLE
    if any(start <= sent_at and (end is None or sent_at <= end) for start, end in windows):
        return JOBS
    return AFTER


def render_table(renders: Iterable[tuple[str, str, float]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{page: {phase: summary}} from (page, phase, seconds) triples; every phase present for every page."""
    grouped: dict[str, dict[str, list[float]]] = {}
    for page, phase, seconds in renders:
        grouped.setdefault(page, {p: [] for p in PHASES})[phase].append(seconds)
    return {
        page: {phase: summarize(values) for phase, values in by_phase.items()} for page, by_phase in grouped.items()
    }


def table_lines(table: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The render table side by side for a reader: one line per page, median / p95 (n) per phase."""

    def cell(summary: dict[str, Any]) -> str:
        return "-" if not summary["n"] else f"{summary['median']:.2f} / {summary['p95']:.2f} s ({summary['n']})"

    width = max((len(page) for page in table), default=4)
    lines = [f"{'page':<{width}}  " + "  ".join(f"{phase + ' median / p95 (n)':<26}" for phase in PHASES)]
    for page, by_phase in table.items():
        lines.append(f"{page:<{width}}  " + "  ".join(f"{cell(by_phase[phase]):<26}" for phase in PHASES))
    return lines


def growth(samples: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) samples in MB per minute; None for fewer than two."""
    if len(samples) < 2:
        return None
    ts, ys = [t for t, _ in samples], [y for _, y in samples]
    t_mean, y_mean = statistics.fmean(ts), statistics.fmean(ys)
    spread = sum((t - t_mean) ** 2 for t in ts)
    if spread == 0:
        return None
    return 60 * sum((t - t_mean) * (y - y_mean) for t, y in samples) / spread


# --- the server's memory, from /proc ---------------------------------------------------------


def process_tree(root_pid: int) -> list[int]:
    """root_pid and all its descendants (a Ray backend's workers run as children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended since
        children.setdefault(ppid, []).append(int(entry.name))
    found, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def rss_mb(pid: int) -> float:
    """VmRSS of one process in MB (0 when it has ended)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of these processes, from /proc."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# --- one websocket session --------------------------------------------------------------------


@dataclass
class Render:
    page: str
    sent_at: float  # time.monotonic()
    seconds: float
    status: str  # "ok", "timeout", "closed"


@dataclass
class Clock:
    """The shared timeline: per round of jobs, when they were started and when the last one ended."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    windows: list[tuple[float, float | None]] = field(default_factory=list)


class Session:
    """One browser tab, as a websocket client of the app speaking Streamlit's protobuf protocol."""

    def __init__(
        self,
        name: str,
        url: str,
        rng: random.Random,
        render_timeout_s: float,
        tick_timeout_s: float,
        cookie: str | None = None,
    ) -> None:
        self.name, self.rng = name, rng
        self.cookie = cookie  # the class server's browser token this tab sends (class mode)
        self.owner = ""  # the owner id it joined as (class mode)
        self.render_timeout_s, self.tick_timeout_s = render_timeout_s, tick_timeout_s
        self.ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.pages: dict[str, str] = {}  # page title -> page_script_hash, from the navigation message
        self.page_hash = ""  # the page the server ran last
        self.query_string = ""  # the URL's query, as the browser keeps it (the app puts owner= and job= there)
        self.widget_ids: set[str] = set()
        # Widgets on every page (the sidebar's) whose value this tab set: sent with every rerun, as a browser
        # sends the state of every widget it shows.
        self.sticky: dict[str, Any] = {}
        self.auto_rerun: tuple[float, str] | None = None  # (interval s, fragment id) of the live view
        self.texts: list[str] = []  # markdown, alerts and headings of the current script run
        self.exceptions: list[str] = []
        self.renders: list[Render] = []
        self._finished: asyncio.Future[int] | None = None
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.typing import Subprotocol

        # No pings: a server busy with 30 scripts may answer late, which must show as render time, not a drop.
        headers = {"Cookie": f"{COOKIE_NAME}={self.cookie}"} if self.cookie else None
        self._ws = await connect(
            self.ws_url,
            subprotocols=[Subprotocol("streamlit")],
            max_size=None,
            ping_interval=None,
            open_timeout=60,
            additional_headers=headers,
        )
        self._reader = asyncio.create_task(self._read(), name=f"{self.name}-reader")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        try:
            async for data in self._ws:
                msg = ForwardMsg()
                msg.ParseFromString(data)
                self._handle(msg)
        finally:
            if self._finished is not None and not self._finished.done():
                self._finished.set_result(CLOSED)

    def _handle(self, msg: Any) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        kind = msg.WhichOneof("type")
        if kind == "new_session":  # a full script run starts (also one a fragment's st.rerun() asked for)
            self.auto_rerun = None  # the browser drops its fragment timers; the run re-sends those that remain
        elif kind == "navigation":
            self.pages = {page.page_name: page.page_script_hash for page in msg.navigation.app_pages}
            self.page_hash = msg.navigation.page_script_hash
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self._element(msg.delta.new_element)
        elif kind == "auto_rerun":
            self.auto_rerun = (msg.auto_rerun.interval, msg.auto_rerun.fragment_id)
        elif kind == "stop_auto_rerun":
            if self.auto_rerun and self.auto_rerun[1] in msg.stop_auto_rerun.fragment_ids:
                self.auto_rerun = None
        elif kind == "page_not_found":
            self.exceptions.append(f"page not found: {msg.page_not_found.page_name}")
        elif kind == "script_finished":
            # A run cut short by the rerun that follows it (a fragment's st.rerun()) is not the end.
            early = msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN
            if not early and self._finished is not None and not self._finished.done():
                self._finished.set_result(msg.script_finished)

    def _element(self, element: Any) -> None:
        kind = element.WhichOneof("type")
        if kind is None:
            return
        body = getattr(element, kind)
        if kind == "exception":
            self.exceptions.append(f"{body.type}: {body.message}")
        elif kind in ("markdown", "alert", "heading"):
            self.texts.append(body.body)
        elif getattr(body, "id", ""):
            self.widget_ids.add(body.id)

    def widget_id(self, key: str) -> str:
        """The id of the widget with this key (Streamlit ends a keyed widget's id with '-' + key)."""
        matches = [wid for wid in self.widget_ids if wid.endswith(f"-{key}")]
        if len(matches) != 1:
            raise LookupError(f"{self.name}: no single widget with key {key!r} among {sorted(self.widget_ids)}")
        return matches[0]

    @property
    def page_title(self) -> str:
        return next((title for title, page_hash in self.pages.items() if page_hash == self.page_hash), "?")

    async def rerun(
        self, label: str, page: str = "", widgets: Sequence[Any] = (), fragment_id: str = "", timeout_s: float = 0
    ) -> Render:
        """Ask for a script run (page: a title; "" stays on the current page) and time it to script_finished."""
        from streamlit.proto.BackMsg_pb2 import BackMsg

        back = BackMsg()
        state = back.rerun_script
        state.query_string = self.query_string
        state.page_script_hash = self.pages[page] if page else self.page_hash
        given = {w.id for w in widgets}
        state.widget_states.widgets.extend([w for wid, w in self.sticky.items() if wid not in given] + list(widgets))
        if fragment_id:
            state.fragment_id, state.is_auto_rerun = fragment_id, True
        else:
            self.auto_rerun = None  # a new page run: the browser drops the old page's timers
            self.texts = []
        loop = asyncio.get_running_loop()
        self._finished = loop.create_future()
        sent = time.monotonic()
        status = "ok"
        try:
            await self._ws.send(back.SerializeToString())
            if await asyncio.wait_for(self._finished, timeout_s or self.render_timeout_s) == CLOSED:
                status = "closed"
        except TimeoutError:
            # A tick for a fragment the server has just removed gets no answer at all (AppSession.request_rerun):
            # the browser never waits for one, so it is counted apart from renders that did not come.
            status = NO_REPLY if fragment_id else "timeout"
        except Exception:  # the websocket closed: recorded, the session ends
            status = "closed"
        render = Render(label, sent, time.monotonic() - sent, status)
        self.renders.append(render)
        if status == "closed":
            raise ConnectionError(f"{self.name}: the websocket closed")
        return render

    async def visit(self, page: str) -> Render:
        return await self.rerun(page, page=page)

    async def dwell(self, seconds: float, stop: asyncio.Event) -> None:
        """Stay on the page `seconds`, sending the live view's ticks as the browser does while it runs."""
        end = time.monotonic() + seconds
        while not stop.is_set() and (left := end - time.monotonic()) > 0:
            if self.auto_rerun is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), left)
                return
            interval, fragment_id = self.auto_rerun
            await asyncio.sleep(min(interval, left))
            if time.monotonic() < end and self.auto_rerun is not None:
                await self.rerun(f"{self.page_title}: {TICK}", fragment_id=fragment_id, timeout_s=self.tick_timeout_s)


# --- what the sessions do ----------------------------------------------------------------------


@dataclass
class Plan:
    """The load: sessions, trainers and the small run each trainer starts."""

    sessions: int
    trainers: int
    think_s: tuple[float, float]
    watch_s: float
    image_size: int
    freeze_at: int
    epochs: int
    warmup_epochs: int
    own_data: int = 0  # class mode: each trainer makes its own dataset of this many photos, trains at the defaults
    runs_dir: Path | None = None


async def join(session: Session, name: str) -> None:
    """Class mode: the join form, a name, Enter; the session then sees the lab."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    await session.rerun(NEW_SESSION)
    widgets = [
        WidgetState(id=session.widget_id(JOIN_NAME_KEY), string_value=name),
        WidgetState(id=session.widget_id(JOIN_SUBMIT_KEY), trigger_value=True),
    ]
    await session.rerun("Join the class", widgets=widgets)
    if "Dataset" not in session.pages:
        raise RuntimeError(f"{session.name}: did not join: {session.texts[-3:]}")


Photo = tuple[str, str, bytes]  # (class, file name, the JPEG a camera or phone sends)


def camera_photos(count: int, seed: int) -> list[Photo]:
    """A student's own photos as their camera makes them: two classes of `count` photos in all, textures of
    this student's own (no two students' images, so no two share features). Made before the class
    arrives: in a lesson the phone encodes them, not the server (this process shares its two cores)."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos: list[Photo] = []
    for label, name in enumerate(("mine", "theirs")):
        base = rng.integers(0, 255, 3)
        for i in range(count // 2):
            noise = rng.integers(0, 255, (96, 128, 3))
            tint = (base + 90 * label) % 255
            pixels = (noise * 0.5 + tint * 0.5).astype(np.uint8)
            out = io.BytesIO()
            Image.fromarray(pixels).save(out, format="JPEG", quality=90)
            photos.append((name, f"{name}{i}.jpg", out.getvalue()))
    return photos


def store_photos(runs_dir: Path, owner: str, photos: Sequence[Photo]) -> None:
    """The server's part, as the maker does it (PhotoStore.add: decoded, turned upright, re-encoded)."""
    from tlcore.photos import PhotoStore

    store = PhotoStore(owner, runs_dir)
    for name in dict.fromkeys(label for label, _, _ in photos):
        store.add_class(name)
    for label, file_name, data in photos:
        store.add(label, data, file_name)


async def use_own_photos(session: Session, plan: Plan, photos: Sequence[Photo]) -> None:
    """Store the student's photos (in a worker thread: Pillow's work), then pick them in the sidebar."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    from dashboard.state import SOURCE_PHOTOS, K
    from tlcore.classroom import Roster

    assert plan.runs_dir is not None
    student = Roster(plan.runs_dir).who(session.cookie)
    if student is None:
        raise RuntimeError(f"{session.name}: joined, yet the roster does not know its cookie")
    session.owner = student.owner
    await asyncio.to_thread(store_photos, plan.runs_dir, session.owner, photos)
    await session.visit("Dataset")
    source = WidgetState(id=session.widget_id(K.source), string_value=SOURCE_PHOTOS)  # a radio's state: its text
    session.sticky[source.id] = source
    await session.rerun("Dataset: my photos", widgets=[source])
    if not any("your photos" in text for text in session.texts):
        raise RuntimeError(f"{session.name}: the Dataset page did not show the photos: {session.texts[-3:]}")


async def unlock_teacher(session: Session, key: str) -> None:
    """The teacher's rights for this session (its navigation then has the Class page)."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    widgets = [
        WidgetState(id=session.widget_id("teacher_key"), string_value=key),
        WidgetState(id=session.widget_id("class_unlock"), trigger_value=True),
    ]
    await session.rerun("Unlock teacher rights", widgets=widgets)
    if "Class" not in session.pages:
        raise RuntimeError(f"{session.name}: the key did not unlock the Class page")


async def start_run(session: Session, plan: Plan, epochs: int, defaults: bool = False) -> float:
    """Model page: set the small run (unless `defaults`); Train page: press Start. Returns when Start was
    pressed (monotonic)."""
    from streamlit.proto.Common_pb2 import DoubleArray, StringArray
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    if defaults:
        await session.visit("Train")
        pressed = time.monotonic()
        await session.rerun(
            "Train: Start pressed", widgets=[WidgetState(id=session.widget_id(START_KEY), trigger_value=True)]
        )
        return pressed
    await session.visit("Model & freeze")
    settings = [
        WidgetState(id=session.widget_id(EPOCHS_KEY), double_value=epochs),
        WidgetState(id=session.widget_id(FREEZE_KEY), double_array_value=DoubleArray(data=[float(plan.freeze_at)])),
        WidgetState(id=session.widget_id(IMAGE_SIZE_KEY), string_array_value=StringArray(data=[str(plan.image_size)])),
    ]
    await session.rerun("Model & freeze: settings", widgets=settings)
    ready = f"Ready to train at freeze point {plan.freeze_at}."
    if not any(ready in text for text in session.texts):
        raise RuntimeError(f"{session.name}: the Model page did not take the settings: {session.texts[-3:]}")
    await session.visit("Train")
    pressed = time.monotonic()
    await session.rerun(
        "Train: Start pressed", widgets=[WidgetState(id=session.widget_id(START_KEY), trigger_value=True)]
    )
    return pressed


async def train(session: Session, plan: Plan, clock: Clock, started: list[dict[str, Any]]) -> None:
    """A student's run: start it, then watch the live view for a while."""
    pressed = await start_run(session, plan, plan.epochs, defaults=bool(plan.own_data))
    started.append(
        {
            "session": session.name,
            "owner": session.owner,
            "pressed_at": pressed,
            "pressed_wall": time.time(),
            "notes": [t for t in session.texts if "queue" in t],
        }
    )
    await session.dwell(plan.watch_s, clock.stop)


async def browse(session: Session, plan: Plan, clock: Clock, trainer: bool, started: list[dict[str, Any]]) -> None:
    """Every page in turn (this session's own order), thinking on each; a trainer trains once a round."""
    order = list(session.pages)
    session.rng.shuffle(order)
    trained = 0
    for step in range(10**6):
        if clock.stop.is_set():
            return
        if trainer and trained < len(clock.windows):
            trained += 1
            await train(session, plan, clock, started)
            continue
        await session.visit(order[step % len(order)])
        await session.dwell(session.rng.uniform(*plan.think_s), clock.stop)


async def sample_rss(server_pid: int, samples: list[tuple[float, float, float, int]], stop: asyncio.Event) -> None:
    """(monotonic time, server MB, server + children MB, processes) every second until stopped.

    The sum counts shared pages (libraries, a Ray object store) once per process that touched them.
    """
    while not stop.is_set():
        tree = process_tree(server_pid)
        samples.append((time.monotonic(), rss_mb(server_pid), sum(rss_mb(pid) for pid in tree), len(tree)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def poll(condition: Any, deadline_s: float) -> bool:
    """Whether condition() came true within deadline_s, checked every second."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(1.0)
    return True


def runs_ended(store: RunStore, expected: int) -> bool:
    summaries = store.list()
    return len(summaries) >= expected and all(s.status != "running" for s in summaries)


def check_runs(store: RunStore, plan: Plan, warm_up_run: str, server_pid: int) -> list[dict[str, Any]]:
    """Every run record read back: status, history rows against the epochs asked, model saved, and where it
    trained (the server's process, or another: a Ray worker)."""
    checked = []
    for summary in sorted(store.list(), key=lambda s: s.created):
        config = summary.config
        epochs = config.epochs if config else None
        asked = plan.warmup_epochs if summary.run_id == warm_up_run else plan.epochs
        model_file = summary.run_dir / "model.keras"
        # At the defaults the schedule sets the epochs from each student's data (and early stopping may end
        # sooner): every epoch it ran is a history row.
        ran = len(summary.history) if plan.own_data and summary.run_id != warm_up_run else asked
        whole = (
            summary.status == "completed"
            and ((plan.own_data and summary.run_id != warm_up_run) or epochs == asked)
            and summary.epochs_done == ran
            and bool(summary.record.model_saved)
            and model_file.is_file()
        )
        checked.append(
            {
                "run": summary.run_id + (" (teacher's warm-up)" if summary.run_id == warm_up_run else ""),
                "status": summary.status,
                "epochs": epochs,
                "history_rows": summary.epochs_done,
                "model_saved": summary.record.model_saved,
                "model_file_mb": rounded(model_file.stat().st_size / PAGE_MB, 1) if model_file.is_file() else None,
                "seconds": rounded(summary.seconds, 1),
                "host": summary.record.host,
                "in_server_process": summary.record.pid == server_pid,
                "whole": whole,
            }
        )
    return checked


def _seconds_said(text: str) -> float | None:
    """The wait a queue message estimated ("about 40 s to wait", "about 2.5 min to wait"), if it says one."""
    import re

    match = re.search(r"about (under a second|[\d.]+ s|[\d.]+ min) to wait", text)
    if not match:
        return None
    said = match.group(1)
    if said == "under a second":
        return 0.5
    number = float(said.split()[0])
    return number * 60 if said.endswith("min") else number


def class_summary(
    store: RunStore,
    started: list[dict[str, Any]],
    renders: list[tuple[str, str, float]],
    rss: list[tuple[float, float, float, int]],
    errors: int,
) -> dict[str, Any]:
    """The class's figures: complete records, time from the first Start to the last result, queue waits and
    how far their estimates were, render p95 (all and per page), the server's peak memory, errors."""
    from datetime import datetime

    def wall(iso: str | None) -> float | None:
        return datetime.fromisoformat(iso).timestamp() if iso else None

    by_owner = {s.record.owner: s for s in store.list() if s.record.owner}
    waits_s, errors_rel, finished = [], [], []
    complete = 0
    for start in started:
        summary = by_owner.get(start["owner"])
        if summary is None:
            continue
        record = summary.record
        complete += summary.status == "completed" and bool(record.model_saved)
        began, ended = wall(record.created), wall(record.finished)
        if ended:
            finished.append(ended)
        if began is None:
            continue
        waited = max(0.0, began - start["pressed_wall"])
        waits_s.append(waited)
        said = next((v for note_text in start["notes"] if (v := _seconds_said(note_text)) is not None), 0.0)
        errors_rel.append(abs(said - waited) / max(waited, 10.0))  # under 10 s, any estimate is as good
    per_page: dict[str, list[float]] = {}
    for page, _, seconds in renders:
        per_page.setdefault(page, []).append(seconds)
    first = min((s["pressed_wall"] for s in started), default=None)
    return {
        "students": len(started),
        "completed": complete,
        "first_start_to_last_result_s": rounded(max(finished) - first, 1) if finished and first else None,
        "wait_p50_s": rounded(percentile(waits_s, 50), 1),
        "wait_p95_s": rounded(percentile(waits_s, 95), 1),
        "wait_estimate_error_p50": rounded(percentile(errors_rel, 50), 2),
        "wait_estimate_error_p95": rounded(percentile(errors_rel, 95), 2),
        "render_p95_s": rounded(percentile([r for _, _, r in renders], 95), 2),
        "render_p95_s_per_page": {page: rounded(percentile(v, 95), 2) for page, v in sorted(per_page.items())},
        "rss_peak_mb": rounded(max((sample[2] for sample in rss), default=0.0), 1),
        "errors": errors,
    }


async def classroom(url: str, server_pid: int, store: RunStore, plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    clock = Clock()
    rss: list[tuple[float, float, float, int]] = []
    sampler_stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(server_pid, rss, sampler_stop))
    t0 = time.monotonic()

    note("warm-up: the teacher opens every page once")
    class_mode = bool(plan.own_data)
    warm = Session(
        "teacher",
        url,
        random.Random(0),
        args.render_timeout_s,
        args.tick_timeout_s,
        new_token() if class_mode else None,
    )
    await warm.connect()
    if class_mode:
        await join(warm, "Teacher")
    else:
        await warm.rerun(NEW_SESSION)
    for page in list(warm.pages):
        await warm.visit(page)
    first_renders = {r.page: rounded(r.seconds, 2) for r in warm.renders}
    note(f"first renders: {first_renders}")
    cold_mb = rss[-1][2] if rss else None
    warm_up_run = ""
    if plan.warmup_epochs:
        # What the first run in a process costs once (TensorFlow's training side, VGG16 at the class's image
        # size, a model on the Inference page) is paid before the class: the class's before and after then
        # compare like with like. The cost is reported (warm_up.rss_mb).
        note(f"warm-up: the teacher trains a {plan.warmup_epochs}-epoch run and opens every page at its settings")
        await start_run(warm, plan, plan.warmup_epochs)
        await poll(lambda: runs_ended(store, 1), args.jobs_timeout_s)
        warm_up_run = store.list()[0].run_id
        for page in list(warm.pages):
            await warm.visit(page)
            await warm.dwell(args.warmup_dwell_s, clock.stop)  # the See inside page's background views finish
    await warm.close()
    warm_mb = rss[-1][2] if rss else None

    sessions = [
        Session(
            f"s{i:02d}",
            url,
            random.Random(i),
            args.render_timeout_s,
            args.tick_timeout_s,
            new_token() if class_mode else None,
        )
        for i in range(plan.sessions)
    ]
    spacing = plan.sessions // max(plan.trainers, 1)
    trainer_ids = {i * spacing for i in range(plan.trainers)}
    started: list[dict[str, Any]] = []
    photos = {i: camera_photos(plan.own_data, 1000 + i) for i in trainer_ids} if class_mode else {}

    async def arrive(i: int, session: Session) -> None:
        await asyncio.sleep(args.arrive_s * i / plan.sessions)  # a class does not arrive in one millisecond
        await session.connect()
        if not class_mode:
            await session.rerun(NEW_SESSION)
        else:
            await join(session, f"Student {i:02d}")
            if i == TEACHER_AT:  # one session is the teacher's: the board is browsed with every page
                await unlock_teacher(session, CLASS_KEY)
            if i in trainer_ids:
                await use_own_photos(session, plan, photos[i])
        await browse(session, plan, clock, i in trainer_ids, started)

    tasks = [asyncio.create_task(arrive(i, s), name=s.name) for i, s in enumerate(sessions)]
    idle_from = time.monotonic()
    note(f"{plan.sessions} sessions browsing; jobs start in {args.idle_s:.0f} s")
    await asyncio.sleep(args.idle_s)

    after_until: list[float] = []
    expected_runs = int(bool(warm_up_run))
    for round_no in range(1, args.rounds + 1):
        expected_runs += plan.trainers
        clock.windows.append((time.monotonic(), None))
        note(f"round {round_no}: {plan.trainers} sessions start a run each")
        ended = await poll(
            lambda expected=expected_runs: (
                runs_ended(store, expected) or any(t.done() and t.exception() for t in tasks)
            ),
            args.jobs_timeout_s,
        )
        start = clock.windows[-1][0]
        clock.windows[-1] = (start, time.monotonic())
        if not ended:
            note(f"the jobs did not all end within {args.jobs_timeout_s:.0f} s")
        note(f"round {round_no}: jobs ended after {time.monotonic() - start:.0f} s; browsing {args.after_s:.0f} s more")
        await asyncio.sleep(args.after_s)
        after_until.append(time.monotonic())
    clock.stop.set()
    done, _ = await asyncio.wait(tasks, timeout=args.render_timeout_s + 10)
    failures = [f"{t.get_name()}: {t.exception()!r}" for t in done if t.exception()]
    failures += [f"{t.get_name()}: did not end" for t in tasks if t not in done]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    note(f"sessions closed; {args.settle_s:.0f} s to settle")
    await asyncio.sleep(args.settle_s)
    sampler_stop.set()
    await sampler

    def rss_window(start: float, end: float, column: int = 2) -> list[tuple[float, float]]:
        """(seconds since the start, MB) of the whole tree (column 2) or the server's process alone (1)."""
        return [(sample[0] - t0, sample[column]) for sample in rss if start <= sample[0] <= end]

    def level(window: list[tuple[float, float]]) -> float | None:
        return rounded(statistics.median(y for _, y in window), 1) if window else None

    last = args.rss_window_s
    first_jobs = clock.windows[0][0]
    before_mb = level(rss_window(first_jobs - last, first_jobs))
    before_server_mb = level(rss_window(first_jobs - last, first_jobs, column=1))
    rounds = []
    for (start, end), until in zip(clock.windows, after_until):
        end = end or start
        after_mb = level(rss_window(until - last, until))
        rounds.append(
            {
                "jobs_s": round(end - start, 1),
                "peak_during_jobs": rounded(max((y for _, y in rss_window(start, end)), default=0.0), 1),
                "after_jobs": after_mb,
                "after_minus_before": rounded(after_mb - before_mb, 1) if before_mb and after_mb else None,
                "after_jobs_server_process_alone": level(rss_window(until - last, until, column=1)),
                "processes_after": int(next((p[3] for p in reversed(rss) if p[0] <= until), 0)),
                "growth_after_mb_per_min": rounded(growth(rss_window(end, until)), 1),
            }
        )

    renders = [
        (r.page, phase_of(r.sent_at, clock.windows), r.seconds)
        for s in sessions
        for r in s.renders
        if r.status == "ok" and r.sent_at >= idle_from
    ]
    not_ok = [f"{s.name} {r.page}: {r.status}" for s in sessions for r in s.renders if r.status not in ("ok", NO_REPLY)]
    no_reply = sum(r.status == NO_REPLY for s in sessions for r in s.renders)
    table = render_table(renders)
    checked = check_runs(store, plan, warm_up_run, server_pid)
    goal_p95 = {page: table.get(page, {}).get(JOBS, {}).get("p95") for page in GOAL_PAGES}
    errors = len(not_ok) + len(failures) + len({e for s in [*sessions, warm] for e in s.exceptions})
    summary = class_summary(store, started, renders, rss, errors) if class_mode else None
    return {
        "summary": summary,
        "first_renders_s": first_renders,
        "renders": table,
        "renders_not_ok": not_ok,
        "fragment_ticks_without_reply": no_reply,
        "warm_up": {"run": warm_up_run, "rss_mb_before": rounded(cold_mb, 1), "rss_mb_after": rounded(warm_mb, 1)},
        "exceptions_shown": sorted({e for s in [*sessions, warm] for e in s.exceptions}),
        "session_failures": failures,
        "idle_s": round(first_jobs - idle_from, 1),
        "starts": [
            {"session": s["session"], "at_s": round(s["pressed_at"] - first_jobs, 1), "notes": s["notes"]}
            for s in started
        ],
        "runs": checked,
        "rss_mb": {
            "before_jobs": before_mb,
            "before_jobs_server_process_alone": before_server_mb,
            "rounds": rounds,
            "sessions_closed": level(rss_window(after_until[-1] + args.settle_s - last, math.inf)),
            "series": [(round(t, 1), round(tree)) for t, tree in rss_window(t0, math.inf)][
                :: max(1, args.series_every)
            ],
        },
        "goal": {
            "p95_under_s": GOAL_P95_S,
            "p95_while_jobs": goal_p95,
            "renders_met": all(v is not None and v < GOAL_P95_S for v in goal_p95.values()),
            "nothing_lost": len(checked) == expected_runs and all(c["whole"] for c in checked) and not not_ok,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30, help="concurrent sessions (default 30)")
    parser.add_argument("--trainers", type=int, default=5, help="sessions that start a run (default 5)")
    parser.add_argument("--image-size", type=int, default=96, help="the trainers' image size (default 96)")
    parser.add_argument("--freeze-at", type=int, default=10, help="the trainers' freeze point (default 10)")
    parser.add_argument("--epochs", type=int, default=2, help="the trainers' epochs (default 2)")
    parser.add_argument("--think", type=float, nargs=2, default=(2.0, 6.0), help="think time on a page, s (2 6)")
    parser.add_argument("--warmup-epochs", type=int, default=1, help="the teacher's warm-up run; 0: none (1)")
    parser.add_argument("--warmup-dwell-s", type=float, default=5.0, help="the teacher stays on each page (5)")
    parser.add_argument("--tick-timeout-s", type=float, default=20.0, help="a fragment tick unanswered this long (20)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of jobs, each followed by --after-s (1)")
    parser.add_argument("--watch-s", type=float, default=10.0, help="a trainer watches its run this long (10)")
    parser.add_argument("--idle-s", type=float, default=40.0, help="browsing before the jobs start (40)")
    parser.add_argument("--after-s", type=float, default=30.0, help="browsing after the jobs end (30)")
    # A class types the address and a name over half a minute; --arrive-s 5 is the harsher burst (bench README).
    parser.add_argument("--arrive-s", type=float, default=30.0, help="the sessions arrive over this long (30)")
    parser.add_argument("--settle-s", type=float, default=10.0, help="wait after the sessions leave (10)")
    parser.add_argument("--rss-window-s", type=float, default=15.0, help="RSS levels: median of this long (15)")
    parser.add_argument("--jobs-timeout-s", type=float, default=300.0, help="give up on the jobs after (300)")
    parser.add_argument("--render-timeout-s", type=float, default=90.0, help="a render that takes longer fails")
    parser.add_argument("--timeout-s", type=float, default=720.0, help="the whole benchmark's limit (720)")
    parser.add_argument("--series-every", type=int, default=5, help="print every n-th RSS sample (5)")
    parser.add_argument(
        "--own-data",
        action="store_true",
        help="class mode (classroom.py, TLLAB_CLASS_KEY): each session joins with a name; each trainer makes its "
        "own dataset of --photos photos and trains at the defaults (128 px, head only)",
    )
    parser.add_argument("--photos", type=int, default=100, help="each trainer's photos with --own-data (100)")
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help=f"run the jobs on Ray: sets {RAY_ADDRESS_ENV}=ADDRESS (and {RAY_CPUS_ENV}=2 for 'local') for the server",
    )
    args = parser.parse_args()
    weights = weights_file()
    plan = Plan(
        args.sessions,
        args.trainers,
        tuple(args.think),
        args.watch_s,
        args.image_size,
        args.freeze_at,
        args.epochs,
        args.warmup_epochs,
    )
    runs_dir = Path(tempfile.mkdtemp(prefix="tllab-bench-class-"))
    if args.own_data:
        plan.own_data, plan.runs_dir = args.photos, runs_dir
    env = {RUNS_ENV: str(runs_dir), CACHE_DIR_ENV: str(runs_dir / ".features"), "TLLAB_WEIGHTS": str(weights)}
    if args.own_data:
        env[CLASS_KEY_ENV] = CLASS_KEY
    if args.ray:
        env[RAY_ADDRESS_ENV] = args.ray
        if args.ray == "local":
            env[RAY_CPUS_ENV] = "2"
    log_path = runs_dir / "server.log"
    cpu = cpu_info()
    note(f"CPU: {cpu['model_name']} ({cpu['cpu_count']} cores); runs folder {runs_dir}")
    load_before = load_average()
    client_cpu0, wall0 = time.process_time(), time.monotonic()
    script = "classroom.py" if args.own_data else "app.py"
    with streamlit_process(env, log_path, script) as (url, proc):
        server_cpu0 = cpu_seconds(process_tree(proc.pid))
        result = asyncio.run(asyncio.wait_for(classroom(url, proc.pid, RunStore(runs_dir), plan, args), args.timeout_s))
        server_cpu = cpu_seconds(process_tree(proc.pid)) - server_cpu0
    log = log_path.read_text(errors="replace")
    for line in table_lines(result["renders"]):
        note(line)
    note(f"RSS MB: before the jobs {result['rss_mb']['before_jobs']}; per round {result['rss_mb']['rounds']}")
    note(f"goal: {result['goal']}")
    outside = sum(not run["in_server_process"] for run in result["runs"])
    backend = f"ray {args.ray}" if args.ray else "in-process threads"
    if args.ray and not outside:  # the code under test has no Ray backend (yet): say so rather than mislabel
        backend += f": asked for, but every run trained in the server's process ({RAY_ADDRESS_ENV} ignored)"
    emit(
        {
            "benchmark": "classroom_load",
            "cpu": cpu,
            "backend": backend,
            "runs_trained_outside_the_server_process": outside,
            "sessions": plan.sessions,
            "trainers": plan.trainers,
            "run": (
                f"class mode: each trainer's own {plan.own_data} photos, the defaults (128 px, head only)"
                if plan.own_data
                else f"sample data, ImageNet weights file, {plan.image_size} px, freeze point {plan.freeze_at}, "
                f"{plan.epochs} epochs"
            ),
            "think_s": list(plan.think_s),
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "wall_s": round(time.monotonic() - wall0, 1),
            "server_cpu_s": round(server_cpu, 1),
            "client_cpu_s": round(time.process_time() - client_cpu0, 1),
            "server_log_tracebacks": log.count("Traceback"),
            **result,
        }
    )


if __name__ == "__main__":
    main()
