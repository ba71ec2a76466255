"""Uploaded .zip datasets: crafted archives (zip slip, links, zip bombs, lying headers, junk) are refused cleanly.

Every refused archive must raise UploadError naming the entry and the reason,
leave no extraction folder behind, and write nothing anywhere else: each test
snapshots the tree around dest_root (and the working directory) before and after.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import time
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.state import SOURCE_ZIP, K
from tests.conftest import ROOT
from tests.helpers import make_dataset_folder, make_image
from tlcore.data import scan
from tlcore.upload_cleanup import ExtractionTracker, remove_extracted, remove_leftovers
from tlcore.uploads import UPLOAD_DIR_ENV, UploadError, extract_zip


def _png(colour=(210, 60, 50), seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    make_image(colour, size=24, seed=seed).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(entries: Sequence[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": wanted in one test
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return buffer.getvalue()


def _link(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    """A symbolic-link entry as `zip --symlinks` stores it: the target is the content."""
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def _patch_headers(
    data: bytes,
    name: str,
    *,
    size: int | None = None,
    crc: int | None = None,
    flags: int | None = None,
    method: int | None = None,
) -> bytes:
    """Rewrite fields of one entry in both its local header and its central-directory record."""
    out, encoded = bytearray(data), name.encode()
    # (signature, name length offset, header length, {field: offset})
    layouts = [
        (b"PK\x03\x04", 26, 30, {"flags": 6, "method": 8, "crc": 14, "size": 22}),
        (b"PK\x01\x02", 28, 46, {"flags": 8, "method": 10, "crc": 16, "size": 24}),
    ]
    values = {"size": size, "crc": crc, "flags": flags, "method": method}
    for signature, name_length_at, header_length, offsets in layouts:
        start, found = 0, 0
        while (start := out.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", out, start + name_length_at)[0]
            if bytes(out[start + header_length : start + header_length + length]) == encoded:
                found += 1
                for field, value in values.items():
                    if value is not None:
                        struct.pack_into(
                            "<H" if field in ("flags", "method") else "<I", out, start + offsets[field], value
                        )
            start += 4
        assert found == 1, f"{name!r} not found once in the {signature!r} headers"
    return bytes(out)


def _snapshot(*folders: Path) -> dict[str, tuple[int, int] | str]:
    """Every path under the folders: a file's size and mtime, or "folder" (whose mtime moves with mkdtemp)."""
    seen: dict[str, tuple[int, int] | str] = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            seen.update({os.path.join(dirpath, name): "folder" for name in dirnames})
            for name in filenames:
                info = os.lstat(os.path.join(dirpath, name))
                seen[os.path.join(dirpath, name)] = (info.st_size, info.st_mtime_ns)
    return seen


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """(dest_root, check): check(archive bytes, *expected message parts) asserts a clean refusal."""
    dest_root = tmp_path / "uploads"
    dest_root.mkdir()
    cwd = tmp_path / "cwd"  # a relative write would land here
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def check(data: bytes, *message_parts: str, absolute_targets: tuple[Path, ...] = (), **limits) -> str:
        for target in absolute_targets:
            assert not target.exists()
        outside = (tmp_path.parent,)  # tmp_path and its siblings: everything up to three '..' above a member
        sources = (io.BytesIO(data), _as_file(tmp_path, data))
        before = _snapshot(*outside)
        for source in sources:
            with pytest.raises(UploadError) as refused:
                extract_zip(source, dest_root=dest_root, name_hint="crafted.zip", **limits)
            message = str(refused.value)
            for part in message_parts:
                assert part in message, message
            assert list(dest_root.iterdir()) == []  # the fresh folder is gone, with anything extracted before
        after = _snapshot(*outside)
        assert after == before
        for target in absolute_targets:
            assert not target.exists()
        return message

    return dest_root, check


def _as_file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "crafted-source" / f"{uuid.uuid4().hex}.zip"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


# --- zip slip: absolute paths, '..', links ---------------------------------------------------


def test_absolute_paths_are_refused(sandbox, tmp_path):
    _, check = sandbox
    evil = Path("/tmp") / f"tllab-evil-{uuid.uuid4().hex}.png"
    data = _zip([("cats/ok.png", _png()), (str(evil), _png())])
    assert str(evil) in zipfile.ZipFile(io.BytesIO(data)).namelist()  # zipfile keeps the leading slash
    check(data, repr(str(evil)), "absolute path", absolute_targets=(evil,))
    check(
        _zip([("cats/ok.png", _png()), (str(tmp_path / "evil.png"), _png())]),
        "absolute path",
        absolute_targets=(tmp_path / "evil.png",),
    )


@pytest.mark.parametrize(
    "name", ["C:\\evil.png", "C:/evil.png", "c:evil.png", "\\evil.png", "\\\\server\\share\\evil.png"]
)
def test_windows_absolute_paths_are_refused(sandbox, name):
    _, check = sandbox
    check(_zip([("cats/ok.png", _png()), (name, _png())]), repr(name), "absolute path")


@pytest.mark.parametrize(
    "name",
    ["../evil.png", "a/../../evil.png", "../../../evil.png", "..\\evil.png", "cats\\..\\..\\evil.png", "cats/../.."],
)
def test_dot_dot_entries_are_refused(sandbox, name):
    _, check = sandbox
    check(_zip([("cats/ok.png", _png()), (name, _png())]), repr(name), "'..'")


def test_dot_dot_inside_the_archive_is_refused_too(sandbox):
    # Harmless in effect (stays inside), but no honest folder zip has it.
    _, check = sandbox
    check(_zip([("cats/../dogs/ok.png", _png())]), "'..'")


def test_links_are_refused_wherever_they_point(sandbox, tmp_path):
    _, check = sandbox
    for name, target in [
        ("cats/passwd.png", "/etc/passwd"),
        ("cats/up", "../../.."),
        ("cats/sibling.png", str(tmp_path / "secret.png")),
        ("cats/inside.png", "ok.png"),
    ]:
        data = _zip([("cats/ok.png", _png()), _link(name, target), (f"{name}/evil.png", _png())])
        check(data, repr(name), "symbolic link", "links are not allowed")


def test_an_entry_without_a_name_is_refused(sandbox):
    _, check = sandbox
    check(_zip([("cats/ok.png", _png()), ("./", b"")]), "'./'", "no file name")
    check(_zip([("cats/ok.png", _png()), (".", b"x")]), "'.'", "no file name")


# --- zip bombs: limits on bytes actually written --------------------------------------------


def test_total_size_is_limited_by_bytes_written(sandbox):
    _, check = sandbox
    rng = np.random.default_rng(0)
    entries = [(f"cats/{i}.png", rng.bytes(100_000)) for i in range(5)]  # incompressible: ratio about 1
    message = check(_zip(entries, zipfile.ZIP_STORED), "'cats/3.png'", "more than 0.3 MiB", max_total_bytes=300_000)
    assert "zip bomb" in message


def test_a_highly_compressed_entry_is_refused(sandbox):
    _, check = sandbox
    data = _zip([("cats/ok.png", _png()), ("cats/zeros.png", b"\0" * 3_000_000)])
    assert len(data) < 10_000  # about 1000x
    check(data, "'cats/zeros.png'", "expands more than 200x", "zip bomb")
    check(data, "'cats/zeros.png'", "more than 2.0 MiB", max_total_bytes=2 << 20, max_ratio=5000)


def test_many_moderately_compressed_entries_are_refused_by_the_overall_ratio(sandbox):
    # Each entry stays under the 1 MiB a ratio needs; together they do not.
    _, check = sandbox
    data = _zip([(f"cats/{i}.png", b"\0" * 500_000) for i in range(6)])
    check(data, "'cats/2.png'", "expands more than 200x its size overall", "zip bomb")


def test_a_lying_small_declared_size_is_caught_by_the_checksum(sandbox):
    # The entry declares 1000 bytes but holds 3 MB. zipfile reads no more than
    # the declared size, and the CRC of what it read does not match.
    _, check = sandbox
    for method in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
        data = _patch_headers(
            _zip([("cats/ok.png", _png()), ("cats/lie.png", b"\0" * 3_000_000)], method), "cats/lie.png", size=1000
        )
        check(data, "'cats/lie.png'", "cannot be extracted", "Bad CRC-32")


def test_a_lying_small_declared_size_with_a_matching_checksum_writes_only_the_declared_bytes(tmp_path):
    # The liar fixed the CRC too: zipfile still yields only the declared bytes, so what is written is bounded.
    content = b"\0" * 3_000_000
    data = _patch_headers(
        _zip([("cats/lie.png", content), ("dogs/ok.png", _png())]),
        "cats/lie.png",
        size=1000,
        crc=zlib.crc32(content[:1000]),
    )
    root = extract_zip(io.BytesIO(data), dest_root=tmp_path / "uploads")
    assert (root / "cats" / "lie.png").stat().st_size == 1000


def test_a_lying_huge_declared_size_is_not_what_counts(tmp_path):
    # Limits count bytes written: an entry declaring 2 GiB that holds 100 bytes is fine.
    data = _patch_headers(_zip([("cats/a.png", b"x" * 100), ("dogs/b.png", _png())]), "cats/a.png", size=2**31)
    assert zipfile.ZipFile(io.BytesIO(data)).getinfo("cats/a.png").file_size == 2**31
    root = extract_zip(io.BytesIO(data), dest_root=tmp_path / "uploads", max_total_bytes=1 << 20)
    assert (root / "cats" / "a.png").read_bytes() == b"x" * 100


def test_too_many_entries_are_refused_before_anything_is_written(sandbox):
    _, check = sandbox
    entries = [(f"cats/{i}.png", b"") for i in range(6)]
    check(_zip(entries), "6 entries, more than the limit of 5", max_files=5)
    check(_zip([("cats/", b""), ("dogs/", b""), ("birds/", b""), *entries[:3]]), "6 entries", max_files=5)


# --- corrupt, duplicate, empty, not a zip ---------------------------------------------------


def test_duplicate_entries_are_refused(sandbox):
    _, check = sandbox
    check(_zip([("cats/a.png", _png()), ("cats/a.png", _png(seed=1))]), "'cats/a.png'", "appears twice")


def test_a_file_and_a_folder_of_the_same_name_are_refused(sandbox):
    _, check = sandbox
    check(_zip([("cats", _png()), ("cats/a.png", _png())]), "'cats/a.png'", "cannot be made")


@pytest.mark.parametrize(
    "data", [b"", b"hello, not a zip", b"PK\x03\x04" + b"\0" * 100], ids=["empty-file", "text", "zip-signature-only"]
)
def test_a_file_that_is_not_a_zip_is_refused(sandbox, data):
    _, check = sandbox
    check(data, "crafted.zip is not a readable .zip file")


def test_a_truncated_zip_is_refused(sandbox):
    _, check = sandbox
    data = _zip([(f"cats/{i}.png", _png(seed=i)) for i in range(4)])
    check(data[: len(data) // 2], "crafted.zip is not a readable .zip file")
    check(data[:-10], "crafted.zip is not a readable .zip file")  # cut inside the end-of-archive record


def test_corrupt_entry_data_is_refused(sandbox):
    _, check = sandbox
    data = bytearray(_zip([("cats/ok.png", _png()), ("cats/zeros.png", b"\0" * 20_000)]))
    inner = data.find(b"cats/zeros.png") + len("cats/zeros.png") + 5  # inside its deflate stream
    data[inner : inner + 8] = b"\xff" * 8
    check(bytes(data), "'cats/zeros.png'", "cannot be extracted")


def test_encrypted_and_unsupported_entries_are_refused(sandbox):
    _, check = sandbox
    data = _zip([("cats/ok.png", _png()), ("cats/secret.png", _png(seed=1))])
    check(_patch_headers(data, "cats/secret.png", flags=0x1), "'cats/secret.png'", "cannot be extracted", "encrypted")
    check(
        _patch_headers(data, "cats/secret.png", method=99), "'cats/secret.png'", "cannot be extracted", "not supported"
    )


def test_an_archive_without_files_is_refused(sandbox):
    _, check = sandbox
    check(_zip([]), "crafted.zip contains no files")
    check(_zip([("cats/", b""), ("dogs/", b"")]), "crafted.zip contains no files")


# --- good archives ---------------------------------------------------------------------------


def _zip_folder(folder: Path, prefix: str = "", extra: Sequence[tuple[str, bytes]] = ()) -> bytes:
    entries = [
        (prefix + p.relative_to(folder).as_posix(), p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()
    ]
    return _zip(entries + list(extra))


def test_a_single_top_level_folder_is_returned_and_macos_junk_is_ignored(tmp_path):
    folder = make_dataset_folder(tmp_path / "src", n_train=3, n_val=2, size=24)
    junk = [("__MACOSX/pets/train/cats/._cats_000.png", b"\0\5\26\7"), ("pets/.DS_Store", b"\0")]
    root = extract_zip(io.BytesIO(_zip_folder(folder, "pets/", junk)), dest_root=tmp_path / "uploads")
    assert root.name == "pets" and root.parent.parent == tmp_path / "uploads"
    info = scan(root)
    assert list(info.class_names) == ["cats", "dogs"]
    assert info.counts()["train"] == {"cats": 3, "dogs": 3}


def test_class_folders_at_the_top_are_returned_as_the_extraction_folder(tmp_path):
    folder = make_dataset_folder(tmp_path / "src", n_train=3, n_val=2, size=24, split_names=None)
    data = _zip_folder(folder, extra=[("__MACOSX/cats/._cats_000.png", b"\0\5\26\7")])
    root = extract_zip(io.BytesIO(data), dest_root=tmp_path / "uploads")
    assert root.parent == tmp_path / "uploads" and root.name.startswith("tllab-upload-")
    assert sorted(p.name for p in root.iterdir()) == ["__MACOSX", "cats", "dogs"]
    assert list(scan(root).class_names) == ["cats", "dogs"]  # the scan ignores __MACOSX


def test_each_upload_gets_its_own_folder_under_the_upload_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(UPLOAD_DIR_ENV, str(tmp_path / "env-uploads"))
    data = _zip([("cats/a.png", _png()), ("dogs/b.png", _png((50, 80, 210)))])
    first, second = extract_zip(io.BytesIO(data)), extract_zip(io.BytesIO(data))
    assert first != second and first.parent == second.parent == tmp_path / "env-uploads"


# --- the sidebar's zip uploader (AppTest) ----------------------------------------------------


def _zip_app(tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv(UPLOAD_DIR_ENV, str(tmp_path / "app-uploads"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state[K.source] = SOURCE_ZIP
    return at.run()


def test_the_sidebar_refuses_a_crafted_zip_with_a_clear_error(tmp_path, monkeypatch):
    at = _zip_app(tmp_path, monkeypatch)
    assert not at.exception
    assert "Choose a dataset in the sidebar" in at.main.info[0].value
    at.file_uploader(key=K.zip_upload).set_value(
        ("pets.zip", _zip([("cats/ok.png", _png()), ("../evil.png", _png())]), "application/zip")
    )
    at = at.run()
    assert not at.exception
    errors = [e.value for e in at.sidebar.error]
    assert any("'../evil.png'" in e and "points outside" in e for e in errors), errors
    assert not at.session_state[K.zip_dir]
    assert not (tmp_path / "evil.png").exists() and list((tmp_path / "app-uploads").iterdir()) == []


def test_the_sidebar_extracts_a_good_zip_and_the_dataset_page_shows_it(tmp_path, monkeypatch):
    folder = make_dataset_folder(tmp_path / "src", n_train=4, n_val=2, size=24)
    at = _zip_app(tmp_path, monkeypatch)
    at.file_uploader(key=K.zip_upload).set_value(("pets.zip", _zip_folder(folder, "pets/"), "application/zip"))
    at = at.run()
    assert not at.exception
    assert not at.sidebar.error
    root = Path(at.session_state[K.zip_dir])
    assert root.name == "pets" and (tmp_path / "app-uploads") in root.parents
    captions = [c for image in at.main.image for c in image.captions]
    assert captions and set(captions) <= {"cats", "dogs"}  # the sample grid, labelled by class
    assert "cats, dogs" in " ".join(m.value for m in at.main.markdown)


def test_a_refused_zip_is_examined_once_and_replaces_the_previous_dataset(tmp_path, monkeypatch):
    import tlcore.uploads as uploads

    folder = make_dataset_folder(tmp_path / "src", n_train=4, n_val=2, size=24)
    at = _zip_app(tmp_path, monkeypatch)
    at.file_uploader(key=K.zip_upload).set_value(("pets.zip", _zip_folder(folder, "pets/"), "application/zip"))
    at = at.run()
    good_root = Path(at.session_state[K.zip_dir])
    assert good_root.is_dir()

    calls = []
    real_extract = uploads.extract_zip

    def counted_extract(*a, **kw):
        calls.append(1)
        return real_extract(*a, **kw)

    monkeypatch.setattr(uploads, "extract_zip", counted_extract)
    at.file_uploader(key=K.zip_upload).set_value(("pets.zip", _zip([("/abs.png", _png())]), "application/zip"))
    at = at.run()
    at = at.run()  # any later rerun shows the same refusal without extracting again
    assert not at.exception and len(calls) == 1
    assert sum("absolute path" in e.value for e in at.sidebar.error) == 1
    assert not at.session_state[K.zip_dir]  # the earlier archive's images are not shown under this one
    assert "Choose a dataset in the sidebar" in at.main.info[0].value
    assert not good_root.exists()  # the earlier extraction was removed with it
    assert list((tmp_path / "app-uploads").iterdir()) == []


def test_remove_extracted_removes_only_folders_the_extraction_made(tmp_path):
    data = _zip([("pets/cats/a.png", _png()), ("pets/dogs/b.png", _png((50, 80, 210)))])
    root = extract_zip(io.BytesIO(data), dest_root=tmp_path / "uploads")
    other = tmp_path / "my-data" / "pets"
    other.mkdir(parents=True)
    assert remove_extracted(other) is False and other.is_dir()
    assert remove_extracted(root) is True
    assert list((tmp_path / "uploads").iterdir()) == []


# --- removing extraction folders nobody needs ---------------------------------------------------

DAY = 24 * 3600


def _extraction(uploads: Path, age_s: float = 0.0) -> Path:
    """A folder extract_zip made under `uploads`, last modified age_s ago; returns the folder itself."""
    root = extract_zip(
        io.BytesIO(_zip([("pets/cats/a.png", _png()), ("pets/dogs/b.png", _png((50, 80, 210)))])), dest_root=uploads
    )
    folder = root.parent
    _age(folder, age_s)
    return folder


def _age(path: Path, age_s: float) -> None:
    then = time.time() - age_s
    os.utime(path, (then, then), follow_symlinks=False)


def test_leftovers_older_than_a_day_are_removed_and_nothing_else(tmp_path):
    uploads = tmp_path / "uploads"
    old, new, in_use = _extraction(uploads, 2 * DAY), _extraction(uploads, 3600), _extraction(uploads, 2 * DAY)
    outside = tmp_path / "outside"
    (outside / "tllab-upload-zzzzzzzz").mkdir(parents=True)  # someone's data that looks like ours
    (outside / "keep.png").write_bytes(_png())
    (old / "link-out").symlink_to(outside)  # inside an old extraction: removed as a link, never followed
    _age(old, 2 * DAY)
    foreign = {
        "my-data": "dir",  # not our prefix
        "tllab-upload-short": "dir",  # our prefix, not the name mkdtemp makes
        "tllab-upload-ABCDEFGH": "dir",
        "tllab-upload-12345678.txt": "dir",
        "tllab-upload-filefile": "file",  # the exact name, but a file
        "tllab-upload-linklink": "link",  # the exact name, but a link to a folder
        "tllab-upload-deadlink": "dead link",
    }
    for name, kind in foreign.items():
        path = uploads / name
        if kind == "dir":
            path.mkdir()
        elif kind == "file":
            path.write_text("not ours")
        else:
            path.symlink_to(outside / "tllab-upload-zzzzzzzz" if kind == "link" else tmp_path / "gone")
        _age(path, 30 * DAY)
    _age(outside / "tllab-upload-zzzzzzzz", 30 * DAY)

    removed = remove_leftovers(uploads, keep=lambda folder: folder == in_use)

    assert removed == [old]
    assert not old.exists() and new.is_dir() and in_use.is_dir()
    assert sorted(p.name for p in uploads.iterdir()) == sorted([new.name, in_use.name, *foreign])
    assert (outside / "keep.png").read_bytes() == _png() and (outside / "tllab-upload-zzzzzzzz").is_dir()
    assert (uploads / "tllab-upload-filefile").read_text() == "not ours"
    assert (uploads / "tllab-upload-linklink").is_symlink()


def test_leftovers_default_to_the_upload_dir_and_a_missing_one_is_no_error(tmp_path, monkeypatch):
    monkeypatch.setenv(UPLOAD_DIR_ENV, str(tmp_path / "env-uploads"))
    assert remove_leftovers() == []
    old = _extraction(tmp_path / "env-uploads", 2 * DAY)
    assert remove_leftovers() == [old]


def test_remove_extracted_never_follows_a_link_named_like_an_extraction(tmp_path):
    target = tmp_path / "precious"
    (target / "pets").mkdir(parents=True)
    link = tmp_path / "uploads" / "tllab-upload-abcdefgh"
    link.parent.mkdir()
    link.symlink_to(target)
    assert remove_extracted(link / "pets") is False and remove_extracted(link) is False
    assert (target / "pets").is_dir() and link.is_symlink()


def test_the_tracker_removes_folders_of_ended_sessions_unless_a_job_reads_them(tmp_path):
    uploads = tmp_path / "uploads"
    alive = {"tab-a": True, "tab-b": False, "tab-c": None, "tab-e": False}  # None: the runtime cannot say
    running = {"owner-e"}
    folders = {name: _extraction(uploads) for name in alive}
    tracker = ExtractionTracker()
    for name, folder in folders.items():
        tracker.track(folder / "pets", name, f"owner-{name[-1]}")

    def in_use(owner: str) -> bool:
        return owner in running

    assert tracker.sweep(alive.get, in_use) == [folders["tab-b"]]
    assert folders["tab-e"].is_dir()  # its session ended, but its owner's training still reads the images
    running.clear()
    assert tracker.sweep(alive.get, in_use) == [folders["tab-e"]]
    assert tracker.sweep(alive.get, in_use, now=time.time() + DAY - 60) == []
    # Unknown liveness falls back to age: a day after the upload, it goes.
    assert tracker.sweep(alive.get, in_use, now=time.time() + DAY + 60) == [folders["tab-c"]]
    assert folders["tab-a"].is_dir() and tracker.folders() == [folders["tab-a"]]


def test_a_released_folder_goes_once_its_job_ends_and_remove_all_takes_the_rest(tmp_path):
    uploads = tmp_path / "uploads"
    first, second = _extraction(uploads), _extraction(uploads)
    tracker = ExtractionTracker()
    tracker.track(first / "pets", "tab", "me")
    tracker.track(second / "pets", "tab", "me")
    tracker.release(first / "pets")  # the session uploaded another archive while its run still trains
    assert tracker.sweep(lambda s: True, lambda owner: True) == []
    assert tracker.sweep(lambda s: True, lambda owner: False) == [first]
    assert second.is_dir()
    assert tracker.remove_all() == [second]
    assert list(uploads.iterdir()) == [] and tracker.folders() == []


def test_a_tracked_folder_swapped_for_a_link_is_not_followed(tmp_path):
    uploads = tmp_path / "uploads"
    folder = _extraction(uploads)
    tracker = ExtractionTracker()
    tracker.track(folder / "pets", "tab", "me")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    shutil.rmtree(folder)
    folder.symlink_to(precious)
    assert tracker.sweep(lambda s: False, lambda owner: False) == []
    assert tracker.remove_all() == []
    assert (precious / "keep.txt").read_text() == "mine"


def test_sweeps_from_reruns_are_at_most_once_a_minute():
    tracker = ExtractionTracker()
    assert tracker.sweep_due(60, now=1000.0) is True
    assert tracker.sweep_due(60, now=1059.0) is False
    assert tracker.sweep_due(60, now=1060.0) is True


def test_the_app_removes_the_upload_of_a_session_that_ended_and_old_leftovers_at_start(tmp_path, monkeypatch):
    import streamlit as st

    from dashboard import housekeeping

    uploads = tmp_path / "app-uploads"
    leftover, recent = _extraction(uploads, 2 * DAY), _extraction(uploads, 3600)
    housekeeping.tracker.clear()  # a fresh server
    monkeypatch.setattr(housekeeping, "SWEEP_EVERY_S", 0.0)
    ended: set[str] = set()
    monkeypatch.setattr(housekeeping, "session_alive", lambda session: session not in ended)
    # AppTest has no server runtime to ask: each test session is named by its owner id instead.
    monkeypatch.setattr(housekeeping, "session_id", lambda: st.session_state[K.owner])
    folder = make_dataset_folder(tmp_path / "src", n_train=4, n_val=2, size=24)

    first = _zip_app(tmp_path, monkeypatch)  # the server's first session: leftovers older than a day go
    assert not leftover.exists() and recent.is_dir()
    first.file_uploader(key=K.zip_upload).set_value(("pets.zip", _zip_folder(folder, "pets/"), "application/zip"))
    first.run()
    first_upload = Path(first.session_state[K.zip_dir]).parent
    second = _zip_app(tmp_path, monkeypatch)
    second.file_uploader(key=K.zip_upload).set_value(("pets.zip", _zip_folder(folder, "pets/"), "application/zip"))
    second.run()
    second_upload = Path(second.session_state[K.zip_dir]).parent
    assert first_upload.is_dir() and second_upload.is_dir()
    assert housekeeping.tracker().folders() == sorted([first_upload, second_upload])

    ended.add(first.session_state[K.owner])  # the first tab is closed
    second.run()  # any session's rerun sweeps
    assert not second.exception
    assert not first_upload.exists() and second_upload.is_dir() and recent.is_dir()
    assert "cats, dogs" in " ".join(m.value for m in second.main.markdown)


def test_session_liveness_is_asked_of_the_runtime_and_unknown_when_it_cannot_say(monkeypatch):
    from types import SimpleNamespace

    from streamlit import runtime

    from dashboard import housekeeping

    sessions = {"connected", "waiting-to-reconnect"}
    manager = SimpleNamespace(get_session_info=lambda session: object() if session in sessions else None)
    monkeypatch.setattr(runtime, "exists", lambda: True)
    monkeypatch.setattr(runtime, "get_instance", lambda: SimpleNamespace(_session_mgr=manager))
    assert housekeeping.session_alive("connected") is True
    assert housekeeping.session_alive("waiting-to-reconnect") is True
    assert housekeeping.session_alive("closed-tab") is False
    assert housekeeping.session_alive("") is None
    monkeypatch.setattr(runtime, "get_instance", lambda: SimpleNamespace(_session_mgr=SimpleNamespace()))
    assert housekeeping.session_alive("connected") is None  # the internal API changed: unknown, never "ended"
    monkeypatch.setattr(runtime, "exists", lambda: False)
    assert housekeeping.session_alive("connected") is None


def test_a_reload_keeps_the_uploaded_zip_and_says_so_when_it_is_gone(tmp_path, monkeypatch):
    from tlcore.upload_cleanup import remove_extracted

    folder = make_dataset_folder(tmp_path / "src", n_train=4, n_val=2, size=24)
    first = _zip_app(tmp_path, monkeypatch)
    first.file_uploader(key=K.zip_upload).set_value(("pets.zip", _zip_folder(folder, "pets/"), "application/zip"))
    first = first.run()
    root = first.session_state[K.zip_dir]

    def reload() -> AppTest:  # a new session of the same owner: nothing in it but the URL's owner
        again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        again.query_params["owner"] = first.query_params["owner"]
        return again.run()

    again = reload()
    assert not again.exception
    assert (again.session_state[K.source], again.session_state[K.zip_dir]) == (SOURCE_ZIP, root)
    assert any("Using **pets.zip**" in c.value for c in again.sidebar.caption)
    assert "cats, dogs" in " ".join(m.value for m in again.main.markdown)  # the dataset page shows the upload
    # The new session holds the extraction too, so the first session's end does not remove it.
    from dashboard import housekeeping
    from tlcore.upload_cleanup import extraction_folder

    assert extraction_folder(root) in housekeeping.tracker().folders()
    # The server restarted (its extractions are gone): the tab says so instead of showing the sample silently.
    remove_extracted(root)
    gone = reload()
    assert gone.session_state[K.source] != SOURCE_ZIP and not gone.session_state[K.zip_dir]
    assert any("pets.zip are no longer on the server" in w.value for w in gone.sidebar.warning)
