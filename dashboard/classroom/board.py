"""The teacher's class board: who is doing what (live), the class's transfer curve, and a pre-lesson check.

View code over tlcore.class_board; the Class page calls it for teachers, the Runs page's "Class results"
for students (names hidden unless the teacher shows them).
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st

from dashboard import identity
from dashboard.chart_cache import show_chart
from dashboard.charts import class_results_chart
from tlcore.backbones import default_weights, weights_status
from tlcore.class_board import class_results, disk_check, results_csv, student_rows
from tlcore.classroom import ClassError, ClassSettings, Roster, assignment_of, spread_assignments
from tlcore.estimate import human_seconds
from tlcore.jobs import JOBS
from tlcore.photos import max_photo_bytes
from tlcore.runs import RunStore, max_runs
from tlcore.speed import machine_speed
from tlcore.waits import OVERRUN, seconds_left, waits

BOARD_REFRESH_S = 3.0
MODEL_BYTES = 59 * 2**20


@st.fragment(run_every=BOARD_REFRESH_S)
def students_table() -> None:
    """Every student's photos, job and newest run; redrawn every few seconds from files and the registry
    (no model, no chart rebuilt for a row that did not change)."""
    rows = student_rows(Roster().people(), RunStore(), JOBS)
    st.subheader(f"Students ({len(rows)})")
    if not rows:
        st.caption("Nobody has joined yet: students open this server's address and type their name.")
        return
    st.dataframe(_board_frame(rows), hide_index=True, column_config=_BOARD_COLUMNS)


# Seven narrow columns fit a projector's 1024 px beside the sidebar (nine, with state, progress and place
# apart, scrolled sideways there).
_BOARD_COLUMNS = {
    "name": st.column_config.TextColumn(width=150),
    "status": st.column_config.TextColumn(width=92, help="the run's stage and epoch, or its place in the queue"),
    "freeze": st.column_config.NumberColumn(width=48),
    "weights": st.column_config.TextColumn(width=64),
    "val acc": st.column_config.NumberColumn(format="percent", width=56, help="validation accuracy of the newest run"),
    "photos": st.column_config.TextColumn(width=92, help="photos per class"),
    "runs": st.column_config.NumberColumn(width=40),
}


def _board_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """The board's columns: a job's state, progress and place in the queue read as one status."""

    def status(row: dict[str, object]) -> str:
        if row["queue"]:
            return f"queue {row['queue']}"
        return str(row["progress"] or row["state"])

    return pd.DataFrame(
        {
            "name": [r["name"] for r in rows],
            "status": [status(r) for r in rows],
            "freeze": [r["freeze point"] for r in rows],
            "weights": [r["weights"] for r in rows],
            "val acc": [r["val accuracy"] for r in rows],
            "photos": [r["photos"] for r in rows],
            "runs": [r["runs"] for r in rows],
        }
    )


def results_section(show_names: bool, csv: bool) -> None:
    """The class's finished runs as one chart (and, for the teacher, the CSV)."""
    results = class_results(Roster().people(), RunStore(), show_names)
    if not results:
        st.caption("No finished run yet: the chart fills as students' runs end.")
        return
    frame = pd.DataFrame(
        {
            "name": [r.name for r in results],
            "freeze point": [r.freeze_at for r in results],
            "weights": ["ImageNet" if r.pretrained else "random" for r in results],
            "val accuracy": [r.val_accuracy for r in results],
            "chance": [r.chance for r in results],
        }
    )
    show_chart(class_results_chart, frame)
    st.caption(
        f"{len(results)} finished runs. Each point is one student's run; the lines join each side's mean at "
        "each freeze point. Where ImageNet stays high while random weights fall, the frozen layers carried "
        "what ImageNet taught them."
    )
    if csv:
        st.download_button(
            "Download the class's results (CSV)",
            results_csv(results),
            file_name="class-results.csv",
            mime="text/csv",
            key="class_results_csv",
            on_click="ignore",
        )


def pre_lesson_check() -> None:
    """Weights loadable, HTTPS on, disk for the quotas, the machine's speed: each a line, good or not."""
    people = max(30, len([p for p in Roster().people() if not p.teacher]))
    ok, weights = weights_status(default_weights())
    https = (st.context.url or "").startswith("https://")
    disk_ok, disk = disk_check(RunStore().root, people, max_photo_bytes(), MODEL_BYTES, max_runs())
    checks = [
        (ok, f"Weights: {weights}"),
        (
            https,
            "HTTPS: on, so browsers give the webcam."
            if https
            else "HTTPS: off; webcams work only on this computer. README, Teaching a class, shows the HTTPS command.",
        ),
        (disk_ok, f"Disk: {disk}."),
        (True, f"Speed: {machine_speed(identity.run_store().root).describe()}."),
    ]
    for good, line in checks:
        (st.success if good else st.warning)(line)


def _stop_job(job_id: str) -> None:
    if (job := JOBS.get(job_id, identity.actor())) is not None:  # the teacher's rights, read afresh
        job.stop()


@st.fragment(run_every=BOARD_REFRESH_S)
def queue_section() -> None:
    """Every running and waiting job, whose it is, how long it has (or waits), and a Stop for each."""
    names = {p.owner: p.name for p in Roster().people()}
    jobs = JOBS.running()
    st.subheader(f"Jobs now ({len(jobs)})")
    if not jobs:
        st.caption("No job is running or waiting.")
        return
    speed = machine_speed(identity.run_store().root)
    waiting = waits(JOBS, speed)
    for job in jobs:
        snap = job.snapshot()
        who = names.get(snap.owner, "someone")
        if job.id in waiting:
            state = f"waiting, about {human_seconds(waiting[job.id])} to start"
        else:
            state = f"{snap.stage}, about {human_seconds(seconds_left(job, speed))} left"
        line, stop = st.columns([5, 1], vertical_alignment="center")
        line.markdown(f"**{who}** · {snap.kind} · {state}")
        stop.button("Stop", key=f"class_stop_{job.id}", on_click=_stop_job, args=(job.id,), width="stretch")


def limits_form() -> None:
    """The class's limits that a student's Start respects (0: none)."""
    settings = ClassSettings()
    limits = settings.load().get("limits") or {}
    with st.form("class_limits", border=False):
        size, epochs, minutes = st.columns(3)
        size.number_input(
            "Largest image size (px)", 0, 512, int(limits.get("max_image_size") or 0), step=16, key="limit_size"
        )
        epochs.number_input("Most epochs", 0, 500, int(limits.get("max_epochs") or 0), key="limit_epochs")
        minutes.number_input(
            "Longest run (estimated minutes)",
            0.0,
            120.0,
            float(limits.get("max_minutes") or 0),
            step=0.5,
            key="limit_minutes",
        )
        st.caption(
            f"0 means no limit. A run that goes {OVERRUN:g} x past the time limit stops and keeps what it learned."
        )
        st.form_submit_button("Save limits", on_click=_save_limits)
    if st.session_state.pop("limits_saved", False):
        st.success("Saved: students' next Start respects them.")


def _save_limits() -> None:
    s = st.session_state
    ClassSettings().update(
        limits={
            "max_image_size": int(s["limit_size"]) or None,
            "max_epochs": int(s["limit_epochs"]) or None,
            "max_minutes": float(s["limit_minutes"]) or None,
        }
    )
    s["limits_saved"] = True


ASSIGNABLE_POINTS = [18, 14, 10, 6, 3, 0]


def assignment_form() -> None:
    """Spread freeze points and weights over the students: each student's Model page then offers theirs."""
    people = [p for p in Roster().people() if not p.teacher]
    st.multiselect("Freeze points", ASSIGNABLE_POINTS, default=[18, 10, 0], key="assign_points")
    st.multiselect("Weights", ["ImageNet", "random"], default=["ImageNet", "random"], key="assign_weights")
    st.button("Spread over the students", key="assign_spread", disabled=not people, on_click=_spread)
    if notice := st.session_state.pop("assign_notice", None):
        st.warning(notice)
    settings = ClassSettings()
    rows = [{"name": p.name, "experiment": a.describe()} for p in people if (a := assignment_of(settings, p.owner))]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)


def _spread() -> None:
    s = st.session_state
    owners = [p.owner for p in Roster().people() if not p.teacher]
    try:
        spread = spread_assignments(
            owners, sorted(s["assign_points"], reverse=True), [w == "ImageNet" for w in s["assign_weights"]]
        )
    except ClassError as err:
        s["assign_notice"] = str(err)
        return
    ClassSettings().update(assignment={owner: asdict(a) for owner, a in spread.items()})
