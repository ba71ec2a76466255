"""Extract an uploaded .zip of class folders safely.

Untrusted archives: every entry lands inside a fresh folder or the whole
upload is refused and nothing is kept. Limits are enforced on bytes actually
written (an archive can lie about its sizes): total size, number of entries
and compression ratio (zip bombs), per entry and against the archive's real
size. Absolute paths, `..` entries and links are refused (zip slip).

Extraction folders do not outlive their use: `ExtractionTracker` removes the
folder of a session that has ended (or whose dataset was replaced) once no
running job reads it, and `remove_leftovers` removes, at server start, those
a previous server left behind. Only a folder this module made is ever removed:
a real folder (not a link) named EXTRACTION_PREFIX + mkdtemp's 8 random
characters, owned by this user; anything else is left alone.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tlcore.access import Actor
from tlcore.fileio import atomic_write

MAX_TOTAL_BYTES = 1 << 30
MAX_FILES = 20_000
MAX_RATIO = 200  # uncompressed / compressed, per entry and overall
# Below this many bytes written the ratio is not checked: a small blank image
# or text file may legitimately compress 1000x.
RATIO_FREE_BYTES = 1 << 20
UPLOAD_DIR_ENV = "TLLAB_UPLOAD_DIR"
EXTRACTION_PREFIX = "tllab-upload-"
# The whole name of a folder extract_zip made: the prefix, then tempfile.mkdtemp's 8 random characters.
_EXTRACTION_NAME = re.compile(re.escape(EXTRACTION_PREFIX) + r"[a-z0-9_]{8}")
# An uploaded model's copy (save_uploaded_model): named by its content, removed like an extraction.
_UPLOADED_MODEL_NAME = re.compile(re.escape(EXTRACTION_PREFIX) + r"[0-9a-f]{16}\.keras")
LEFTOVER_AGE_S = 24 * 3600  # an extraction folder no session of this server owns is removed after a day
_CHUNK = 1 << 16
# What zipfile and its decompressors raise for corrupt, encrypted or exotic entries.
_EXTRACT_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, RuntimeError, NotImplementedError)


class UploadError(Exception):
    """An upload that was refused; the message says which entry and why."""


def extract_zip(
    source: str | os.PathLike | BinaryIO,
    dest_root: str | os.PathLike | None = None,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_files: int = MAX_FILES,
    max_ratio: float = MAX_RATIO,
    name_hint: str = "",
) -> Path:
    """Extract into a new folder under dest_root; returns the dataset root inside it.

    When the archive holds a single top-level folder (the usual result of
    zipping a folder), that folder is returned.

    Args:
        dest_root: default $TLLAB_UPLOAD_DIR, else the system temp folder.
        max_files: entries (files and folders) at most.
        name_hint: the upload's name, for messages about a file object.

    Raises:
        UploadError: not a zip, empty, or an entry breaks a rule; nothing is kept.
    """
    root = upload_root(dest_root)
    root.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix=EXTRACTION_PREFIX, dir=root)).resolve()
    try:
        _extract_into(source, dest, max_total_bytes, max_files, max_ratio, name_hint)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    entries = [p for p in dest.iterdir() if p.name != "__MACOSX" and not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def remove_extracted(dataset_root: str | os.PathLike) -> bool:
    """Delete the extraction folder `extract_zip` made for this dataset root; True if one was removed.

    Only a folder this module created (its name prefix, the root or its
    parent) is ever removed, whatever path it is given.
    """
    extraction = extraction_folder(dataset_root)
    return extraction is not None and _remove(extraction)


def upload_root(dest_root: str | os.PathLike | None = None) -> Path:
    """Where extraction folders go: dest_root, else $TLLAB_UPLOAD_DIR, else the system temp folder."""
    return Path(dest_root or os.environ.get(UPLOAD_DIR_ENV) or tempfile.gettempdir())


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


def _safe_member_path(name: str) -> PurePosixPath:
    """The entry's path relative to the extraction folder, or UploadError for zip slip."""
    normalized = name.replace("\\", "/")  # archives made on Windows may use either separator
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise UploadError(f"Refused the archive: entry {name!r} has an absolute path.")
    path = PurePosixPath(normalized)
    if ".." in path.parts:
        raise UploadError(f"Refused the archive: entry {name!r} points outside the archive ('..').")
    return path


def _archive_size(source: str | os.PathLike | BinaryIO) -> int:
    if isinstance(source, (str, os.PathLike)):
        return os.path.getsize(source)
    position = source.seek(0, os.SEEK_END)
    source.seek(0)
    return position


def _extract_into(
    source: str | os.PathLike | BinaryIO,
    dest: Path,
    max_total_bytes: int,
    max_files: int,
    max_ratio: float,
    name_hint: str,
) -> None:
    label = name_hint or (str(source) if isinstance(source, (str, os.PathLike)) else "The upload")
    try:
        # The real size, not the sum of declared compressed sizes: entries may
        # overlap or declare more than they hold.
        archive_size = max(_archive_size(source), 1)
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise UploadError(f"{label} is not a readable .zip file ({err}).") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > max_files:
            raise UploadError(f"Refused the archive: {len(infos)} entries, more than the limit of {max_files}.")
        written_total = 0
        for info in infos:
            target = _checked_target(info, dest)
            if info.is_dir():
                _make_dirs(target, info.filename)
                continue
            _make_dirs(target.parent, info.filename)
            try:
                with archive.open(info) as src, open(target, "xb") as out:
                    written = 0
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        written_total += len(chunk)
                        _check_limits(info, written, written_total, archive_size, max_total_bytes, max_ratio)
                        out.write(chunk)
            except FileExistsError:
                raise UploadError(f"Refused the archive: entry {info.filename!r} appears twice.") from None
            except _EXTRACT_ERRORS as err:
                raise UploadError(f"{label}: entry {info.filename!r} cannot be extracted ({err}).") from None
            except OSError as err:
                reason = err.strerror or err
                raise UploadError(f"{label}: entry {info.filename!r} cannot be written ({reason}).") from None
        if not any(not info.is_dir() for info in infos):
            raise UploadError(f"{label} contains no files.")


def _checked_target(info: zipfile.ZipInfo, dest: Path) -> Path:
    """Where the entry goes; refuses absolute paths, `..`, links and names that resolve outside dest."""
    relative = _safe_member_path(info.filename)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UploadError(f"Refused the archive: entry {info.filename!r} is a symbolic link; links are not allowed.")
    target = (dest / relative).resolve()
    if target == dest:
        raise UploadError(f"Refused the archive: entry {info.filename!r} has no file name.")
    if dest not in target.parents:
        raise UploadError(f"Refused the archive: entry {info.filename!r} would be written outside its folder.")
    return target


def _make_dirs(folder: Path, entry: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # e.g. a file entry of the same name came first
        raise UploadError(
            f"Refused the archive: entry {entry!r} needs folder {folder.name!r}, "
            f"which cannot be made ({err.strerror or err})."
        ) from None


def _check_limits(
    info: zipfile.ZipInfo, written: int, written_total: int, archive_size: int, max_total_bytes: int, max_ratio: float
) -> None:
    """Raise once the bytes written so far break a limit (called before each chunk is written)."""
    if written_total > max_total_bytes:
        raise UploadError(
            f"Refused the archive: at entry {info.filename!r} it expands to more than "
            f"{max_total_bytes / 2**20:,.1f} MiB (zip bomb?)."
        )
    if written > RATIO_FREE_BYTES and written / max(info.compress_size, 1) > max_ratio:
        raise UploadError(f"Refused the archive: entry {info.filename!r} expands more than {max_ratio:g}x (zip bomb?).")
    if written_total > RATIO_FREE_BYTES and written_total / archive_size > max_ratio:
        raise UploadError(
            f"Refused the archive: at entry {info.filename!r} it expands more than "
            f"{max_ratio:g}x its size overall (zip bomb?)."
        )


# --- an uploaded model file -----------------------------------------------------------


def save_uploaded_model(data: bytes, folder: str | os.PathLike | None = None) -> Path:
    """Save an uploaded .keras file under a name made from its content, once.

    The same upload always gets the same path, so a cache keyed on the path
    reuses the model already loaded.

    Args:
        folder: where to save; default $TLLAB_UPLOAD_DIR, else the system temp folder.
    """
    folder = Path(folder or os.environ.get(UPLOAD_DIR_ENV) or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"tllab-upload-{hashlib.sha256(data).hexdigest()[:16]}.keras"
    if not path.exists():
        atomic_write(path, data)
    return path
