"""A class: the teacher's key, the students' names, and which browser is whom.

Class mode is on when TLLAB_CLASS_KEY (the teacher's secret, 16 characters or
more) is set. Each browser carries a random 128-bit token in an HttpOnly
cookie (set by `classroom.py`, the class server's entry point); the roster
(`<runs folder>/.class/roster.json`, written atomically under a process-wide
lock) keeps only its SHA-256, beside each student's display name and opaque
owner id. The key and PINs are compared in constant time, at most
TRIES_PER_MINUTE a minute per session. Nothing here goes into a URL or a log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import unicodedata
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tlcore import environment
from tlcore.access import Actor
from tlcore.environment import CLASS_KEY_ENV
from tlcore.fileio import atomic_write
from tlcore.jsontypes import JSONValue
from tlcore.runs import default_runs_dir

MIN_KEY_LENGTH = 16
CLASS_DIR = ".class"
COOKIE_NAME = "tllab_browser"
NAME_MAX = 32
PIN_LENGTHS = (4, 8)
TRIES_PER_MINUTE = 5
PRIVACY_NOTICE = (
    "The lab keeps your name, your photos and your runs on this server for this class only: the teacher sees "
    "them, other students see your name and results on the class board, and the teacher deletes them all at "
    "the end of the class."
)
_NAME_CHARS = re.compile(r"^[\w\- ]+$")  # \w: Unicode letters, digits and "_"


class ClassError(ValueError):
    """A request the class refuses; the message says why, in words for the person who asked."""


def class_key() -> str | None:
    """The teacher's key when class mode is on, else None.

    Raises:
        ClassError: the key is set but too short to be a secret.
    """
    key = environment.text(CLASS_KEY_ENV)
    if not key:
        return None
    if len(key) < MIN_KEY_LENGTH:
        raise ClassError(
            f"{CLASS_KEY_ENV} is set but has {len(key)} characters: a class key needs at least {MIN_KEY_LENGTH}. "
            "Choose a longer one and start the server again."
        )
    return key


def name_key(name: str) -> str:
    """What two names are compared by: NFKC, case-folded, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def checked_name(name: str) -> str:
    """The display name as it will be shown (spaces collapsed), or ClassError saying what is wrong."""
    shown = " ".join(unicodedata.normalize("NFKC", name or "").split())
    if not shown:
        raise ClassError("Type your name to join.")
    if len(shown) > NAME_MAX:
        raise ClassError(f"A name has at most {NAME_MAX} characters; this one has {len(shown)}.")
    if not _NAME_CHARS.match(shown):
        raise ClassError("A name may hold letters, digits, spaces, - and _ only.")
    return shown


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _pin_hash(pin: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), 100_000).hex()


def keys_match(given: str, key: str) -> bool:
    """The teacher's key, compared in constant time."""
    return hmac.compare_digest(given.encode(), key.encode())


class TryLimit:
    """At most `tries` attempts in any `per_s` seconds (one per session: a key or PIN guesser waits)."""

    def __init__(self, tries: int = TRIES_PER_MINUTE, per_s: float = 60.0) -> None:
        self.tries, self.per_s = tries, per_s
        self._times: deque[float] = deque()

    def wait_s(self, now: float | None = None) -> float:
        """0 when a try is allowed now (and counts it), else the seconds until the next one is."""
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0] >= self.per_s:
            self._times.popleft()
        if len(self._times) >= self.tries:
            return self.per_s - (now - self._times[0])
        self._times.append(now)
        return 0.0


@dataclass
class Student:
    """One person of the class as the roster keeps them."""

    owner: str  # opaque id: the folder names and run records use it, never the name
    name: str
    joined: float
    teacher: bool = False
    browsers: list[str] = field(default_factory=list)  # SHA-256 of each browser's token
    pin_salt: str = ""
    pin_hash: str = ""

    @property
    def actor(self) -> Actor:
        return Actor(self.owner, teacher=self.teacher)


_PARSED: dict[str, tuple[tuple[str, int, int], list[Student]]] = {}  # path -> (version, people)
_LOCK = threading.Lock()  # one roster file per runs folder; writes from every session go through this


class Roster:
    """The class's people, in `<runs folder>/.class/roster.json`."""

    def __init__(self, runs_root: str | Path | None = None) -> None:
        self.path = Path(runs_root if runs_root is not None else default_runs_dir()) / CLASS_DIR / "roster.json"

    # -- reading and writing --

    def _read(self) -> list[Student]:
        """The roster as on disk, parsed once per version of the file: every script run of every session
        asks who its browser is, and the file changes only when someone joins or the teacher acts."""
        try:
            stat = self.path.stat()
        except OSError:
            return []
        version = (str(self.path), stat.st_mtime_ns, stat.st_size)
        if _PARSED.get(version[0], (None,))[0] != version:
            try:
                rows = json.loads(self.path.read_text())
            except (OSError, ValueError):
                return []
            _PARSED[version[0]] = (version, [Student(**row) for row in rows if isinstance(row, dict)])
        return [replace(p) for p in _PARSED[version[0]][1]]  # fresh objects: callers change them

    def _write(self, people: list[Student]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps([asdict(p) for p in people], indent=1))

    def people(self) -> list[Student]:
        """Everyone who joined, in the order they joined.

        No lock: the file is replaced whole (atomic_write), and thirty sessions' every script run asks; behind
        a join's fsync they queued up (py-spy, bench/classroom_load.py --own-data's arrival).
        """
        return self._read()

    def who(self, token: str | None) -> Student | None:
        """The person this browser joined as, if any."""
        if not token:
            return None
        digest = token_hash(token)
        return next((p for p in self.people() if digest in p.browsers), None)

    def by_owner(self, owner: str) -> Student | None:
        return next((p for p in self.people() if p.owner == owner), None)

    # -- a student's own actions --

    def join(self, name: str, token: str) -> Student:
        """A new person with this name, on this browser (ClassError when the name is taken or not valid)."""
        shown = checked_name(name)
        with _LOCK:
            people = self._read()
            if any(name_key(p.name) == name_key(shown) for p in people):
                raise ClassError(
                    f"“{shown}” is already in this class. Choose another name, or, if it is you on another "
                    "device, continue with your PIN."
                )
            person = Student(secrets.token_hex(8), shown, time.time(), browsers=[token_hash(token)])
            self._write([*self._without_browser(people, token), person])
        return person

    def leave(self, token: str) -> None:
        """This browser is nobody's any more (a shared computer); the person and their work stay."""
        with _LOCK:
            self._write(self._without_browser(self._read(), token))

    def set_pin(self, owner: str, pin: str) -> None:
        """A short PIN (stored salted and hashed) with which this person continues on a second device."""
        if not (pin.isdigit() and PIN_LENGTHS[0] <= len(pin) <= PIN_LENGTHS[1]):
            raise ClassError(f"A PIN is {PIN_LENGTHS[0]} to {PIN_LENGTHS[1]} digits.")
        salt = secrets.token_hex(16)
        self._change(owner, pin_salt=salt, pin_hash=_pin_hash(pin, salt))

    def continue_as(self, name: str, pin: str, token: str) -> Student:
        """This browser joins the person with this name and PIN (ClassError, the same for any wrong pair)."""
        refused = ClassError("That name and PIN do not match anyone in this class.")
        with _LOCK:
            people = self._without_browser(self._read(), token)
            person = next((p for p in people if name_key(p.name) == name_key(name or "")), None)
            expected = person.pin_hash if person and person.pin_hash else _pin_hash("", "00")
            given = _pin_hash(pin or "", person.pin_salt if person and person.pin_salt else "00")
            if person is None or not person.pin_hash or not hmac.compare_digest(given, expected):
                raise refused
            person.browsers.append(token_hash(token))
            self._write(people)
        return person

    def make_teacher(self, owner: str) -> None:
        """Teacher's rights for this person (after the key was given)."""
        self._change(owner, teacher=True)

    # -- the teacher's actions --

    def rename(self, owner: str, name: str) -> None:
        shown = checked_name(name)
        with _LOCK:
            people = self._read()
            if any(name_key(p.name) == name_key(shown) and p.owner != owner for p in people):
                raise ClassError(f"“{shown}” is already in this class.")
            for person in people:
                if person.owner == owner:
                    person.name = shown
            self._write(people)

    def reset(self, owner: str) -> None:
        """Sign the person out of every browser and forget their PIN; their work stays."""
        self._change(owner, browsers=[], pin_salt="", pin_hash="")

    def remove(self, owner: str) -> None:
        """Take the person off the roster (their data is deleted by the caller: tlcore.class_data)."""
        with _LOCK:
            self._write([p for p in self._read() if p.owner != owner])

    def clear(self) -> None:
        with _LOCK:
            self.path.unlink(missing_ok=True)

    # -- helpers --

    def _change(self, owner: str, **fields: str | bool | list[str]) -> None:
        with _LOCK:
            people = self._read()
            for person in people:
                if person.owner == owner:
                    for key, value in fields.items():
                        setattr(person, key, value)
            self._write(people)

    @staticmethod
    def _without_browser(people: list[Student], token: str) -> list[Student]:
        digest = token_hash(token)
        for person in people:
            person.browsers = [b for b in person.browsers if b != digest]
        return people


class ClassSettings:
    """The teacher's choices for the whole class (`.class/settings.json`): names shown on the results,
    the assignment, the limits. A file that cannot be read counts as none chosen."""

    def __init__(self, runs_root: str | Path | None = None) -> None:
        self.path = Path(runs_root if runs_root is not None else default_runs_dir()) / CLASS_DIR / "settings.json"

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def update(self, **values: JSONValue) -> None:
        with _LOCK:
            merged = {**self.load(), **values}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(merged, indent=1, sort_keys=True))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Assignment:
    """One student's part of the class experiment: a freeze point and where the weights start."""

    freeze_at: int
    pretrained: bool

    def describe(self) -> str:
        return f"freeze at {self.freeze_at}, {'ImageNet' if self.pretrained else 'random'} weights"


def spread_assignments(owners: list[str], freeze_points: list[int], pretrained: list[bool]) -> dict[str, Assignment]:
    """Every (weights, freeze point) pair in turn over the students, so each pair gets as many as can be."""
    pairs = [(p, k) for p in pretrained for k in freeze_points]
    if not pairs:
        raise ClassError("Choose at least one freeze point and one kind of weights.")
    return {owner: Assignment(pairs[i % len(pairs)][1], pairs[i % len(pairs)][0]) for i, owner in enumerate(owners)}


def assignment_of(settings: ClassSettings, owner: str) -> Assignment | None:
    """This student's assignment, if the teacher spread one."""
    row = (settings.load().get("assignment") or {}).get(owner)
    if not isinstance(row, dict):
        return None
    return Assignment(int(row.get("freeze_at", 18)), bool(row.get("pretrained", True)))


def delete_owner_data(runs_root: str | Path, owner: str) -> list[str]:
    """Delete everything the lab keeps for `owner` under the runs folder: runs (not one still training),
    photos, kept settings. Returns the ids of the runs left because they are still training."""
    from tlcore.owner_settings import OwnerSettings
    from tlcore.photos import PhotoStore
    from tlcore.runs import RunStore

    PhotoStore(owner, runs_root).delete_all()
    store = RunStore(runs_root)
    mine = [s.run_id for s in store.list() if s.record.owner == owner]
    _, still_training = store.delete_finished(mine)
    OwnerSettings(runs_root).delete(owner)
    return still_training
