"""Listing a dataset folder safely: links followed once, no loops, and a deadline for trees too large.

`Walker` lists what `scan` reads; `tree_stamp` is a cheap stamp that changes when any folder under a root does.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore.data_problems import DatasetError, SkippedFile, display_path
from tlcore.imageio import has_image_extension

if TYPE_CHECKING:  # the walker records into a scan's description
    from tlcore.data import DatasetInfo

_ALWAYS_IGNORED_DIRS = {"__macosx", "__pycache__", ".ipynb_checkpoints"}
# Listing a dataset's folders takes milliseconds; a system folder (/proc, /usr) or a whole disk takes minutes.
MAX_WALK_SECONDS = 5.0
MAX_STAMP_FOLDERS = 5_000  # tree_stamp reads at most this many folders


class Walker:
    """Directory walking that follows links once, never loops, keeps score and gives up at a deadline."""

    def __init__(self, root: Path, seconds: float = MAX_WALK_SECONDS) -> None:
        self._seen_dirs: set[tuple[int, int]] = set()
        self.root, self._deadline, self._seconds = root, time.monotonic() + seconds, seconds
        self._listed = 0

    def _in_time(self) -> None:
        """Refuse a tree too large to be a dataset (a system folder, a whole disk) instead of walking it for minutes."""
        if time.monotonic() > self._deadline:
            raise DatasetError(
                f"{display_path(self.root)} is too large to be an image folder: after {self._seconds:.0f} s "
                f"{self._listed:,} folders were listed and the scan was not done. Choose the folder that holds "
                "one sub-folder per class (or train/ and validation/)."
            )

    def subdirs(self, folder: Path) -> list[Path]:
        self._in_time()
        return sorted(p for p in _entries(folder) if _is_dir(p) and not _hidden(p))

    def images_under(self, class_dir: Path, info: DatasetInfo) -> list[Path]:
        """Image candidates anywhere under a class folder (sub-folders included)."""
        found: list[Path] = []
        self._walk(class_dir, info, found)
        return sorted(found)

    def ignore_tree(self, folder: Path, info: DatasetInfo) -> None:
        ignored: list[Path] = []
        self._walk(folder, info, ignored)
        info.ignored.extend(ignored)

    def ignore_loose_files(self, folder: Path, info: DatasetInfo) -> None:
        """Files that sit beside the class folders belong to no class."""
        info.ignored.extend(p for p in _entries(folder) if not _is_dir(p))
        for d in _entries(folder):
            if _is_dir(d) and _hidden(d):
                self.ignore_tree(d, info)

    def _walk(self, folder: Path, info: DatasetInfo, found: list[Path]) -> None:
        self._in_time()
        self._listed += 1
        try:
            st = folder.stat()
        except OSError as err:
            info.skipped.append(SkippedFile(folder, _dir_error(err)))
            return
        key = (st.st_dev, st.st_ino)
        if key in self._seen_dirs:
            # A warning, not a skipped file: the link is a folder, and its
            # files are already counted where they really are, so
            # loaded + skipped + ignored still equals the files on disk.
            info.warnings.append(
                f"Folder {display_path(folder)} links to a folder already scanned (link loop or duplicate); "
                "its images are counted once."
            )
            return
        self._seen_dirs.add(key)
        for entry in _entries(folder, info):
            if _is_dir(entry):
                if _hidden(entry):
                    self.ignore_tree(entry, info)
                else:
                    self._walk(entry, info, found)
            elif _hidden(entry) or not has_image_extension(entry):
                info.ignored.append(entry)
            else:
                found.append(entry)


def _entries(folder: Path, info: DatasetInfo | None = None) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as err:
        if info is not None:
            info.skipped.append(SkippedFile(folder, _dir_error(err)))
        return []


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a link loop reads as "not a folder"; the file check reports it
        return False


def _hidden(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in _ALWAYS_IGNORED_DIRS


def _dir_error(err: OSError) -> str:
    if isinstance(err, PermissionError):
        return "cannot read folder: permission denied"
    if err.errno == 40:
        return "symbolic link loop"
    return f"cannot read folder ({err.strerror or err})"


def tree_stamp(
    root: str | os.PathLike, within: str | os.PathLike | None = None, max_folders: int = MAX_STAMP_FOLDERS
) -> str:
    """A cheap stamp of a dataset folder that changes when an image is added, removed or renamed anywhere under it.

    Adding, removing or renaming a file changes the mtime of the folder that
    holds it, not of the folders above it; so the stamp is a hash of the
    mtimes of every folder under `root` (root, split, class and nested
    folders), found with os.scandir. Files are never opened or stat'ed: the
    cost is one directory listing per folder, and at most `max_folders`
    folders are read (a change only below that many is noticed when the
    root changes). An image rewritten in place under the same name keeps
    the stamp. Links to folders are followed as `scan` follows them, once,
    and, with `within`, only when they lead inside that folder (a fenced
    data root is never listed outside).
    """
    root = Path(root)
    fence = Path(within).resolve() if within else None
    digest = hashlib.sha256()
    seen: set[tuple[int, int]] = set()
    pending = [root]
    while pending and len(seen) < max_folders:
        folder = pending.pop()
        try:
            info = folder.stat()
        except OSError:
            digest.update(f"{folder}|unreadable\n".encode(errors="surrogateescape"))
            continue
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        digest.update(f"{folder}|{info.st_mtime_ns}\n".encode(errors="surrogateescape"))
        try:
            with os.scandir(folder) as entries:
                subfolders = [entry.path for entry in entries if _stamp_follows(entry, fence)]
        except OSError:
            continue
        pending.extend(Path(p) for p in sorted(subfolders, reverse=True))  # same order every time
    return digest.hexdigest()[:16]


def _stamp_follows(entry: os.DirEntry, fence: Path | None) -> bool:
    """Whether tree_stamp reads this entry: a folder, through a link only inside the fence."""
    try:
        if not entry.is_dir():
            return False
        if entry.is_symlink() and fence is not None:
            target = Path(entry.path).resolve()
            return target == fence or fence in target.parents
    except OSError:
        return False
    return True
