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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tlcore.data_problems import DatasetError, SkippedFile, display_path, no_usable_images, verify_images
from tlcore.folder_walk import MAX_WALK_SECONDS, Walker
from tlcore.imageio import DEFAULT_MAX_PIXELS

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)
_SPLIT_ALIASES = {
    TRAIN: {"train", "training", "training-data", "training_data", "train-data", "train_data"},
    VALIDATION: {"validation", "val", "valid", "validation-data", "validation_data", "val-data", "val_data", "dev"},
    TEST: {"test", "testing", "testing-data", "testing_data", "test-data", "test_data"},
}


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

    walker = Walker(root, max_walk_seconds)
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

    usable = verify_images(candidates, info, max_pixels, verify)
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
        raise DatasetError(no_usable_images(info, empty), info)
    if len(info.class_names) < 2:
        raise DatasetError(
            f"Only one class ('{info.class_names[0]}') in {where}: classification needs at least 2 class folders.", info
        )
    for split in (TRAIN, VALIDATION):
        missing = [n for n in info.class_names if not info.files.get(split, {}).get(n)]
        if missing:
            info.warnings.append(f"Class {', '.join(repr(n) for n in missing)} has no images in the {split} split.")


def _test_serves_as_validation(split_dirs: Mapping[str, Path]) -> bool:
    """Seed 000's layout, training-data + testing-data: the test folder is the only held-out data, so it
    serves as validation."""
    return VALIDATION not in split_dirs and TEST in split_dirs


def split_folder_names(root: str | os.PathLike) -> dict[str, str]:
    """The split folders `scan` uses in root, by split: {"train": "training", "validation": "val"}; {} for
    class folders directly in root (or a folder that cannot be read). Lists root only: no image is opened."""
    split_dirs = _match_splits(Walker(Path(root)).subdirs(Path(root)))
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


def same_held_out_split(record: Mapping[str, list[str] | None], info: DatasetInfo) -> bool:
    """False when the run recorded its validation files and `info`'s differ.

    Then some of these images may have been trained on, and accuracy on them flatters the model.
    """
    held_out = record.get("validation_files")
    return not held_out or split_files(info) == set(held_out)
