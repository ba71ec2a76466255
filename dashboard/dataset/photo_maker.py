"""The Dataset page's maker: name classes, then add photos to each from the webcam or a camera roll.

View code over tlcore.photos (where photos are checked, re-encoded, stored per owner and split).
"""

from __future__ import annotations

import io
from urllib.parse import urlparse

import streamlit as st
from PIL import Image

from dashboard.dataset_source import my_photos
from tlcore.photos import PhotoError, PhotoStore

MIN_CLASSES = 2
THUMBS_SHOWN = 12
THUMB_PX = 96
_CAMERA_ROUND = "photo_camera_round"  # session key: {class: n}; a new n is a fresh camera, ready for the next shot
_UPLOAD_ROUND = "photo_upload_round"  # session key: {class: n}; a new n is an empty uploader
_NOTICE = "photo_notice"
# session key: the class whose tab stays open. A count in a tab's label changes with each photo, and tabs
# with new labels open at their default: without this, every snapshot of the second class jumped back to the first.
_OPEN_CLASS = "photo_open_class"
# Each snapshot replaces the camera with a fresh one, whose box shrinks and grows as its video starts. The
# browser's scroll anchoring keeps what is below it in place by scrolling the page: after a few snapshots the
# camera had left the screen (and an off-screen video pauses). Without anchoring the camera stays put.
_CAMERA_STAYS_PUT = "<style>[data-testid='stMain'] { overflow-anchor: none; }</style>"
BLANK_SPREAD = 4  # grey levels: a snapshot whose darkest and brightest pixels are this close is all one colour


@st.cache_data(max_entries=4096, show_spinner=False)
def _thumbnail(path: str, mtime: float) -> bytes:
    """A photo's tile, THUMB_PX wide, made once per file version: given the 512 px file, Streamlit decoded,
    shrank and re-encoded every tile on every rerun of the Dataset page (30 students, 12 tiles a class)."""
    with Image.open(path) as image:
        image.thumbnail((THUMB_PX, THUMB_PX * 4))
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


def camera_refusal(url: str) -> str:
    """Why a browser will not give this page the camera ("" when it will: HTTPS or this computer)."""
    parsed = urlparse(url or "")
    if parsed.scheme == "https" or parsed.hostname in {"localhost", "127.0.0.1", "::1", None}:
        return ""
    return (
        f"Browsers give a page the camera only over HTTPS or on the computer itself, and this page is "
        f"{parsed.scheme}://{parsed.hostname}: add photos from files instead, or ask the teacher to start the "
        "class server with HTTPS (README: Teaching a class)."
    )


def blank_picture(data: bytes) -> bool:
    """Whether a snapshot is all one colour (a camera still starting gives black frames, a covered one too)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("L", (64, 64))  # a JPEG decodes at 1/8 scale: a few ms for a webcam frame
            grey = image.convert("L")
    except (OSError, ValueError):
        return False  # not a picture at all: the store refuses it and says why
    darkest, brightest = min(grey.getdata()), max(grey.getdata())
    return brightest - darkest <= BLANK_SPREAD


def _round(key: str, class_name: str) -> int:
    return int(st.session_state.setdefault(key, {}).get(class_name, 0))


def _next_round(key: str, class_name: str) -> None:
    rounds = st.session_state.setdefault(key, {})
    rounds[class_name] = rounds.get(class_name, 0) + 1


def _add_class() -> None:
    try:
        my_photos().add_class(st.session_state.get("photo_new_class", ""))
        st.session_state["photo_new_class"] = ""
    except PhotoError as err:
        st.session_state[_NOTICE] = str(err)


def _delete(class_name: str, file_name: str) -> None:
    st.session_state[_OPEN_CLASS] = class_name
    try:
        my_photos().delete(class_name, file_name)
    except PhotoError as err:
        st.session_state[_NOTICE] = str(err)


def _remove_class(class_name: str) -> None:
    my_photos().remove_class(class_name)


def _store_all(store: PhotoStore, class_name: str, files: list[tuple[str, bytes]]) -> list[str]:
    """Store each file in the class; the refusals, each naming its file and why."""
    refused = []
    for name, data in files:
        try:
            store.add(class_name, data, name)
        except PhotoError as err:
            refused.append(str(err))
    return refused


def _class_panel(store: PhotoStore, class_name: str, camera_note: str) -> None:
    photos = store.photos(class_name)
    if camera_note:
        st.caption(camera_note)
    elif st.toggle("Use the camera", key=f"photo_camera_on_{class_name}"):
        st.html(_CAMERA_STAYS_PUT)
        shot = st.camera_input(
            f"Snapshot for {class_name}", key=f"photo_camera_{class_name}_{_round(_CAMERA_ROUND, class_name)}"
        )
        if shot is not None:  # kept at once; a fresh camera takes the next one
            if blank_picture(shot.getvalue()):  # kept, it would train on nothing (and a second would be the same file)
                st.session_state[_NOTICE] = (
                    "The camera's picture was all one colour (a camera still starting, or covered): nothing was "
                    "added. Take it again once you see the picture."
                )
            elif refused := _store_all(store, class_name, [(f"snapshot {len(photos) + 1}", shot.getvalue())]):
                st.session_state[_NOTICE] = refused[0]
            st.session_state[_OPEN_CLASS] = class_name
            _next_round(_CAMERA_ROUND, class_name)
            st.rerun()
    files = st.file_uploader(
        f"Add photos to {class_name}",
        type=["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "heic", "heif"],
        accept_multiple_files=True,
        key=f"photo_files_{class_name}_{_round(_UPLOAD_ROUND, class_name)}",
        help="A phone offers its camera roll here. HEIC photos (an iPhone's default) are refused with how to fix it.",
    )
    if files:
        refused = _store_all(store, class_name, [(f.name, f.getvalue()) for f in files])
        st.session_state[_NOTICE] = "\n\n".join(refused) if refused else ""
        st.session_state[_OPEN_CLASS] = class_name
        _next_round(_UPLOAD_ROUND, class_name)
        st.rerun()
    shown = photos[-THUMBS_SHOWN:]
    if shown:
        st.caption(f"The newest {len(shown)} of {len(photos)}; ✕ deletes one.")
    # Small tiles that wrap: four columns would stack into full-width photos on a phone.
    with st.container(horizontal=True, gap="small"):
        for photo in shown:
            try:
                tile = _thumbnail(str(photo.path), photo.path.stat().st_mtime)
            except OSError:  # deleted since it was listed (the same student in another tab)
                continue
            with st.container(width=THUMB_PX + 8, gap=None):
                st.image(tile, width=THUMB_PX)
                st.button(
                    "✕", key=f"photo_del_{photo.name}", on_click=_delete, args=(class_name, photo.name), help="Delete"
                )
    st.button(
        f"Delete the class “{class_name}”", key=f"photo_rm_{class_name}", on_click=_remove_class, args=(class_name,)
    )


def photo_maker() -> None:
    """Classes, a count for each, and a panel per class to add and delete photos; the .zip to take away."""
    store = my_photos()
    st.subheader("Make your dataset")
    counts = store.counts()
    with st.form("photo_class_form", border=False, clear_on_submit=False, enter_to_submit=True):
        st.text_input("New class", key="photo_new_class", placeholder="e.g. cups", max_chars=40)
        st.form_submit_button("Add class", on_click=_add_class)
    if notice := st.session_state.pop(_NOTICE, None):
        st.warning(notice)
    if len(counts) < MIN_CLASSES:
        st.info(f"Name {MIN_CLASSES} or more classes (say, *cups* and *keys*), then add 20 or more photos to each.")
    if not counts:
        return
    camera_note = camera_refusal(st.context.url or "")
    labels = {name: f"{name} ({count})" for name, count in counts.items()}
    tabs = st.tabs(list(labels.values()), default=labels.get(st.session_state.get(_OPEN_CLASS, "")))
    for tab, class_name in zip(tabs, counts):
        with tab:
            _class_panel(store, class_name, camera_note)
    total = sum(counts.values())
    st.caption(f"{total} of at most {store.max_images} photos, {store.bytes_used() / 2**20:.1f} MB.")
    if total:
        st.download_button(
            "Download as .zip (class folders)",
            store.zip_bytes,  # made when clicked: hundreds of photos are megabytes
            file_name="my-photos.zip",
            mime="application/zip",
            key="photo_zip",
            on_click="ignore",
        )
