"""What can be wrong in an image folder, and how it is told: refusals, skipped files and their reasons.

`DatasetError` refuses a folder that cannot train, `SkippedFile` names a file left out and why,
`verify_images` decodes every candidate to find those, and `display_path` shows any name safely.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore.imageio import ImageProblem, open_rgb

if TYPE_CHECKING:  # the description is tlcore.data's; a problem only points at it
    from tlcore.data import DatasetInfo

_VERIFY_SIZE = 64  # decode scale used to check an image while scanning
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
    """A file or folder the scan left out, and why."""

    path: Path
    reason: str


def no_usable_images(info: DatasetInfo, empty: list[str]) -> str:
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


def verify_images(
    candidates: dict[str, dict[str, list[Path]]], info: DatasetInfo, max_pixels: int, verify: bool
) -> dict[str, dict[str, list[Path]]]:
    """The candidates that can be used: the others (a name not UTF-8; with `verify`, an image that does not
    decode) go to info.skipped with their reason."""
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
