"""Who a session is: its owner id for jobs, runs, kept settings and uploads, and the rights it acts with.

The one place identity is read. In the single-user lab a tab is identified by its `?owner=` (so a reload
finds its jobs and settings) and acts as the administrator, who sees every run, as before class mode. In
class mode (TLLAB_CLASS_KEY) a session is the person its browser joined as: the browser's HttpOnly
cookie (dashboard/browser_cookie.py) names it, nothing in the URL does, and `?owner=` and `?job=` are
ignored.
"""

from __future__ import annotations

import os

import streamlit as st

from dashboard.state import K
from tlcore.access import ADMIN, Actor
from tlcore.classroom import COOKIE_NAME, ClassSettings, Roster, Student, class_key
from tlcore.jsontypes import JSONObject
from tlcore.runs import RunStore

URL_IDENTITY = ("owner", "job")  # the single-user lab's tab identity and its job, kept in the URL
NOBODY = Actor("0" * 16, teacher=False)  # a class session that has not joined: owns nothing, sees nothing


def in_class() -> bool:
    """Whether class mode is on (raises tlcore.classroom.ClassError when its key is too short)."""
    return class_key() is not None


def browser_token() -> str | None:
    """This browser's token, from the class server's cookie (None without one)."""
    return st.context.cookies.get(COOKIE_NAME)


def person() -> Student | None:
    """The class member this browser joined as (None outside class mode, or before joining)."""
    return Roster().who(browser_token()) if in_class() else None


def is_new_session() -> bool:
    """True on a session's first script run (a new tab, or a reloaded one), before `owner` is first read."""
    return K.owner not in st.session_state


def owner() -> str:
    """Who this session acts for: jobs, runs, kept settings and uploads are all keyed by it.

    In class mode, the joined person's opaque id. Otherwise the tab's `?owner=` (so a reload finds its jobs
    and settings), or a new random id.
    """
    if in_class():
        for key in URL_IDENTITY:  # a projected or shared URL carries nobody's identity
            st.query_params.pop(key, None)
        member = person()
        st.session_state[K.owner] = member.owner if member else NOBODY.owner
        return str(st.session_state[K.owner])
    if K.owner not in st.session_state:
        st.session_state[K.owner] = st.query_params.get("owner") or os.urandom(6).hex()
    if st.query_params.get("owner") != st.session_state[K.owner]:
        st.query_params["owner"] = st.session_state[K.owner]
    return str(st.session_state[K.owner])


def job_in_url() -> str | None:
    """The job id a reloaded single-user tab finds again in its URL (never in class mode)."""
    return None if in_class() else st.query_params.get("job")


def put_job_in_url(job_id: str) -> None:
    """Keep the started job's id in the URL, so a reload finds it (never in class mode: the person does)."""
    if not in_class():
        st.query_params["job"] = job_id


def actor() -> Actor:
    """Who this session acts as in tlcore's ownership checks (tlcore.access): the administrator outside
    class mode; in a class, the joined person with their rights (read afresh: the teacher may have reset
    them), or nobody."""
    if not in_class():
        return ADMIN
    member = person()
    return member.actor if member else NOBODY


def class_limits() -> JSONObject:
    """The teacher's limits that this session's runs must keep ({} outside a class, and for the teacher)."""
    if not in_class() or actor().teacher:
        return {}
    limits = ClassSettings().load().get("limits")
    return limits if isinstance(limits, dict) else {}


def where(path: str | os.PathLike, in_words: str) -> str:
    """A server folder as this session may see it: its path for the teacher and the single-user lab; for a
    student `in_words` (a class server's folders are the teacher's machine)."""
    return f"`{path}`" if actor().teacher else in_words


def run_store() -> RunStore:
    """The runs folder as this session may see it: its runs, or every run with the teacher's rights."""
    return RunStore(actor=actor())
