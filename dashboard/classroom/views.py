"""Class mode's own screens: the join form, the sidebar's account box, and the teacher's roster.

View code only: who is whom and what each may do is tlcore.classroom's and tlcore.access's.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from dashboard import identity
from tlcore.classroom import (
    PIN_LENGTHS,
    PRIVACY_NOTICE,
    ClassError,
    ClassSettings,
    Roster,
    TryLimit,
    assignment_of,
    class_key,
    delete_owner_data,
    keys_match,
)
from tlcore.jobs import JOBS
from tlcore.runs import default_runs_dir

NO_COOKIE = (
    "This browser sent no class cookie. Open the lab at the address the teacher gave (the class server, "
    "started with `streamlit run classroom.py`), and allow cookies for it."
)
_LIMIT = "class_try_limit"  # session key: this session's TryLimit for the key and PINs


def _limit() -> TryLimit:
    return st.session_state.setdefault(_LIMIT, TryLimit())


def _too_fast() -> bool:
    """Counts a try; True (with a message) when this session tried too often in the last minute."""
    wait = _limit().wait_s()
    if wait:
        st.session_state["class_notice"] = f"Too many tries: wait {wait:.0f} s and try again."
    return bool(wait)


def _join() -> None:
    token = identity.browser_token()
    if token is None:
        return
    try:
        Roster().join(st.session_state.get("join_name", ""), token)
    except ClassError as err:
        st.session_state["class_notice"] = str(err)


def _continue() -> None:
    token = identity.browser_token()
    if token is None or _too_fast():
        return
    try:
        Roster().continue_as(st.session_state.get("continue_name", ""), st.session_state.get("continue_pin", ""), token)
    except ClassError as err:
        st.session_state["class_notice"] = str(err)


def class_gate() -> Callable[[], None] | None:
    """What a session sees instead of the lab: the join form until its browser has joined a class, or why
    class mode cannot start; None when the lab's pages may run (joined, or no class)."""
    try:
        if not identity.in_class():
            return None
    except ClassError as err:
        message = str(err)

        def cannot_start() -> None:
            st.error(message)

        return cannot_start
    return None if identity.person() is not None else join_form


def join_form() -> None:
    """Join with a name (the first text box: Enter joins), or continue on another device with a PIN."""
    st.title("Join the class")
    if identity.browser_token() is None:
        st.error(NO_COOKIE)
        return
    with st.form("join", border=False, enter_to_submit=True):
        st.text_input("Your name", key="join_name", max_chars=32, placeholder="e.g. Ada")
        st.caption(PRIVACY_NOTICE)
        st.form_submit_button("Join", type="primary", on_click=_join, key="join_submit")
    if notice := st.session_state.pop("class_notice", None):
        st.error(notice)
    with st.expander("Joined already on another device? Continue with your PIN"), st.form("continue", border=False):
        st.text_input("Your name", key="continue_name", max_chars=32)
        st.text_input("PIN", key="continue_pin", type="password", max_chars=PIN_LENGTHS[1])
        st.form_submit_button("Continue", on_click=_continue)


def _leave() -> None:
    if (token := identity.browser_token()) is not None:
        Roster().leave(token)
    st.session_state.clear()  # a shared computer: the next person starts from nothing of this one's


def _set_pin() -> None:
    member = identity.person()
    if member is None:
        return
    try:
        Roster().set_pin(member.owner, st.session_state.get("new_pin", ""))
        st.session_state["class_notice"] = "PIN set: with your name it opens your work on another device."
    except ClassError as err:
        st.session_state["class_notice"] = str(err)
    st.session_state["new_pin"] = ""


def _unlock() -> None:
    member, key = identity.person(), class_key()
    if member is None or key is None or _too_fast():
        return
    if keys_match(st.session_state.get("teacher_key", ""), key):
        Roster().make_teacher(member.owner)
    else:
        st.session_state["class_notice"] = "That is not the class key."
    st.session_state["teacher_key"] = ""  # never kept in the session


def account_box() -> None:
    """The sidebar's top: who is signed in, Leave, a PIN for a second device, the teacher's key."""
    member = identity.person()
    if member is None:
        return
    with st.sidebar:
        role = " (teacher)" if member.teacher else ""
        st.markdown(f"Signed in as **{member.name}**{role}")
        st.button("Leave", key="class_leave", on_click=_leave, help="Sign this browser out (a shared computer).")
        if notice := st.session_state.pop("class_notice", None):
            st.info(notice)
        with st.expander("Use another device"):
            st.text_input("Choose a PIN (4-8 digits)", key="new_pin", type="password", max_chars=PIN_LENGTHS[1])
            st.button("Set PIN", key="class_set_pin", on_click=_set_pin)
        if not member.teacher:
            with st.expander("Teacher"):
                st.text_input("Class key", key="teacher_key", type="password")
                st.button("Unlock teacher rights", key="class_unlock", on_click=_unlock)


def _remove(owner: str) -> None:
    if (job := JOBS.running_for(owner)) is not None:
        job.stop()
    left = delete_owner_data(default_runs_dir(), owner)
    Roster().remove(owner)
    st.session_state["class_notice"] = "Removed." + (f" Still stopping: {', '.join(left)}." if left else "")


def _end_class() -> None:
    for member in Roster().people():
        if not member.teacher:
            _remove(member.owner)
    ClassSettings().clear()
    st.session_state["class_notice"] = "The class has ended: every student's data is deleted."


def require_teacher() -> None:
    """Stop the page unless this session holds the teacher's rights now (read afresh from the roster)."""
    member = identity.person()
    if member is None or not member.teacher:
        st.error("This page is the teacher's.")
        st.stop()


def roster_panel() -> None:
    """The teacher's roster: rename, reset (sign out everywhere, forget the PIN), remove, end the class."""
    require_teacher()
    roster = Roster()
    people = [p for p in roster.people() if not p.teacher]
    st.subheader(f"Students ({len(people)})")
    if notice := st.session_state.pop("class_notice", None):
        st.info(notice)
    for student in people:
        name, rename, reset, remove = st.columns([3, 2, 1, 1], vertical_alignment="bottom")
        name.text_input("New name", value=student.name, key=f"rename_{student.owner}", label_visibility="collapsed")
        rename.button(
            "Rename", key=f"do_rename_{student.owner}", on_click=_rename, args=(student.owner,), width="stretch"
        )
        reset.button("Reset", key=f"reset_{student.owner}", on_click=roster.reset, args=(student.owner,))
        remove.button("Remove", key=f"remove_{student.owner}", on_click=_remove, args=(student.owner,))
    st.subheader("End the class")
    confirm = st.checkbox("Yes, delete every student's photos, runs and settings for good", key="end_class_confirm")
    st.button("End class", key="end_class", type="primary", disabled=not confirm, on_click=_end_class)


def _rename(owner: str) -> None:
    try:
        Roster().rename(owner, st.session_state.get(f"rename_{owner}", ""))
    except ClassError as err:
        st.session_state["class_notice"] = str(err)


def _apply_assignment(freeze_at: int, pretrained: bool) -> None:
    """Button callback: the Model page's widgets set to the student's part of the class experiment."""
    from dashboard.state import WEIGHTS_IMAGENET, WEIGHTS_SCRATCH, K

    s = st.session_state
    s[K.freeze_at], s[K.fine_tune] = freeze_at, False
    s[K.weights_choice] = WEIGHTS_IMAGENET if pretrained else WEIGHTS_SCRATCH


def assignment_banner() -> None:
    """A student's part of the class experiment, with a button that applies it (nothing outside a class)."""
    member = identity.person()
    if member is None or member.teacher:
        return
    if (assignment := assignment_of(ClassSettings(), member.owner)) is None:
        return
    text, button = st.columns([4, 1], vertical_alignment="center")
    text.info(f"Your class experiment: **{assignment.describe()}**.")
    button.button(
        "Apply",
        key="assignment_apply",
        on_click=_apply_assignment,
        args=(assignment.freeze_at, assignment.pretrained),
        width="stretch",
        help="Set the freeze point and the weights to your part of the class's experiment.",
    )
