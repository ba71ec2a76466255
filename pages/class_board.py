"""Class page (teacher sessions only): the roster, and ending the class."""

from __future__ import annotations

from dashboard.class_views import roster_panel
from dashboard.state import page_intro

page_intro("Class", "Who joined, and the teacher's controls: rename, sign out, remove, end the class.")
roster_panel()
