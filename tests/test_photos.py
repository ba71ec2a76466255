"""A dataset made in the lab (tlcore.photos): each person's photos, re-encoded, split by hash, under quota."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tlcore.data import TRAIN, VALIDATION, scan
from tlcore.photos import VALIDATION_EVERY, PhotoError, PhotoStore, checked_class_name
from tlcore.uploads import extract_zip

OWNER, OTHER = "a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2"


def _jpeg(seed: int, size: tuple[int, int] = (64, 48), exif: Image.Exif | None = None) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", exif=exif if exif is not None else Image.Exif())
    return out.getvalue()


@pytest.fixture
def store(tmp_path) -> PhotoStore:
    photos = PhotoStore(OWNER, tmp_path)
    photos.add_class("cups")
    photos.add_class("keys")
    return photos


def test_a_phone_photo_is_stored_upright_small_and_without_exif_or_gps(store):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned; the picture must be rotated to stand upright
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}  # GPS latitude
    exif[0x010F] = "PhoneMaker"
    photo = store.add("cups", _jpeg(0, size=(2000, 1000), exif=exif), "IMG_0001.JPG")
    with Image.open(photo.path) as stored:
        assert stored.size == (256, 512)  # turned upright (portrait), the long side 512
        assert not stored.getexif() and "exif" not in stored.info
    assert photo.path.is_relative_to(store.root) and OWNER in photo.path.parts


def test_photos_split_by_their_hash_and_the_lab_scans_them_like_any_folder(store):
    for seed in range(40):
        store.add("cups" if seed % 2 else "keys", _jpeg(seed), f"p{seed}.jpg")
    splits = [p.split for p in store.photos()]
    assert 0 < splits.count(VALIDATION) < splits.count(TRAIN)
    # Stable: a photo keeps its split however many come after it.
    first = {p.name: p.split for p in store.photos()}
    store.add("cups", _jpeg(99), "late.jpg")
    assert all(first[p.name] == p.split for p in store.photos() if p.name in first)
    info = scan(store.root)
    assert info.class_names == ["cups", "keys"] and info.num_images() == 41
    assert info.num_images(VALIDATION) == sum(p.split == VALIDATION for p in store.photos())
    assert abs(info.num_images(VALIDATION) / 41 - 1 / VALIDATION_EVERY) < 0.15


def test_deleting_one_photo_and_a_class(store):
    kept, gone = store.add("cups", _jpeg(1), "a.jpg"), store.add("cups", _jpeg(2), "b.jpg")
    store.delete("cups", gone.name)
    assert [p.name for p in store.photos("cups")] == [kept.name]
    with pytest.raises(PhotoError, match="no photo"):
        store.delete("cups", "../../other/run.json")
    store.remove_class("cups")
    assert store.classes() == ["keys"]


def test_what_cannot_be_a_photo_is_refused_naming_the_file(store):
    heic = b"\x00\x00\x00\x18ftypheic" + bytes(64)
    with pytest.raises(PhotoError, match=r"IMG_7.HEIC: a HEIC/HEIF photo .*Most Compatible"):
        store.add("cups", heic, "IMG_7.HEIC")
    with pytest.raises(PhotoError, match=r"notes.txt: not an image"):
        store.add("cups", b"shopping list", "notes.txt")
    with pytest.raises(PhotoError, match="no class"):
        store.add("plates", _jpeg(0), "x.jpg")
    assert store.photos() == []


@pytest.mark.parametrize("name", ["", "a/b", "..", ".hidden", "x" * 41, "bell\x07"])
def test_class_names_are_one_plain_folder_name(name):
    with pytest.raises(PhotoError):
        checked_class_name(name)


def test_quotas_for_images_and_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("TLLAB_MAX_IMAGES", "3")
    store = PhotoStore(OWNER, tmp_path)
    store.add_class("cups")
    for seed in range(3):
        store.add("cups", _jpeg(seed), f"{seed}.jpg")
    with pytest.raises(PhotoError, match=r"3.jpg: not added, you have 3 photos"):
        store.add("cups", _jpeg(3), "3.jpg")
    monkeypatch.setenv("TLLAB_MAX_IMAGES", "500")
    monkeypatch.setenv("TLLAB_MAX_PHOTO_MB", "1")
    big = PhotoStore(OWNER, tmp_path)

    def add_until_refused() -> None:
        for seed in range(10, 60):
            big.add("cups", _jpeg(seed, size=(512, 512)), f"{seed}.jpg")

    with pytest.raises(PhotoError, match="would pass 1 MB"):
        add_until_refused()


def test_one_persons_store_holds_only_their_photos(store, tmp_path):
    store.add("cups", _jpeg(5), "mine.jpg")
    other = PhotoStore(OTHER, tmp_path)
    assert other.classes() == [] and other.photos() == []
    with pytest.raises(PhotoError):
        PhotoStore("../" + OWNER, tmp_path)


def test_the_zip_download_is_accepted_back_by_the_labs_upload(store, tmp_path):
    for seed in range(6):
        store.add("cups" if seed % 2 else "keys", _jpeg(seed), f"{seed}.jpg")
    root = extract_zip(io.BytesIO(store.zip_bytes()), dest_root=tmp_path / "uploads")
    info = scan(root)
    assert info.class_names == ["cups", "keys"] and info.num_images() == 6
