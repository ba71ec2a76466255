"""Keep typed paths inside an optional data root, for apps served to others.

On a laptop a typed path may point anywhere. On a shared server the
administrator sets `TLLAB_DATA_ROOT`, and every path a user types is read
relative to that folder and may not lead outside it: not with `..`, not as an
absolute path, not through `~`, not through a symbolic link.

`..` is applied by name, before anything on disk is looked up, so a refused
path never causes a look-up outside the root, and the refusal reads the same
whether the outside path exists or not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tlcore import environment
from tlcore.environment import DATA_ROOT_ENV


class PathNotAllowed(ValueError):
    """A typed path that cannot be used; the message is safe to show to the person who typed it."""


class DataRootError(ValueError):
    """TLLAB_DATA_ROOT is set, but not to an existing folder (a server configuration error)."""


def data_root(environ: Mapping[str, str] | None = None) -> Path | None:
    """The data root from TLLAB_DATA_ROOT, or None when it is not set.

    Returned as configured (absolute, `..` removed) so that absolute paths
    written with the configured name still match; `resolve_user_path`
    resolves its links itself.

    Raises:
        DataRootError: the variable is set but is not an existing folder; a
            server with a broken root must refuse paths, not allow them all.
    """
    value = environment.text(DATA_ROOT_ENV, environ).strip()
    if not value:
        return None
    if "\0" in value:
        raise DataRootError(f"{DATA_ROOT_ENV} contains a NUL character. Received: {value!r}")
    root = Path(os.path.normpath(os.path.abspath(os.path.expanduser(value))))
    if not root.is_dir():
        raise DataRootError(
            f"{DATA_ROOT_ENV} must name an existing folder (the only folder users may read). Received: {value!r}"
        )
    return root


def resolve_user_path(text: str, root: Path | None, what: str = "Path") -> Path:
    """The path a user typed, kept inside `root` when one is set.

    Args:
        text: what the user typed.
        root: the data root, or None for no restriction (`~` is expanded and
            any path is accepted, as on the command line).
        what: how the message names the input, e.g. "Folder path".

    Returns:
        With a root: the fully resolved path (links followed), inside the
        root. Without: the typed path with `~` expanded.

    Raises:
        PathNotAllowed: the text holds a NUL character, or leads outside the
            root (`..`, an absolute path elsewhere, `~`, a link that points out).
    """
    if "\0" in text:
        raise PathNotAllowed(f"{what} contains a NUL character, which no file name can hold.")
    text = text.strip()
    if root is None:
        return Path(text).expanduser()
    # `~` would name the server account's home: outside by definition, and
    # expanding `~user` would tell whether that account exists.
    if text.startswith("~"):
        raise _outside(text, root, what)
    named_root = Path(os.path.normpath(os.path.abspath(root)))
    real_root = Path(os.path.realpath(named_root))
    # Joining an absolute text replaces the root, so absolute paths get the same check.
    by_name = Path(os.path.normpath(named_root / text))
    if not (by_name.is_relative_to(named_root) or by_name.is_relative_to(real_root)):
        raise _outside(text, root, what)
    # Path.is_relative_to compares whole components: /data/root-evil is not inside /data/root.
    real = Path(os.path.realpath(by_name))  # not Path.resolve: that raises on link loops
    if not real.is_relative_to(real_root):
        raise _outside(text, root, what)
    return real


def typed_weights_path(text: str, trusted: str = "") -> str:
    """The weights-file path a user typed ("" for none), kept inside the data root when one is set.

    `trusted` is the administrator's default (TLLAB_WEIGHTS): accepted as it
    is, wherever it lies.

    Raises:
        PathNotAllowed, DataRootError: as `resolve_user_path` and `data_root`.
    """
    text = text.strip()
    if not text or text == trusted.strip():
        return text
    root = data_root()
    path = resolve_user_path(text, root, "Weights file")
    return str(path) if root else text


def link_leading_outside(folder: Path, root: Path) -> Path | None:
    """The first symbolic link under `folder` whose target lies outside `root`, or None.

    Links that stay inside are followed, as the dataset scan follows them;
    each real folder is visited once, so link loops end.
    """
    real_root = Path(os.path.realpath(root))
    visited: set[str] = set()
    pending = [Path(folder)]
    while pending:
        current = pending.pop()
        real = os.path.realpath(current)
        if real in visited:
            continue
        visited.add(real)
        try:
            with os.scandir(current) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            continue  # the scan reports unreadable folders with a reason of its own
        for entry in reversed(entries):  # reversed: the stack then visits them in name order
            path = Path(entry.path)
            if entry.is_symlink():
                target = Path(os.path.realpath(path))
                if not target.is_relative_to(real_root):
                    return path
                if target.is_dir():
                    pending.append(path)
            elif entry.is_dir(follow_symlinks=False):
                pending.append(path)
    return None


def refuse_links_outside(folder: Path, root: Path) -> None:
    """Raise PathNotAllowed naming the first link under `folder` that leads outside `root`.

    The entry is named relative to the root, so the message shows nothing
    of the server outside it.
    """
    link = link_leading_outside(folder, root)
    if link is None:
        return
    shown = Path(link.name)
    for base in (os.path.realpath(root), os.path.normpath(os.path.abspath(root))):
        if link.is_relative_to(base):  # `folder` may be spelled with the root's real or configured name
            shown = link.relative_to(base)
            break
    raise PathNotAllowed(
        f"{shown.as_posix()!r} is a link that leads outside the server's data folder "
        f"({Path(root).name}/). Remove the link, or choose another folder."
    )


def _outside(text: str, root: Path, what: str) -> PathNotAllowed:
    # One message for every refusal: it must not tell whether the outside path exists.
    return PathNotAllowed(
        f"{what} {text!r} leads outside the server's data folder ({Path(root).name}/). "
        "Paths here are relative to that folder, e.g. 'pets' or 'pets/train'."
    )
