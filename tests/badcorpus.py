"""A dataset folder full of the bad files users really drop into class folders.

Everything is generated on the fly (no committed binaries): good images around
every kind of broken, odd or foreign file, and a table saying what the scan
must make of each one. Tests in test_bad_corpus.py drive the scan, the
Dataset page, training and the CLI over it.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from PIL import Image

from tests.helpers import CLASS_COLOURS, make_image
from tests.test_imageio import png_header_only

CONVERTED = "converted"  # loads as correct 8-bit RGB
IGNORED = "ignored"  # counted as ignored: hidden, __MACOSX or not an image by its extension

CLASSES = ("cats", "dogs")
GOOD_PER_SPLIT = 8  # good images per class per split
SIZE = 36

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
LONG_NAME = "long_" + "x" * 211 + ".png"  # 220 bytes: long, but within the 255-byte limit
NON_ASCII_NAME = "chat_été_猫.png"
# Latin-1 bytes for "café": not UTF-8, so Python holds the name with a lone surrogate.
NOT_UTF8_NAME = os.fsdecode(b"caf\xe9.png")

Pixel = tuple[tuple[int, int], tuple[int, int, int]]  # (x, y) -> RGB


def deny_reads(monkeypatch: pytest.MonkeyPatch, paths: list[Path]) -> None:
    """Make opening these files fail with PermissionError.

    Tests run as root, where chmod 000 does not stop a read, so the error is
    injected where tlcore.imageio opens files (PIL.Image.open).
    """
    denied = {Path(p) for p in paths}
    real_open = PIL.Image.open

    def guarded_open(fp, *args, **kwargs):
        if isinstance(fp, (str, os.PathLike)) and Path(fp) in denied:
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", guarded_open)


# --- file contents -------------------------------------------------------------------


def encode(img: Image.Image, fmt: str, **save_kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save_kwargs)
    return buf.getvalue()


def _noise(seed: int, size: int = SIZE) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")


def _cmyk_cyan_jpeg() -> bytes:
    return encode(Image.new("CMYK", (SIZE, SIZE), (255, 0, 0, 0)), "JPEG", quality=95)


def _png_16bit() -> bytes:
    # Top half full scale, bottom half mid scale: 8-bit values 255 and 128 after scaling.
    values = np.full((SIZE, SIZE), 65535, dtype=np.uint16)
    values[SIZE // 2 :] = 32768
    return encode(Image.fromarray(values), "PNG")


def _grayscale_png() -> bytes:
    return encode(Image.new("L", (SIZE, SIZE), 77), "PNG")


def _palette_with_transparency() -> bytes:
    # Left half palette index 0 (black, transparent), right half index 1 (red).
    img = Image.new("P", (SIZE, SIZE), 0)
    img.putpalette([0, 0, 0, *RED])
    img.paste(1, (SIZE // 2, 0, SIZE, SIZE))
    return encode(img, "PNG", transparency=0)


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (SIZE, SIZE), colour) for colour in (RED, BLUE, GREEN)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _exif_rotated_jpeg() -> bytes:
    # Stored 40x20, left half red; orientation 6 (turn 90 degrees clockwise)
    # shows it 20x40 with the red half on top.
    img = Image.new("RGB", (40, 20), RED)
    img.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(img, "JPEG", quality=95, exif=exif.tobytes())


# --- the corpus ----------------------------------------------------------------------

CATS, DOGS = "train/cats", "train/dogs"


@dataclass(frozen=True)
class BadFile:
    """One file of the corpus and what the scan must make of it.

    outcome: a substring of the skip reason, CONVERTED or IGNORED.
    pixels: for converted files, RGB values expected at (x, y) of the full-size image.
    """

    kind: str
    relpath: str  # inside the corpus root
    outcome: str
    content: Callable[[], bytes] | None = None
    link_to: str | None = None  # written as a symbolic link to this target instead
    pixels: tuple[Pixel, ...] = ()
    tolerance: int = 0

    @property
    def skipped(self) -> bool:
        return self.outcome not in (CONVERTED, IGNORED)


def _flat(colour: tuple[int, int, int]) -> Callable[[], bytes]:
    return lambda: encode(Image.new("RGB", (SIZE, SIZE), colour), "PNG")


def _cut(make: Callable[[], bytes], keep: float) -> Callable[[], bytes]:
    def cut() -> bytes:
        data = make()
        return data[: int(len(data) * keep)]

    return cut


def _zeroed_header(make: Callable[[], bytes], signature_len: int) -> Callable[[], bytes]:
    """The format's signature, then zeros where its header should be."""

    def zeroed() -> bytes:
        data = make()
        return data[:signature_len] + b"\x00" * 40 + data[signature_len + 40 :]

    return zeroed


_JPEG = lambda: encode(_noise(1), "JPEG")  # noqa: E731
_PNG = lambda: encode(_noise(2), "PNG")  # noqa: E731

BAD_FILES: tuple[BadFile, ...] = (
    # Broken or foreign: skipped, each with its reason.
    BadFile("corrupt JPEG", f"{CATS}/corrupt.jpg", "truncated or corrupt", _zeroed_header(_JPEG, 3)),
    BadFile("truncated JPEG", f"{CATS}/truncated.jpg", "truncated", _cut(_JPEG, 0.5)),
    BadFile("corrupt PNG", f"{CATS}/corrupt.png", "truncated or corrupt PNG header", _zeroed_header(_PNG, 8)),
    BadFile("truncated PNG", f"{CATS}/truncated.png", "truncated", _cut(_PNG, 0.5)),
    BadFile("zero bytes", f"{CATS}/empty.jpg", "empty file (0 bytes)", lambda: b""),
    BadFile("text saved as .jpg", f"{CATS}/shopping.jpg", "not an image", lambda: b"milk, eggs, bread\n" * 10),
    BadFile(
        "HTML saved as .jpg",
        f"{CATS}/download.jpg",
        "not an image",
        lambda: b"<!DOCTYPE html><html><body>403 Forbidden</body></html>",
    ),
    BadFile(
        "huge dimensions (decompression bomb)",
        f"{CATS}/bomb.png",
        "too large",
        lambda: png_header_only(100_000, 100_000),
    ),
    BadFile("symlink loop", f"{CATS}/loop.jpg", "symbolic link loop", link_to="loop.jpg"),
    BadFile("broken symlink", f"{CATS}/broken_link.png", "file not found", link_to="nowhere.png"),
    # Valid images, refused for their name: no page could show it (see tlcore.data_problems.display_path).
    BadFile("file name not valid UTF-8", f"{CATS}/{NOT_UTF8_NAME}", "name is not valid UTF-8", _flat(GREEN)),
    # A valid image: reading it is what fails (see deny_reads).
    BadFile(
        "unreadable (permission denied)",
        f"{CATS}/locked.png",
        "cannot read: permission denied",
        lambda: encode(_noise(3), "PNG"),
    ),
    # Odd but fine: loaded as 8-bit RGB.
    BadFile("PNG named .jpg", f"{CATS}/really_png.jpg", CONVERTED, _flat(GREEN), pixels=(((5, 5), GREEN),)),
    BadFile(
        "CMYK JPEG",
        f"{CATS}/cmyk.jpg",
        CONVERTED,
        _cmyk_cyan_jpeg,
        pixels=(((SIZE // 2, SIZE // 2), (0, 255, 255)),),
        tolerance=40,
    ),
    BadFile(
        "16-bit PNG",
        f"{CATS}/deep16.png",
        CONVERTED,
        _png_16bit,
        pixels=(((3, 3), (255, 255, 255)), ((3, SIZE - 3), (128, 128, 128))),
    ),
    BadFile("grayscale", f"{CATS}/gray.png", CONVERTED, _grayscale_png, pixels=(((7, 7), (77, 77, 77)),)),
    BadFile(
        "palette with transparency",
        f"{CATS}/palette.png",
        CONVERTED,
        _palette_with_transparency,
        pixels=(((3, 3), WHITE), ((SIZE - 3, 3), RED)),
    ),
    BadFile("animated GIF", f"{CATS}/animated.gif", CONVERTED, _animated_gif, pixels=(((9, 9), RED),)),
    BadFile(
        "EXIF-rotated photo",
        f"{CATS}/rotated.jpg",
        CONVERTED,
        _exif_rotated_jpeg,
        pixels=(((10, 5), RED), ((10, 34), BLUE)),
        tolerance=40,
    ),
    BadFile("very long file name", f"{CATS}/{LONG_NAME}", CONVERTED, _flat(RED), pixels=(((0, 0), RED),)),
    BadFile("non-ASCII file name", f"{CATS}/{NON_ASCII_NAME}", CONVERTED, _flat(BLUE), pixels=(((0, 0), BLUE),)),
    BadFile(
        "nested sub-folders in a class",
        f"{CATS}/indoor/sofa/nested.png",
        CONVERTED,
        _flat(RED),
        pixels=(((1, 1), RED),),
    ),
    # Not images, by name or place: ignored, not skipped.
    BadFile(".DS_Store", f"{CATS}/.DS_Store", IGNORED, lambda: b"\x00\x00\x00\x01Bud1" + b"\x00" * 32),
    BadFile("AppleDouble ._x.jpg", f"{CATS}/._x.jpg", IGNORED, lambda: b"\x00\x05\x16\x07\x00\x02Mac OS X"),
    BadFile("__MACOSX folder", "__MACOSX/train/cats/._good_00.png", IGNORED, lambda: b"\x00\x05\x16\x07"),
    BadFile("non-image extension", f"{DOGS}/README.txt", IGNORED, lambda: b"dogs from the shelter"),
)
DENIED = ("unreadable (permission denied)",)  # kinds whose reads deny_reads makes fail


@dataclass
class Corpus:
    root: Path
    good: dict[str, list[Path]]  # split -> the plain good images of both classes
    files: tuple[BadFile, ...] = BAD_FILES

    def path(self, bad: BadFile) -> Path:
        return self.root / bad.relpath

    def of_kind(self, kind: str) -> BadFile:
        return next(f for f in self.files if f.kind == kind)

    def select(self, *, skipped: bool | None = None, outcome: str | None = None) -> list[BadFile]:
        return [
            f
            for f in self.files
            if (skipped is None or f.skipped == skipped) and (outcome is None or f.outcome == outcome)
        ]

    @property
    def denied(self) -> list[Path]:
        return [self.path(self.of_kind(kind)) for kind in DENIED]

    def usable(self, split: str) -> list[Path]:
        """Every file the scan must load in a split: the good ones and the converted ones."""
        converted = [self.path(f) for f in self.select(outcome=CONVERTED) if f.relpath.startswith(f"{split}/")]
        return sorted(self.good[split] + converted)


def _good_images(root: Path) -> dict[str, list[Path]]:
    good: dict[str, list[Path]] = {"train": [], "validation": []}
    for split in good:
        for c, name in enumerate(CLASSES):
            for i in range(GOOD_PER_SPLIT):
                path = root / split / name / f"good_{i:02d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                make_image(CLASS_COLOURS[c], SIZE, seed=zlib.crc32(f"{split}|{name}|{i}".encode())).save(path)
                good[split].append(path)
    return good


def build_bad_corpus(root: Path) -> Corpus:
    """Write the corpus under root: train/ and validation/, classes cats and dogs.

    The bad and odd files sit in train/cats between the good images, except
    the __MACOSX folder (at the top) and one non-image file in train/dogs.
    """
    corpus = Corpus(root=root, good=_good_images(root))
    for bad in BAD_FILES:
        path = corpus.path(bad)
        path.parent.mkdir(parents=True, exist_ok=True)
        if bad.link_to is not None:
            os.symlink(bad.link_to, path)
        else:
            assert bad.content is not None  # a bad file is a link or some bytes
            path.write_bytes(bad.content())
    return corpus


def files_on_disk(root: Path) -> set[Path]:
    """Every directory entry that is not a folder, as os.walk sees it (links not followed)."""
    return {Path(folder) / name for folder, _, names in os.walk(root) for name in names}
