"""Scan an image folder into a dataset description; choose grid samples.

The tf.data pipeline over a scanned dataset is `tlcore.tf.pipeline`.

Layouts understood:
    root/<split>/<class>/...   splits named train/training/training-data and
                               validation/val/test/testing/testing-data
    root/<class>/...           a seeded, stratified validation split is drawn
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlcore.imageio import DEFAULT_MAX_PIXELS, ImageProblem, has_image_extension, open_rgb

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)
_SPLIT_ALIASES = {
    TRAIN: {"train", "training", "training-data", "training_data", "train-data", "train_data"},
    VALIDATION: {"validation", "val", "valid", "validation-data", "validation_data", "val-data", "val_data", "dev"},
    TEST: {"test", "testing", "testing-data", "testing_data", "test-data", "test_data"},
}
_ALWAYS_IGNORED_DIRS = {"__macosx", "__pycache__", ".ipynb_checkpoints"}
_VERIFY_SIZE = 64  # decode scale used to check an image while scanning
# Listing a dataset's folders takes milliseconds; a system folder (/proc, /usr) or a whole disk takes minutes.
MAX_WALK_SECONDS = 5.0
NAME_NOT_UTF8 = "file or folder name is not valid UTF-8 (rename it)"


def display_path(path: str | os.PathLike) -> str:
    """A path as text any UTF-8 output accepts: name bytes that are not UTF-8 show as U+FFFD.

    Python keeps such bytes as lone surrogates, which Streamlit, Arrow and
    strict UTF-8 streams all refuse.
    """
    return os.fsencode(path).decode("utf-8", "replace")


class DatasetError(Exception):
    """A dataset that cannot be used for training; the message says why and where.

    `info` holds what the scan found so far (skipped files etc.), when any.
    """

    def __init__(self, message: str, info: DatasetInfo | None = None):
        super().__init__(message)
        self.info = info


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str


@dataclass
class DatasetInfo:
    """What a scan found: classes, usable files per split, and what was left out.

    files[split][class_name] lists usable image paths, sorted. Splits are
    always named train / validation (and test for held-out data), whatever
    the folders were called.
    """

    root: Path
    layout: str  # "splits" or "folders" (class folders, split drawn here)
    class_names: list[str]
    files: dict[str, dict[str, list[Path]]]
    skipped: list[SkippedFile] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    split_folders: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: number of usable images}} for the splits present."""
        return {
            split: {name: len(self.files[split].get(name, [])) for name in self.class_names}
            for split in SPLITS
            if split in self.files
        }

    def class_counts(self, split: str) -> list[int]:
        """Usable images of each class in a split, in class order (zeros for a split not present)."""
        return [len(self.files.get(split, {}).get(name, [])) for name in self.class_names]

    def items(self, split: str) -> tuple[list[Path], list[int]]:
        """Paths and integer labels of a split, in class order then file order."""
        paths, labels = [], []
        for label, name in enumerate(self.class_names):
            for path in self.files.get(split, {}).get(name, []):
                paths.append(path)
                labels.append(label)
        return paths, labels

    def num_images(self, split: str | None = None) -> int:
        splits = [split] if split else list(self.files)
        return sum(len(v) for s in splits for v in self.files.get(s, {}).values())

    @property
    def files_on_disk(self) -> int:
        return self.num_images() + len(self.skipped) + len(self.ignored)

    def fingerprint(self) -> str:
        """A short hash of every usable file's relative path, size and mtime."""
        digest = hashlib.sha256()
        for split in sorted(self.files):
            for name in sorted(self.files[split]):
                for path in self.files[split][name]:
                    stat = path.stat()
                    rel = os.path.relpath(path, self.root)
                    digest.update(f"{split}|{name}|{rel}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def to_report(self) -> dict:
        """A JSON-ready summary (the CLI's `scan --json`)."""
        return {
            "root": str(self.root),
            "layout": self.layout,
            "classes": list(self.class_names),
            "counts": self.counts(),
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in self.skipped],
            "ignored": len(self.ignored),
            "warnings": list(self.warnings),
        }


def scan(
    root: str | os.PathLike,
    validation_split: float = 0.2,
    seed: int = 1337,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    verify: bool = True,
    max_walk_seconds: float = MAX_WALK_SECONDS,
) -> DatasetInfo:
    """Scan an image folder into a `DatasetInfo`.

    Every candidate image is decoded once (at reduced scale where possible),
    so unreadable, truncated, non-image and oversized files (and names that
    are not valid UTF-8) are reported in `skipped` with a reason instead of
    failing later. Hidden files, `__MACOSX` folders and files without an
    image extension are counted in `ignored`.

    Args:
        root: the dataset folder.
        validation_split: fraction held out per class when the folder has no
            split folders of its own.
        seed: seed of that split.
        max_pixels: images above this many pixels are skipped.
        verify: decode every image while scanning (turn off only for
            folders already known to be clean).
        max_walk_seconds: listing the folders takes at most this long; a larger tree is refused.

    Raises:
        DatasetError: the folder is missing, too large to list in time, or cannot train (fewer than two
            usable classes, or a class without any usable image).
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"Dataset folder not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"Dataset path is a file, not a folder: {root}")
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be between 0 and 1. Received: {validation_split}")

    walker = _Walker(root, max_walk_seconds)
    top_dirs = walker.subdirs(root)
    split_dirs = _match_splits(top_dirs)
    if not split_dirs and _match_splits(top_dirs, need_train=False):
        names = ", ".join(d.name for d in _match_splits(top_dirs, need_train=False).values())
        raise DatasetError(f"{root} has split folders ({names}) but no train folder (train/ or training/).")
    info = DatasetInfo(root=root, layout="splits" if TRAIN in split_dirs else "folders", class_names=[], files={})

    # class_dirs[split] = {class name: [folders holding that class]}
    candidates: dict[str, dict[str, list[Path]]] = {}
    if info.layout == "splits":
        info.split_folders = {split: d.name for split, d in split_dirs.items()}
        for d in top_dirs:
            if d not in split_dirs.values():
                walker.ignore_tree(d, info)
        walker.ignore_loose_files(root, info)
        for split, split_dir in split_dirs.items():
            classes = {c.name: walker.images_under(c, info) for c in walker.subdirs(split_dir)}
            walker.ignore_loose_files(split_dir, info)
            candidates[split] = classes
        if _test_serves_as_validation(split_dirs):
            candidates[VALIDATION] = candidates.pop(TEST)
            info.split_folders[VALIDATION] = info.split_folders.pop(TEST)
    else:
        walker.ignore_loose_files(root, info)
        candidates[TRAIN] = {c.name: walker.images_under(c, info) for c in top_dirs}

    usable = _verify_all(candidates, info, max_pixels, verify)
    class_names = sorted({name for per_split in usable.values() for name in per_split})
    info.class_names = class_names
    if VALIDATION not in usable:
        usable[TRAIN], usable[VALIDATION] = _stratified_split(usable[TRAIN], validation_split, seed)
        if info.layout == "splits":
            info.warnings.append(
                f"No validation folder next to '{info.split_folders[TRAIN]}': "
                f"held out {validation_split:.0%} of each class for validation (seed {seed})."
            )
    info.files = {split: {n: usable[split].get(n, []) for n in class_names} for split in usable}
    _check_trainable(info)
    return info


def _check_trainable(info: DatasetInfo) -> None:
    where = info.root
    if not info.class_names:
        raise DatasetError(
            f"No class folders with images found in {where}. Expected one sub-folder per "
            "class (e.g. cats/, dogs/), optionally inside train/ and validation/ folders.",
            info,
        )
    totals = {n: sum(len(info.files[s].get(n, [])) for s in info.files) for n in info.class_names}
    empty = [n for n, total in totals.items() if total == 0]
    if empty:
        raise DatasetError(_no_usable_images(info, empty), info)
    if len(info.class_names) < 2:
        raise DatasetError(
            f"Only one class ('{info.class_names[0]}') in {where}: classification needs at least 2 class folders.", info
        )
    for split in (TRAIN, VALIDATION):
        missing = [n for n in info.class_names if not info.files.get(split, {}).get(n)]
        if missing:
            info.warnings.append(f"Class {', '.join(repr(n) for n in missing)} has no images in the {split} split.")


def _no_usable_images(info: DatasetInfo, empty: list[str]) -> str:
    """Say which class folders have no usable image, and why: no image files, or only unreadable ones.

    Self-contained (one skipped file named as an example), since the CLI shows
    only this line, not the full list of skipped files.
    """
    parents = [info.root / f for f in info.split_folders.values()] or [info.root]
    folders = [p / n for n in empty for p in parents if (p / n).exists()]
    # only the files skipped inside these folders explain them, not those skipped elsewhere
    skipped = [s for s in info.skipped if any(s.path == f or f in s.path.parents for f in folders)]
    if skipped:
        example = skipped[0]
        why = f"{len(skipped)} file(s) skipped there, e.g. {display_path(example.path.name)}: {example.reason}"
    else:
        why = "no image files"
    if len(empty) == len(info.class_names):
        names = ", ".join(display_path(n) for n in empty)
        return f"No usable images in {display_path(info.root)}: class folder(s) {names} ({why})"
    listed = ", ".join(display_path(f) for f in folders)
    return (
        f"Class folder {listed} has no usable image ({why})"
        if len(folders) == 1
        else f"Class folders {listed} have no usable image ({why})"
    )


def _test_serves_as_validation(split_dirs: Mapping[str, Path]) -> bool:
    """Seed 000's layout, training-data + testing-data: the test folder is the only held-out data, so it
    serves as validation."""
    return VALIDATION not in split_dirs and TEST in split_dirs


def split_folder_names(root: str | os.PathLike) -> dict[str, str]:
    """The split folders `scan` uses in root, by split: {"train": "training", "validation": "val"}; {} for
    class folders directly in root (or a folder that cannot be read). Lists root only: no image is opened."""
    split_dirs = _match_splits(_Walker(Path(root)).subdirs(Path(root)))
    names = {split: folder.name for split, folder in split_dirs.items()}
    if _test_serves_as_validation(split_dirs):
        names[VALIDATION] = names.pop(TEST)
    return names


def _match_splits(dirs: list[Path], need_train: bool = True) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in dirs:
        lowered = d.name.lower()
        for split, aliases in _SPLIT_ALIASES.items():
            if lowered in aliases and split not in found:
                found[split] = d
    return found if TRAIN in found or not need_train else {}


class _Walker:
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


def _verify_all(
    candidates: dict[str, dict[str, list[Path]]], info: DatasetInfo, max_pixels: int, verify: bool
) -> dict[str, dict[str, list[Path]]]:
    flat = [p for per_split in candidates.values() for paths in per_split.values() for p in paths]
    # Checked even without verify: such a name breaks every page that shows it.
    problems = {p: NAME_NOT_UTF8 for p in flat if not _utf8_below(p, info.root)}
    if verify and flat:

        def check(path: Path) -> tuple[Path, str | None]:
            try:
                open_rgb(path, max_pixels, draft_size=_VERIFY_SIZE)
                return path, None
            except ImageProblem as err:
                return path, str(err)

        # Pillow releases the GIL while decoding, so threads overlap.
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
            well_named = [p for p in flat if p not in problems]
            problems.update((p, r) for p, r in pool.map(check, well_named) if r is not None)
    info.skipped.extend(SkippedFile(p, problems[p]) for p in flat if p in problems)
    return {
        split: {name: [p for p in paths if p not in problems] for name, paths in per_split.items()}
        for split, per_split in candidates.items()
    }


def _utf8_below(path: Path, root: Path) -> bool:
    """Whether the names below root are valid UTF-8 (the root itself is the user's to name)."""
    try:
        str(path.relative_to(root)).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _stratified_split(
    per_class: dict[str, list[Path]], fraction: float, seed: int
) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    train: dict[str, list[Path]] = {}
    validation: dict[str, list[Path]] = {}
    for name, paths in per_class.items():
        shuffled = sorted(paths)
        # display_path: Random() encodes str seeds as UTF-8, which a name with surrogates breaks
        random.Random(f"{seed}:{display_path(name)}").shuffle(shuffled)
        n_val = round(len(shuffled) * fraction) if len(shuffled) >= 2 else 0
        n_val = max(n_val, 1) if len(shuffled) >= 2 else 0
        validation[name] = sorted(shuffled[:n_val])
        train[name] = sorted(shuffled[n_val:])
    return train, validation


MAX_STAMP_FOLDERS = 5_000  # tree_stamp reads at most this many folders


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


def sample_grid(info: DatasetInfo, n: int = 16, split: str = TRAIN, seed: int = 0) -> list[tuple[Path, str]]:
    """Pick n images balanced across classes (round robin), with their class names.

    When a class has too few images, the others fill its places.
    """
    rng = random.Random(seed)
    pools = {}
    for name in info.class_names:
        paths = list(info.files.get(split, {}).get(name, []))
        rng.shuffle(paths)
        pools[name] = paths
    chosen: list[tuple[Path, str]] = []
    while len(chosen) < n and any(pools.values()):
        for name in info.class_names:
            if pools[name] and len(chosen) < n:
                chosen.append((pools[name].pop(), name))
    return chosen


# --- a run's held-out files ------------------------------------------------------------


def split_files(info: DatasetInfo, split: str = "validation") -> set[str]:
    """A split's files, relative to the dataset root (as a run records its held-out files)."""
    return {os.path.relpath(p, info.root) for p in info.items(split)[0]}


def same_held_out_split(record: Mapping[str, Any], info: DatasetInfo) -> bool:
    """False when the run recorded its validation files and `info`'s differ.

    Then some of these images may have been trained on, and accuracy on them flatters the model.
    """
    held_out = record.get("validation_files")
    return not held_out or split_files(info) == set(held_out)
