"""A dataset made in the lab: each person's own photos, from a webcam or a phone's camera roll.

Stored under the runs folder, in `.photos/<owner id>/` (an opaque id, never the display name), as a
dataset the lab reads like any other: `train/<class>/` and `validation/<class>/`. Each photo is
re-encoded on arrival: turned upright, EXIF and GPS dropped (a fresh JPEG carries none), the long side at
most LONG_SIDE px. Its file name is a hash of its pixels, which also decides its split (one in
VALIDATION_EVERY goes to validation), so a photo never moves between splits as others come and go.
Quotas per person: TLLAB_MAX_IMAGES images (default 500) and TLLAB_MAX_PHOTO_MB megabytes (default 150).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from tlcore import environment
from tlcore.data import TRAIN, VALIDATION
from tlcore.environment import MAX_IMAGES_ENV, MAX_PHOTO_MB_ENV
from tlcore.fileio import atomic_write
from tlcore.imageio import ImageProblem, open_rgb
from tlcore.runs import default_runs_dir

PHOTOS_DIR = ".photos"
LONG_SIDE = 512
JPEG_QUALITY = 90
VALIDATION_EVERY = 5  # one photo in five, by its hash: the usual 80/20
DEFAULT_MAX_IMAGES, DEFAULT_MAX_MB = 500, 150
CLASS_NAME_MAX = 40
SPLITS = (TRAIN, VALIDATION)


class PhotoError(ValueError):
    """A photo or class the store refuses; the message names it and says why."""


def max_photo_bytes() -> int:
    """The bytes of photos one person may keep (TLLAB_MAX_PHOTO_MB)."""
    return environment.whole_number(MAX_PHOTO_MB_ENV, DEFAULT_MAX_MB) * 1024 * 1024


def checked_class_name(name: str) -> str:
    """A class name that is one plain folder name (PhotoError otherwise)."""
    shown = " ".join((name or "").split())
    if not shown:
        raise PhotoError("Type a class name.")
    if len(shown) > CLASS_NAME_MAX:
        raise PhotoError(f"A class name has at most {CLASS_NAME_MAX} characters.")
    if "/" in shown or "\\" in shown or shown.startswith(".") or shown in {".", ".."}:
        raise PhotoError(f"“{shown}” cannot be a class name: no /, \\ or leading dot.")
    if any(ord(c) < 32 for c in shown):
        raise PhotoError("A class name cannot hold control characters.")
    return shown


@dataclass(frozen=True)
class Photo:
    """One stored photo: its class, split and file."""

    class_name: str
    split: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


class PhotoStore:
    """One person's photos (tlcore.access owner id); nobody else's are reachable through it."""

    def __init__(self, owner: str, runs_root: str | Path | None = None) -> None:
        if not owner or not owner.isalnum():
            raise PhotoError("Photos need an owner.")
        base = Path(runs_root if runs_root is not None else default_runs_dir())
        self.root = base / PHOTOS_DIR / owner
        self.max_images = environment.whole_number(MAX_IMAGES_ENV, DEFAULT_MAX_IMAGES)
        self.max_bytes = max_photo_bytes()

    # -- classes --

    def classes(self) -> list[str]:
        """The class names, sorted."""
        names = {p.name for split in SPLITS if (self.root / split).is_dir() for p in (self.root / split).iterdir()}
        return sorted(n for n in names if not n.startswith("."))

    def add_class(self, name: str) -> str:
        shown = checked_class_name(name)
        if shown in self.classes():
            raise PhotoError(f"There is a class “{shown}” already.")
        for split in SPLITS:
            (self.root / split / shown).mkdir(parents=True, exist_ok=True)
        return shown

    def remove_class(self, name: str) -> None:
        """Delete a class and its photos."""
        name = self._known_class(name)
        for split in SPLITS:
            folder = self.root / split / name
            for path in folder.glob("*") if folder.is_dir() else []:
                path.unlink()
            if folder.is_dir():
                folder.rmdir()

    def _known_class(self, name: str) -> str:
        if name not in self.classes():
            raise PhotoError(f"There is no class “{name}”.")
        return name

    # -- photos --

    def photos(self, class_name: str | None = None) -> list[Photo]:
        """Stored photos (of one class, or all), oldest first."""
        found = [
            Photo(folder.name, split, path)
            for split in SPLITS
            if (self.root / split).is_dir()
            for folder in (self.root / split).iterdir()
            if folder.is_dir() and class_name in (None, folder.name)
            for path in folder.glob("*.jpg")
        ]
        return sorted(found, key=lambda p: (p.path.stat().st_mtime_ns, p.name))

    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys(self.classes(), 0)
        for photo in self.photos():
            totals[photo.class_name] = totals.get(photo.class_name, 0) + 1
        return totals

    def bytes_used(self) -> int:
        return sum(p.path.stat().st_size for p in self.photos())

    def add(self, class_name: str, data: bytes, source_name: str = "photo") -> Photo:
        """Store one photo in a class, re-encoded (PhotoError naming `source_name` and the reason)."""
        class_name = self._known_class(class_name)
        if len(self.photos()) >= self.max_images:
            raise PhotoError(
                f"{source_name}: not added, you have {self.max_images} photos, the most one person may keep here. "
                "Delete some first."
            )
        try:
            image = open_rgb(data)
        except ImageProblem as err:
            raise PhotoError(f"{source_name}: {err}") from None
        image.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)
        encoded = io.BytesIO()
        image.save(encoded, format="JPEG", quality=JPEG_QUALITY)  # a fresh file: no EXIF, no GPS
        payload = encoded.getvalue()
        if self.bytes_used() + len(payload) > self.max_bytes:
            raise PhotoError(f"{source_name}: not added, your photos would pass {self.max_bytes // 2**20} MB.")
        digest = hashlib.sha256(image.tobytes()).hexdigest()
        split = VALIDATION if int(digest[:8], 16) % VALIDATION_EVERY == 0 else TRAIN
        path = self.root / split / class_name / f"{digest[:20]}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, payload)
        return Photo(class_name, split, path)

    def delete(self, class_name: str, file_name: str) -> None:
        """Delete one photo of this person's (PhotoError for a name that is not one of theirs)."""
        class_name = self._known_class(class_name)
        for photo in self.photos(class_name):
            if photo.name == file_name:
                photo.path.unlink()
                return
        raise PhotoError(f"There is no photo {file_name!r} in “{class_name}”.")

    def delete_all(self) -> None:
        for name in self.classes():
            self.remove_class(name)

    def zip_bytes(self) -> bytes:
        """The photos as a .zip of class folders (`<class>/<file>.jpg`), which the lab's zip upload accepts."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # JPEGs do not compress
            for photo in self.photos():
                archive.write(photo.path, f"{photo.class_name}/{photo.name}")
        return buffer.getvalue()
