"""Extract an uploaded .zip of class folders safely.

Untrusted archives: every entry lands inside a fresh folder or the whole
upload is refused and nothing is kept. Limits are enforced on bytes actually
written (an archive can lie about its sizes): total size, number of entries
and compression ratio (zip bombs), per entry and against the archive's real
size. Absolute paths, `..` entries and links are refused (zip slip).
Removing the folders once unused is `tlcore.upload_cleanup`'s job.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tlcore import environment
from tlcore.environment import UPLOAD_DIR_ENV
from tlcore.fileio import atomic_write

MAX_TOTAL_BYTES = 1 << 30
MAX_FILES = 20_000
MAX_RATIO = 200  # uncompressed / compressed, per entry and overall
# Below this many bytes written the ratio is not checked: a small blank image
# or text file may legitimately compress 1000x.
RATIO_FREE_BYTES = 1 << 20
EXTRACTION_PREFIX = "tllab-upload-"
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


def upload_root(dest_root: str | os.PathLike | None = None) -> Path:
    """Where extraction folders go: dest_root, else $TLLAB_UPLOAD_DIR, else the system temp folder."""
    return Path(dest_root or environment.text(UPLOAD_DIR_ENV) or tempfile.gettempdir())


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
    folder = upload_root(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"tllab-upload-{hashlib.sha256(data).hexdigest()[:16]}.keras"
    if not path.exists():
        atomic_write(path, data)
    return path
