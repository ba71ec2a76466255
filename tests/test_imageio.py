"""tlcore.imageio: every image a user may drop in becomes 8-bit RGB, or a named reason.

All images are generated here, a few pixels each; nothing is read from the network
or from committed binary fixtures.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from PIL import Image

from tests.helpers import make_image
from tlcore.imageio import DEFAULT_MAX_PIXELS, ImageProblem, has_image_extension, load_array, open_rgb

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _bytes(img: Image.Image, fmt: str, **save_kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save_kwargs)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def _reason(source, **kwargs) -> str:
    with pytest.raises(ImageProblem) as caught:
        open_rgb(source, **kwargs)
    return str(caught.value)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with (almost) no pixel data.

    Costs a few dozen bytes whatever the claimed size, so a decompression-bomb
    guard can be tested without allocating anything large.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def _noisy_jpeg(size: int = 200) -> bytes:
    """A JPEG big enough that draft decoding would use a reduced scale."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    return _bytes(Image.fromarray(pixels, "RGB"), "JPEG", quality=90)


# --- sources -------------------------------------------------------------------


def test_path_bytes_and_file_object_give_the_same_pixels(tmp_path):
    data = _bytes(make_image((200, 60, 50), size=12, seed=3), "PNG")
    path = _write(tmp_path / "a.png", data)
    from_path = _pixels(open_rgb(path))
    from_str = _pixels(open_rgb(str(path)))
    from_bytes = _pixels(open_rgb(data))
    with open(path, "rb") as handle:
        from_file = _pixels(open_rgb(handle))
    assert from_path.shape == (12, 12, 3)
    for other in (from_str, from_bytes, from_file):
        np.testing.assert_array_equal(from_path, other)


def test_rgb_image_is_returned_unchanged(tmp_path):
    original = make_image((50, 80, 210), size=10, seed=1)
    img = open_rgb(_write(tmp_path / "x.png", _bytes(original, "PNG")))
    assert img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), np.asarray(original))


def test_content_decides_format_png_named_jpg(tmp_path):
    path = _write(tmp_path / "really_a_png.jpg", _bytes(Image.new("RGB", (5, 3), GREEN), "PNG"))
    img = open_rgb(path)
    assert img.size == (5, 3)
    assert img.getpixel((0, 0)) == GREEN


def test_returned_image_is_usable_after_the_file_is_closed_and_removed(tmp_path):
    path = _write(tmp_path / "gone.png", _bytes(Image.new("RGB", (4, 4), BLUE), "PNG"))
    img = open_rgb(path)
    path.unlink()
    assert img.getpixel((3, 3)) == BLUE


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jpg", True),
        ("a.JPEG", True),
        ("a.Png", True),
        ("a.bmp", True),
        ("a.gif", True),
        ("a.webp", True),
        ("a.tif", True),
        ("a.TIFF", True),
        ("notes.txt", False),
        ("Thumbs.db", False),
        ("noext", False),
        ("a.jpg.bak", False),
    ],
)
def test_has_image_extension(name, expected):
    assert has_image_extension(name) is expected
    assert has_image_extension(Path("dir") / name) is expected


# --- mode conversions ----------------------------------------------------------------


def test_grayscale_becomes_rgb_with_equal_channels():
    gray = Image.fromarray(np.array([[0, 77, 200, 255]], dtype=np.uint8), "L")
    img = open_rgb(_bytes(gray, "PNG"))
    assert img.mode == "RGB"
    px = _pixels(img)
    np.testing.assert_array_equal(px[..., 0], [[0, 77, 200, 255]])
    np.testing.assert_array_equal(px[..., 0], px[..., 1])
    np.testing.assert_array_equal(px[..., 0], px[..., 2])


def test_bilevel_image_becomes_black_and_white_rgb():
    bw = Image.new("1", (2, 1), 0)
    bw.putpixel((1, 0), 1)
    img = open_rgb(_bytes(bw, "PNG"))
    assert img.mode == "RGB"
    assert [img.getpixel((0, 0)), img.getpixel((1, 0))] == [(0, 0, 0), WHITE]


def test_palette_with_transparency_is_composited_on_white():
    pal = Image.new("P", (2, 1), 0)
    pal.putpalette([0, 0, 0, *RED])  # index 0 black (transparent), 1 red
    pal.putpixel((1, 0), 1)
    data = _bytes(pal, "PNG", transparency=0)
    assert Image.open(io.BytesIO(data)).mode == "P"  # the file really is a palette PNG
    img = open_rgb(data)
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == WHITE  # transparent black -> white, not black
    assert img.getpixel((1, 0)) == RED


def test_palette_without_transparency_keeps_colours():
    pal = Image.new("P", (2, 1), 0)
    pal.putpalette([*BLUE, *GREEN])
    pal.putpixel((1, 0), 1)
    img = open_rgb(_bytes(pal, "PNG"))
    assert [img.getpixel((0, 0)), img.getpixel((1, 0))] == [BLUE, GREEN]


def test_rgba_alpha_zero_becomes_white_and_opaque_keeps_colour():
    rgba = Image.new("RGBA", (3, 1))
    rgba.putpixel((0, 0), (10, 20, 30, 0))  # fully transparent, dark colour
    rgba.putpixel((1, 0), (10, 20, 30, 255))  # opaque
    rgba.putpixel((2, 0), (255, 0, 0, 128))  # half transparent red over white
    img = open_rgb(_bytes(rgba, "PNG"))
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == WHITE
    assert img.getpixel((1, 0)) == (10, 20, 30)
    pixel = img.getpixel((2, 0))
    assert isinstance(pixel, tuple)  # an RGB pixel
    r, g, b = pixel
    assert r == 255 and abs(g - 127) <= 1 and abs(b - 127) <= 1


def test_la_grayscale_with_alpha_is_composited_on_white():
    la = Image.new("LA", (2, 1))
    la.putpixel((0, 0), (40, 0))
    la.putpixel((1, 0), (40, 255))
    img = open_rgb(_bytes(la, "PNG"))
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == WHITE
    assert img.getpixel((1, 0)) == (40, 40, 40)


def test_cmyk_jpeg_becomes_rgb_with_plausible_colour():
    cyan = Image.new("CMYK", (8, 8), (255, 0, 0, 0))
    data = _bytes(cyan, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    img = open_rgb(data)
    assert img.mode == "RGB"
    pixel = img.getpixel((4, 4))
    assert isinstance(pixel, tuple)  # an RGB pixel
    r, g, b = pixel
    assert r < 40 and g > 215 and b > 215


def test_16bit_grayscale_png_is_scaled_to_8_bits():
    values = np.array([[65535, 32768, 0, 257, 200]], dtype=np.uint16)
    data = _bytes(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really 16-bit
    img = open_rgb(data)
    assert img.mode == "RGB"
    px = _pixels(img)
    np.testing.assert_array_equal(px[0, :, 0], [255, 128, 0, 1, 1])
    np.testing.assert_array_equal(px[..., 0], px[..., 2])


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (6, 4), colour) for colour in (RED, BLUE, GREEN)]
    data = _bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3  # only multi-frame formats have it
    img = open_rgb(data)
    assert img.mode == "RGB" and img.size == (6, 4)
    assert img.getpixel((2, 2)) == RED


def _left_red_right_blue_jpeg(orientation: int) -> bytes:
    img = Image.new("RGB", (40, 20), RED)
    img.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _bytes(img, "JPEG", quality=95, exif=exif.tobytes())


def _close(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


@pytest.mark.parametrize(
    ("orientation", "top", "bottom"),
    [
        (6, RED, BLUE),  # rotate 90 deg clockwise: the left half goes to the top
        (8, BLUE, RED),  # rotate 90 deg counter-clockwise: the left half goes to the bottom
    ],
)
def test_exif_orientation_is_applied(orientation, top, bottom):
    data = _left_red_right_blue_jpeg(orientation)
    assert Image.open(io.BytesIO(data)).size == (40, 20)
    img = open_rgb(data)
    assert img.size == (20, 40)  # width and height swapped
    assert _close(img.getpixel((10, 5)), top)
    assert _close(img.getpixel((10, 34)), bottom)


def test_exif_orientation_1_leaves_size_alone():
    img = open_rgb(_left_red_right_blue_jpeg(1))
    assert img.size == (40, 20)
    assert _close(img.getpixel((5, 10)), RED)


# --- load_array ----------------------------------------------------------------------


def test_load_array_shape_dtype_and_values(tmp_path):
    path = _write(tmp_path / "c.png", _bytes(Image.new("RGB", (30, 50), (12, 34, 56)), "PNG"))
    arr = load_array(path, 16)
    assert arr.shape == (16, 16, 3)
    assert arr.dtype == np.uint8
    assert (arr == np.array([12, 34, 56], dtype=np.uint8)).all()


def test_load_array_of_transparent_image_is_white():
    arr = load_array(_bytes(Image.new("RGBA", (9, 9), (0, 0, 0, 0)), "PNG"), 4)
    assert arr.shape == (4, 4, 3)
    assert (arr == 255).all()


def test_load_array_of_large_jpeg_uses_requested_size():
    arr = load_array(_noisy_jpeg(200), 24)
    assert arr.shape == (24, 24, 3) and arr.dtype == np.uint8


def test_draft_decoding_still_returns_an_image_at_least_the_requested_size():
    img = open_rgb(_noisy_jpeg(200), draft_size=40)
    assert img.mode == "RGB"
    assert min(img.size) >= 40 and max(img.size) <= 200


# --- problems: each a named reason -------------------------------------------------


def test_empty_file(tmp_path):
    assert "empty" in _reason(_write(tmp_path / "empty.jpg", b""))


@pytest.mark.parametrize(
    "content", [b"<!DOCTYPE html><html><body>403 Forbidden</body></html>", b"just some notes, not a picture\n" * 20]
)
def test_text_saved_as_jpg_is_not_an_image(tmp_path, content):
    assert _reason(_write(tmp_path / "page.jpg", content)).startswith("not an image")


def test_format_outside_the_allowed_decoders_is_refused(tmp_path):
    # An icon renamed .png: Pillow could decode it, but only the listed formats are allowed.
    data = _bytes(Image.new("RGB", (16, 16), RED), "ICO")
    assert Image.open(io.BytesIO(data)).format == "ICO"
    assert _reason(_write(tmp_path / "icon.png", data)).startswith("not an image")


def test_truncated_jpeg(tmp_path):
    data = _noisy_jpeg(200)
    path = _write(tmp_path / "cut.jpg", data[: len(data) // 2])
    assert "truncated" in _reason(path)
    # the quick, reduced-scale decode used while scanning must notice it too
    assert "truncated" in _reason(path, draft_size=32)


def test_truncated_png_pixel_data(tmp_path):
    rng = np.random.default_rng(1)
    data = _bytes(Image.fromarray(rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)), "PNG")
    reason = _reason(_write(tmp_path / "cut.png", data[: len(data) // 2]))
    assert "truncated" in reason or "corrupt" in reason


@pytest.mark.parametrize("keep", [12, 30])
def test_png_cut_inside_its_header_is_corrupt_not_a_non_image(tmp_path, keep):
    data = _bytes(Image.new("RGB", (8, 8), RED), "PNG")
    reason = _reason(_write(tmp_path / "cut.png", data[:keep]))
    assert "corrupt" in reason and "PNG" in reason
    assert not reason.startswith("not an image")


@pytest.mark.parametrize(("fmt", "magic_len"), [("PNG", 8), ("JPEG", 3), ("GIF", 6), ("TIFF", 4)])
def test_corrupt_header_bytes_after_a_valid_signature(tmp_path, fmt, magic_len):
    good = _bytes(Image.new("RGB", (8, 8), RED), fmt)
    bad = good[:magic_len] + b"\x00" * 40 + good[magic_len + 40 :]
    reason = _reason(_write(tmp_path / f"bad.{fmt.lower()}", bad))
    # Broken, not foreign: the reason must not claim the file is no image at all.
    assert "corrupt" in reason
    assert not reason.startswith("not an image")


def test_unparseable_header_names_the_format_it_claims(tmp_path):
    good = _bytes(Image.new("RGB", (8, 8), RED), "PNG")
    reason = _reason(_write(tmp_path / "bad.png", good[:8] + b"\x00" * 60))
    assert reason.startswith("truncated or corrupt PNG header")
    assert _reason(good[:8] + b"\x00" * 60) == reason  # same from bytes as from a path


def test_webp_with_garbage_after_its_signature_is_corrupt(tmp_path):
    data = b"RIFF" + struct.pack("<I", 60) + b"WEBP" + b"\x00" * 60
    reason = _reason(_write(tmp_path / "bad.webp", data))
    assert "corrupt" in reason and not reason.startswith("not an image")


def test_garbage_header_without_any_signature_is_not_an_image(tmp_path):
    rng = np.random.default_rng(7)
    data = b"\x00\x00" + rng.integers(0, 256, 500, dtype=np.uint8).tobytes()
    assert _reason(_write(tmp_path / "noise.jpg", data)).startswith("not an image")


def test_image_over_the_pixel_limit(tmp_path):
    path = _write(tmp_path / "big.png", _bytes(Image.new("RGB", (100, 100), RED), "PNG"))
    reason = _reason(path, max_pixels=5000)
    assert reason.startswith("too large") and "100x100" in reason
    assert open_rgb(path, max_pixels=10_000).size == (100, 100)  # exactly at the limit: fine


def test_header_claiming_small_limit_is_refused_before_decoding(tmp_path):
    # 20000 x 1 pixels: the header alone says it is too large for a 5000-pixel limit.
    path = _write(tmp_path / "row.png", png_header_only(20_000, 1))
    assert _reason(path, max_pixels=5000).startswith("too large")


def test_header_claiming_huge_dimensions_is_a_decompression_bomb(tmp_path):
    # 100000 x 100000 = 10 gigapixels claimed by a file of a few dozen bytes.
    path = _write(tmp_path / "bomb.png", png_header_only(100_000, 100_000))
    assert path.stat().st_size < 200
    assert _reason(path).startswith("too large")
    assert _reason(path, max_pixels=5000).startswith("too large")
    assert DEFAULT_MAX_PIXELS < 100_000 * 100_000


def test_broken_symlink(tmp_path):
    link = tmp_path / "broken.png"
    os.symlink(tmp_path / "missing.png", link)
    assert "not found" in _reason(link)


def test_symlink_loop(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    os.symlink(b, a)
    os.symlink(a, b)
    assert _reason(a) == "symbolic link loop"


def test_permission_denied(tmp_path, monkeypatch):
    # Tests run as root, where chmod cannot cause the error: inject it instead.
    path = _write(tmp_path / "locked.png", _bytes(Image.new("RGB", (4, 4), RED), "PNG"))
    real_open = PIL.Image.open

    def fake_open(fp, *args, **kwargs):
        if isinstance(fp, (str, os.PathLike)) and Path(fp) == path:
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", fake_open)
    assert "permission denied" in _reason(path)


def test_zero_sized_image_header(tmp_path):
    path = _write(tmp_path / "zero.png", png_header_only(0, 5))
    with pytest.raises(ImageProblem):
        open_rgb(path)


def test_problem_reasons_are_short_single_lines(tmp_path):
    data = _noisy_jpeg(200)
    reasons = [
        _reason(_write(tmp_path / "e.jpg", b"")),
        _reason(_write(tmp_path / "t.jpg", b"<html></html>")),
        _reason(_write(tmp_path / "c.jpg", data[: len(data) // 3])),
        _reason(_write(tmp_path / "h.png", png_header_only(100_000, 100_000))),
    ]
    for reason in reasons:
        assert reason and "\n" not in reason and len(reason) <= 200
