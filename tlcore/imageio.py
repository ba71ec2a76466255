"""Open any image a user may drop into a class folder as 8-bit RGB, or say why not.

Pillow only; no TensorFlow. Every failure becomes an `ImageProblem` whose
message is a short reason a person can act on.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Content decides the format, but only decoders for these formats are ever
# run: a file named .jpg that is really PostScript or an icon is refused
# instead of being handed to a rarely used decoder.
ALLOWED_FORMATS = ("JPEG", "PNG", "BMP", "DIB", "GIF", "WEBP", "TIFF")
DEFAULT_MAX_PIXELS = 100_000_000
WHITE = (255, 255, 255)


# Pillow warns between its limit and twice its limit (and errors above); our
# own max_pixels check decides instead. Set once here, not per call:
# warnings.catch_warnings is not thread-safe and scans decode in threads.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageProblem(Exception):
    """An image that cannot be used; the message is the reason."""


def _is_empty(source: str | os.PathLike | BinaryIO) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return os.path.getsize(source) == 0
    if not source.seekable():
        return False  # Pillow reads what there is and reports it
    position = source.tell()
    empty = not source.read(1)
    source.seek(position)
    return empty


def open_rgb(
    source: str | os.PathLike | BinaryIO | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
) -> Image.Image:
    """Decode an image file into an 8-bit RGB PIL image.

    Applies EXIF orientation, takes the first frame of animations, composites
    transparency on white and converts grayscale, palette, CMYK and 16-bit
    images to 8-bit RGB.

    Args:
        source: a path, an open binary file, or the file's bytes.
        max_pixels: images with more pixels than this are refused before
            their pixel data is decoded (decompression-bomb guard).
        draft_size: when given, JPEGs may be decoded at a reduced scale that
            is still at least this many pixels on each side (much faster).

    Raises:
        ImageProblem: with the reason the image cannot be used.
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    Image.init()  # registers every plugin once, so ALLOWED_FORMATS are all known
    try:
        if _is_empty(source):  # Pillow would say "not an image": true, but less helpful
            raise ImageProblem("empty file (0 bytes)")
        with Image.open(source, formats=ALLOWED_FORMATS) as img:
            return _to_rgb(img, max_pixels, draft_size)
    except ImageProblem:
        raise
    except Image.DecompressionBombError:
        pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageProblem(
            f"too large (over {min(max_pixels, pillow_limit) / 1e6:g} megapixels; decompression-bomb guard)"
        ) from None
    except UnidentifiedImageError:
        # Pillow says "unidentified" both for non-images and for images whose
        # header it cannot parse; the signature tells a broken PNG (say) from
        # a web page saved as .jpg, which need different fixes.
        claimed = _signature_format(source)
        if claimed == HEIF:
            raise ImageProblem(
                "a HEIC/HEIF photo (an iPhone's default), which this lab cannot read: set the camera to "
                "“Most Compatible” (JPEG), or export or share the photo as JPEG"
            ) from None
        if claimed:
            raise ImageProblem(
                f"truncated or corrupt {claimed} header (starts like a {claimed} but cannot be decoded)"
            ) from None
        raise ImageProblem("not an image (content is not JPEG, PNG, BMP, GIF, WebP or TIFF)") from None
    except PermissionError:
        raise ImageProblem("cannot read: permission denied") from None
    except FileNotFoundError:
        raise ImageProblem("file not found (broken link or removed)") from None
    except OSError as err:
        if err.errno == 40:  # ELOOP
            raise ImageProblem("symbolic link loop") from None
        raise ImageProblem(f"truncated or corrupt image data ({_short(err)})") from None
    except (SyntaxError, ValueError, TypeError, EOFError, IndexError, KeyError) as err:
        # Pillow's plugins signal malformed headers with these.
        raise ImageProblem(f"corrupt image ({_short(err)})") from None
    except MemoryError:
        raise ImageProblem("too large to decode in memory") from None


# Unambiguous leading bytes of the allowed formats (BMP's two-byte "BM" is
# left out: too many text files start that way).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


HEIF = "HEIF"
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"}


def _signature_format(source: str | os.PathLike | BinaryIO) -> str | None:
    """The allowed format whose signature the data starts with, if any."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as handle:
                head = handle.read(16)
        else:
            source.seek(0)  # Pillow reads from the start too
            head = source.read(16)
    except (OSError, AttributeError, ValueError):
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return HEIF
    return next((fmt for magic, fmt in _SIGNATURES if head.startswith(magic)), None)


def _short(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _to_rgb(img: Image.Image, max_pixels: int, draft_size: int | None) -> Image.Image:
    width, height = img.size
    if width * height > max_pixels:
        raise ImageProblem(
            f"too large ({width}x{height} = {width * height / 1e6:.1f} megapixels; limit {max_pixels / 1e6:g})"
        )
    if width == 0 or height == 0:
        raise ImageProblem("image has no pixels (0 width or height)")
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    if draft_size and img.format in ("JPEG", "MPO") and img.mode in ("RGB", "L", "CMYK"):
        img.draft(img.mode, (draft_size, draft_size))
    img.load()  # decode now, so truncation is detected here
    img = ImageOps.exif_transpose(img)
    return convert_to_rgb(img)


def convert_to_rgb(img: Image.Image) -> Image.Image:
    """A Pillow image of any mode -> 8-bit RGB (transparency composited on white, 16-bit scaled)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_depth_to_rgb(img)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """Scale 16-bit (or 32-bit int/float) grayscale to 8 bits by its nominal range."""
    values = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or (img.mode == "I" and values.max(initial=0) > 255):
        values = values / 257.0
    elif img.mode == "F":
        low, high = float(values.min(initial=0)), float(values.max(initial=0))
        values = (values - low) / (high - low) * 255.0 if high > low else values * 0
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")


def resize_rgb(img: Image.Image, image_size: int) -> np.ndarray:
    """Resize to image_size x image_size (aspect ratio not kept, as Keras does).

    Returns:
        uint8 array of shape (image_size, image_size, 3).
    """
    resized = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def load_array(
    path: str | os.PathLike | BinaryIO | bytes, image_size: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode one image to a uint8 (image_size, image_size, 3) array of raw RGB."""
    return resize_rgb(open_rgb(path, max_pixels, draft_size=image_size), image_size)


def has_image_extension(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS
