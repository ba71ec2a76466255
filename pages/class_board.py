"""Class page (teacher sessions only): the class board, the class's results, the pre-lesson check and the
roster's controls."""

from __future__ import annotations

import streamlit as st

from dashboard.classroom.board import (
    assignment_form,
    limits_form,
    pre_lesson_check,
    queue_section,
    results_section,
    students_table,
)
from dashboard.classroom.views import require_teacher, roster_panel
from dashboard.state import page_intro
from tlcore.classroom import ClassSettings

require_teacher()  # the rights are checked again here, whoever reached the page
page_intro("Class", "Who is doing what, what the class found, and the teacher's controls.")
students_table()
queue_section()
st.subheader("What the class found")
settings = ClassSettings()
show_names = st.toggle(
    "Show names",
    value=bool(settings.load().get("show_names")),
    key="class_show_names",
    help="Off: points without names, on the projector and on the students' Class results.",
)
if show_names != bool(settings.load().get("show_names")):
    settings.update(show_names=show_names)
results_section(show_names=show_names, csv=True)
with st.expander("The class experiment: spread freeze points and weights over the students"):
    assignment_form()
with st.expander("Limits for every student's run"):
    limits_form()
with st.expander("Before the lesson: is the server ready?"):
    pre_lesson_check()
with st.expander("Roster: rename, sign out, remove; end the class"):
    roster_panel()
