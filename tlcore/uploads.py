"""Extract an uploaded .zip of class folders safely.

Untrusted archives: every entry lands inside a fresh folder or the whole
upload is refused. Limits are enforced on bytes actually written (an archive
can lie about its sizes): total size, number of files and compression ratio
(zip bombs). Absolute paths, `..` entries and links are refused (zip slip).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

MAX_TOTAL_BYTES = 1 << 30
MAX_FILES = 20_000
MAX_RATIO = 200  # uncompressed / compressed, per entry and overall
UPLOAD_DIR_ENV = "TLLAB_UPLOAD_DIR"
_CHUNK = 1 << 16


class UploadError(Exception):
    """An upload that was refused; the message says which entry and why."""


def _safe_member_path(name: str) -> PurePosixPath:
    normalized = name.replace("\\", "/")
    path = PurePosixPath(normalized)
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise UploadError(f"Refused the archive: entry {name!r} has an absolute path.")
    if any(part == ".." for part in path.parts):
        raise UploadError(f"Refused the archive: entry {name!r} points outside the archive ('..').")
    return path


def extract_zip(
    source: str | os.PathLike | BinaryIO,
    dest_root: str | os.PathLike | None = None,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_files: int = MAX_FILES,
    max_ratio: float = MAX_RATIO,
    name_hint: str = "",
) -> Path:
    """Extract into a new folder; returns the dataset root inside it.

    When the archive holds a single top-level folder (the usual result of
    zipping a folder), that folder is returned.

    Raises:
        UploadError: not a zip, or an entry breaks a rule; nothing is kept.
    """
    root = Path(dest_root or os.environ.get(UPLOAD_DIR_ENV) or tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="tllab-upload-", dir=root)).resolve()
    try:
        _extract_into(source, dest, max_total_bytes, max_files, max_ratio, name_hint)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    entries = [p for p in dest.iterdir() if p.name != "__MACOSX" and not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def _extract_into(
    source: str | os.PathLike | BinaryIO, dest: Path, max_total_bytes: int, max_files: int,
    max_ratio: float, name_hint: str,
) -> None:
    label = name_hint or (str(source) if isinstance(source, (str, os.PathLike)) else "upload")
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as err:
        raise UploadError(f"{label} is not a readable .zip file ({err}).") from None
    written_total = 0
    compressed_total = 0
    files = 0
    with archive:
        for info in archive.infolist():
            relative = _safe_member_path(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UploadError(f"Refused the archive: entry {info.filename!r} is a link; links are not allowed.")
            target = (dest / relative).resolve()
            if dest != target and dest not in target.parents:
                raise UploadError(f"Refused the archive: entry {info.filename!r} would be written outside.")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            files += 1
            if files > max_files:
                raise UploadError(f"Refused the archive: more than {max_files} files.")
            target.parent.mkdir(parents=True, exist_ok=True)
            compressed_total += max(info.compress_size, 1)
            written = 0
            try:
                with archive.open(info) as src, open(target, "xb") as out:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        written_total += len(chunk)
                        if written_total > max_total_bytes:
                            raise UploadError(
                                f"Refused the archive: it expands to more than {max_total_bytes / 2**20:.0f} MiB."
                            )
                        if written > 1 << 20 and written / max(info.compress_size, 1) > max_ratio:
                            raise UploadError(
                                f"Refused the archive: entry {info.filename!r} expands more than {max_ratio:g}x "
                                "(zip bomb?)."
                            )
                        out.write(chunk)
            except FileExistsError:
                raise UploadError(f"Refused the archive: entry {info.filename!r} appears twice.") from None
            except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as err:
                raise UploadError(f"{label}: entry {info.filename!r} cannot be extracted ({err}).") from None
        if written_total > 1 << 20 and written_total / compressed_total > max_ratio:
            raise UploadError(f"Refused the archive: it expands more than {max_ratio:g}x overall (zip bomb?).")

