"""Removing what uploads leave behind: the folders extract_zip made and uploaded models' copies.

`ExtractionTracker` records each with the session that owns it and removes it once unused;
`remove_leftovers` clears what a previous server left. Only what tlcore.uploads made is ever removed.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tlcore.access import Actor
from tlcore.uploads import EXTRACTION_PREFIX, upload_root

# The whole name of a folder extract_zip made: the prefix, then tempfile.mkdtemp's 8 random characters.
_EXTRACTION_NAME = re.compile(re.escape(EXTRACTION_PREFIX) + r"[a-z0-9_]{8}")
# An uploaded model's copy (save_uploaded_model): named by its content, removed like an extraction.
_UPLOADED_MODEL_NAME = re.compile(re.escape(EXTRACTION_PREFIX) + r"[0-9a-f]{16}\.keras")
LEFTOVER_AGE_S = 24 * 3600  # an extraction folder no session of this server owns is removed after a day


def remove_extracted(dataset_root: str | os.PathLike) -> bool:
    """Delete the extraction folder `extract_zip` made for this dataset root; True if one was removed.

    Only a folder extract_zip created (its name prefix, the root or its
    parent) is ever removed, whatever path it is given.
    """
    extraction = extraction_folder(dataset_root)
    return extraction is not None and _remove(extraction)


def extraction_folder(dataset_root: str | os.PathLike) -> Path | None:
    """The folder extract_zip made that holds this dataset root (the root itself or its parent), or None."""
    root = Path(os.path.abspath(dataset_root))
    return next((p for p in (root, root.parent) if is_app_extraction(p)), None)


def is_app_extraction(folder: str | os.PathLike) -> bool:
    """Whether `folder` is one extract_zip made: a real folder (a link is not followed), its exact name
    pattern, owned by this user. Nothing else is ever removed."""
    folder = Path(folder)
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and _EXTRACTION_NAME.fullmatch(folder.name) is not None
        and info.st_uid == os.geteuid()
    )


def is_uploaded_model(path: str | os.PathLike) -> bool:
    """Whether `path` is a copy save_uploaded_model made: a plain file of its name pattern, owned by this user."""
    path = Path(path)
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISREG(info.st_mode)
        and _UPLOADED_MODEL_NAME.fullmatch(path.name) is not None
        and (info.st_uid == os.geteuid())
    )


def _remove(upload: Path) -> bool:
    """Remove an extraction folder (links inside it removed, never followed) or an uploaded model's copy."""
    if is_uploaded_model(upload):
        upload.unlink(missing_ok=True)
        return not upload.exists()
    if not is_app_extraction(upload):
        return False
    shutil.rmtree(upload, ignore_errors=True)
    return not upload.exists()


def remove_leftovers(
    dest_root: str | os.PathLike | None = None,
    max_age_s: float = LEFTOVER_AGE_S,
    keep: Callable[[Path], bool] = lambda folder: False,
    now: float | None = None,
) -> list[Path]:
    """Remove extraction folders and uploaded models' copies in the upload folder last modified more than
    max_age_s ago (server start).

    Only the upload folder's own entries are looked at (never below them,
    never through a link), and only what extract_zip and save_uploaded_model made is removed.

    Returns:
        The folders removed.
    """
    cutoff = (time.time() if now is None else now) - max_age_s
    removed = []
    try:
        with os.scandir(upload_root(dest_root)) as entries:
            candidates = [
                Path(e.path)
                for e in entries
                if _EXTRACTION_NAME.fullmatch(e.name) or _UPLOADED_MODEL_NAME.fullmatch(e.name)
            ]
    except OSError:  # no upload folder yet: nothing left over
        return []
    for folder in sorted(candidates):
        try:
            old = os.lstat(folder).st_mtime < cutoff
        except OSError:
            continue
        if old and not keep(folder) and _remove(folder):
            removed.append(folder)
    return removed


@dataclass
class _Tracked:
    session: str  # the dashboard session that uploaded it
    owner: str  # whose training jobs may read its images
    created: float
    released: bool = False  # its session moved on to another dataset


class ExtractionTracker:
    """The extraction folders this server made, each with the session that owns it; thread-safe.

    `sweep` removes a folder once its session has ended, or it was released,
    and no running job of its owner reads it. Whether a session lives is asked
    of the dashboard (a callable): True, False, or None when it cannot tell;
    then the folder goes once older than max_age_s.
    """

    def __init__(self) -> None:
        self._folders: dict[Path, _Tracked] = {}
        self._lock = threading.Lock()
        self._last_sweep = float("-inf")

    def track(self, dataset_root: str | os.PathLike, session: str, owner: str) -> None:
        """Record the extraction folder of a dataset root extract_zip returned."""
        folder = extraction_folder(dataset_root)
        if folder is not None:
            with self._lock:
                self._folders[folder] = _Tracked(session, owner, time.time())

    def track_model(self, path: str | os.PathLike, session: str, owner: str) -> None:
        """Record an uploaded model's copy (save_uploaded_model), removed like an extraction once unused."""
        if is_uploaded_model(path):
            with self._lock:
                self._folders[Path(path)] = _Tracked(session, owner, time.time())

    def may_read(self, dataset_root: str | os.PathLike, actor: Actor) -> bool:
        """Whether `actor` may read this uploaded dataset: its uploader's (tlcore.access; a folder not
        tracked is no student's). A refusal reads as no upload at all."""
        folder = extraction_folder(dataset_root)
        with self._lock:
            entry = self._folders.get(folder) if folder is not None else None
        return actor.may_use(entry.owner if entry is not None else None)

    def release(self, dataset_root: str | os.PathLike) -> None:
        """The session no longer shows this dataset: remove it at the next sweep its jobs allow."""
        folder = extraction_folder(dataset_root)
        with self._lock:
            if folder in self._folders:
                self._folders[folder].released = True

    def folders(self) -> list[Path]:
        with self._lock:
            return sorted(self._folders)

    def sweep_due(self, every_s: float, now: float | None = None) -> bool:
        """True at most once per every_s seconds (for callers that run often, such as page reruns)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._last_sweep < every_s:
                return False
            self._last_sweep = now
            return True

    def sweep(
        self,
        session_alive: Callable[[str], bool | None],
        in_use: Callable[[str], bool],
        max_age_s: float = LEFTOVER_AGE_S,
        now: float | None = None,
    ) -> list[Path]:
        """Remove the folders no session needs any more; returns those removed.

        Args:
            session_alive: session id -> True (connected or may reconnect), False (ended), None (unknown).
            in_use: owner -> whether a running job of that owner may read its images.
        """
        now = time.time() if now is None else now
        with self._lock:
            tracked = list(self._folders.items())
        removed = []
        for folder, entry in tracked:
            if not folder.exists():
                self._forget(folder)
                continue
            alive = session_alive(entry.session)
            done = entry.released or alive is False or (alive is None and now - entry.created > max_age_s)
            if done and not in_use(entry.owner) and _remove(folder):
                self._forget(folder)
                removed.append(folder)
        return removed

    def remove_all(self) -> list[Path]:
        """Remove every tracked folder (the server is stopping: every session ends with it)."""
        removed = [folder for folder in self.folders() if _remove(folder)]
        for folder in removed:
            self._forget(folder)
        return removed

    def _forget(self, folder: Path) -> None:
        with self._lock:
            self._folders.pop(folder, None)
