"""Class mode's roster (tlcore.classroom) and the class server's cookie (dashboard.browser_cookie)."""

from __future__ import annotations

import asyncio
import json

import pytest

from dashboard.browser_cookie import BrowserCookieMiddleware, cookie_token, well_formed
from tlcore.classroom import (
    CLASS_KEY_ENV,
    COOKIE_NAME,
    ClassError,
    Roster,
    TryLimit,
    checked_name,
    class_key,
    delete_owner_data,
    keys_match,
    name_key,
)
from tlcore.owner_settings import OwnerSettings
from tlcore.runs import RunStore


def test_names_compare_after_nfkc_case_folding_and_collapsed_spaces():
    assert name_key("  Ada   Lovelace ") == name_key("ada lovelace") == name_key("ＡＤＡ LOVELACE")  # noqa: RUF001 - full-width on purpose
    assert name_key("Straße") == name_key("STRASSE")
    assert checked_name("  Zoë   Ng ") == "Zoë Ng" and checked_name("李 雷_2-b") == "李 雷_2-b"


@pytest.mark.parametrize(
    ("name", "reason"),
    [("", "Type your name"), ("   ", "Type your name"), ("x" * 33, "at most 32"), ("a/b", "letters, digits")],
)
def test_names_that_cannot_be_names_say_why(name, reason):
    with pytest.raises(ClassError, match=reason):
        checked_name(name)


def test_a_name_in_use_is_refused_saying_so(tmp_path):
    roster = Roster(tmp_path)
    ada = roster.join("Ada", "browser-1")
    with pytest.raises(ClassError, match="already in this class"):
        roster.join(" ADA ", "browser-2")
    assert roster.who("browser-1") == ada and roster.who("browser-2") is None
    assert len(ada.owner) == 16 and ada.owner not in "Ada"  # an opaque id, never the name


def test_the_roster_keeps_only_hashes_of_browser_tokens(tmp_path):
    roster = Roster(tmp_path)
    roster.join("Ada", "the-secret-browser-token")
    roster.set_pin(roster.who("the-secret-browser-token").owner, "4711")
    stored = roster.path.read_text()
    assert "the-secret-browser-token" not in stored and "4711" not in stored
    assert len(json.loads(stored)[0]["browsers"][0]) == 64  # SHA-256


def test_leave_forgets_the_browser_and_a_pin_opens_the_work_on_another_device(tmp_path):
    roster = Roster(tmp_path)
    ada = roster.join("Ada", "laptop")
    with pytest.raises(ClassError, match="do not match"):
        roster.continue_as("Ada", "1234", "phone")  # no PIN set yet
    with pytest.raises(ClassError, match="4 to 8 digits"):
        roster.set_pin(ada.owner, "12ab")
    roster.set_pin(ada.owner, "1234")
    with pytest.raises(ClassError, match="do not match") as wrong_pin:
        roster.continue_as("Ada", "9999", "phone")
    with pytest.raises(ClassError) as nobody:
        roster.continue_as("Grace", "1234", "phone")
    assert str(wrong_pin.value) == str(nobody.value)  # nothing says whether the name exists
    assert roster.continue_as("ada", "1234", "phone").owner == ada.owner
    roster.leave("laptop")
    assert roster.who("laptop") is None and roster.who("phone").owner == ada.owner


def test_the_teacher_renames_resets_and_removes(tmp_path):
    roster = Roster(tmp_path)
    ada, grace = roster.join("Ada", "b1"), roster.join("Grace", "b2")
    roster.set_pin(ada.owner, "1234")
    with pytest.raises(ClassError, match="already"):
        roster.rename(ada.owner, "grace")
    roster.rename(ada.owner, "Ada L")
    assert roster.who("b1").name == "Ada L"
    roster.reset(ada.owner)  # signed out everywhere, PIN forgotten; still in the class
    assert roster.who("b1") is None and roster.by_owner(ada.owner).pin_hash == ""
    roster.remove(grace.owner)
    assert [p.name for p in roster.people()] == ["Ada L"]


def test_removing_a_student_deletes_their_runs_and_settings_only(tmp_path):
    from tests.helpers import TINY_CONFIG, make_dataset_folder
    from tlcore.access import student
    from tlcore.data import scan
    from tlcore.tf.training import train_and_record

    info = scan(make_dataset_folder(tmp_path / "data", n_train=4, n_val=2))
    runs = tmp_path / "runs"
    ada, grace = student("a" * 16), student("b" * 16)
    train_and_record(TINY_CONFIG, info, RunStore(runs, ada))
    train_and_record(TINY_CONFIG, info, RunStore(runs, grace))
    OwnerSettings(runs).save(ada.owner, {"image_size": 32})
    assert delete_owner_data(runs, ada.owner) == []
    assert [s.record.owner for s in RunStore(runs).list()] == [grace.owner]
    assert OwnerSettings(runs).load(ada.owner) == {}


def test_the_class_key_is_a_secret_of_16_characters_or_more(monkeypatch):
    monkeypatch.delenv(CLASS_KEY_ENV, raising=False)
    assert class_key() is None
    monkeypatch.setenv(CLASS_KEY_ENV, "short")
    with pytest.raises(ClassError, match="at least 16"):
        class_key()
    monkeypatch.setenv(CLASS_KEY_ENV, "a-long-enough-class-key")
    assert class_key() == "a-long-enough-class-key"
    key = class_key()
    assert key is not None
    assert keys_match("a-long-enough-class-key", key) and not keys_match("a-long-enough-class-kez", key)


def test_five_tries_a_minute_then_a_wait():
    limit = TryLimit()
    assert [limit.wait_s(now=t) for t in (0, 1, 2, 3, 4)] == [0, 0, 0, 0, 0]
    assert limit.wait_s(now=10) == pytest.approx(50)  # the sixth within the minute waits for the first to age
    assert limit.wait_s(now=60.5) == 0


def _request(cookie: str | None, scheme: str = "http", kind: str = "http") -> list[dict]:
    """What the middleware sends for one request whose app answers 200."""
    sent: list[dict] = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message):
        sent.append(message)

    async def receive() -> dict:  # never called: the app above answers without reading the request
        return {"type": "http.disconnect"}

    headers = [(b"cookie", cookie.encode())] if cookie is not None else []
    scope = {"type": kind, "scheme": scheme, "headers": headers}
    asyncio.run(BrowserCookieMiddleware(app)(scope, receive, send))
    return sent


def _set_cookie(sent: list[dict]) -> str | None:
    start = next(m for m in sent if m["type"] == "http.response.start")
    values = [v.decode() for k, v in start["headers"] if k == b"set-cookie"]
    return values[0] if values else None


def test_a_browser_without_the_cookie_gets_an_httponly_strict_one():
    header = _set_cookie(_request(None))
    name_value, *attributes = header.split("; ")
    assert name_value.startswith(f"{COOKIE_NAME}=") and well_formed(name_value.split("=", 1)[1])
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(attributes) and "Secure" not in attributes
    assert "Secure" in _set_cookie(_request(None, scheme="https")).split("; ")
    assert _set_cookie(_request("other=1; tllab_browser=not-a-token")) is not None  # malformed: a new one


def test_a_browser_with_its_cookie_keeps_it():
    token = cookie_token(_set_cookie(_request(None)).split(";")[0])
    assert _set_cookie(_request(f"a=b; {COOKIE_NAME}={token}")) is None
    assert cookie_token(f"{COOKIE_NAME}={token}") == token and cookie_token("garbage;;==") is None


def test_the_roster_is_read_afresh_after_each_change(tmp_path):
    roster = Roster(tmp_path)
    ada = roster.join("Ada", "b1")
    first = roster.who("b1")
    first.name = "changed by a caller"  # a copy: the parsed file is not changed with it
    assert roster.who("b1").name == "Ada"
    Roster(tmp_path).rename(ada.owner, "Ada L")  # another session's change
    assert roster.who("b1").name == "Ada L"
