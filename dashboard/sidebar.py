"""The sidebar every page shares: the dataset (sample, folder, .zip), image size and weights."""

from __future__ import annotations

import streamlit as st

from dashboard import identity
from dashboard.devices import device_sidebar
from dashboard.identity import owner as current_owner
from dashboard.kept_settings import RESTORE_NOTICE
from dashboard.state import (
    IMAGE_SIZES,
    SOURCE_FOLDER,
    SOURCE_ZIP,
    SOURCES,
    WEIGHTS_CHOICES,
    WEIGHTS_FILE,
    WEIGHTS_IMAGENET,
    WEIGHTS_SCRATCH,
    K,
    weights_ready,
)
from tlcore.backbone_facts import DEFAULT_BACKBONE
from tlcore.backbones import WeightsError, get_backbone
from tlcore.jobs import JOBS
from tlcore.paths import DataRootError, data_root


def _offered(choices: tuple[str, ...], withheld: set[str], key: str) -> list[str]:
    """The choices this session may make; a withheld value it holds (kept from before) falls back to the first."""
    offered = [c for c in choices if c not in withheld]
    if st.session_state.get(key) not in offered:
        st.session_state[key] = offered[0]
    return offered


def sidebar() -> None:
    """Dataset, image size and weights: shared by every page.

    A student in a class gets no path on the server: no folder outside the teacher's TLLAB_DATA_ROOT (none
    without one), and no weights file but the server's own (through "ImageNet").
    """
    fence = _fence_name()
    student = identity.in_class() and not identity.actor().teacher
    with st.sidebar:
        st.header("Data")
        no_folders = {SOURCE_FOLDER} if student and fence is None else set()
        st.radio("Dataset", _offered(SOURCES, no_folders, K.source), key=K.source)
        if notice := st.session_state.pop(RESTORE_NOTICE, None):
            st.warning(notice)
        if st.session_state[K.source] == SOURCE_FOLDER:
            placeholder = f"e.g. pets (inside {fence}/)" if fence else "/path/to/images (one sub-folder per class)"
            st.text_input("Folder path", key=K.folder, placeholder=placeholder)
            if fence:
                st.caption(f"Paths are inside the server's data folder, **{fence}/**; one sub-folder per class.")
        elif st.session_state[K.source] == SOURCE_ZIP:
            _zip_upload()
        st.select_slider(
            "Image size (px)",
            IMAGE_SIZES,
            key=K.image_size,
            help="Images are resized to this square size. Smaller is much faster on a CPU.",
        )
        st.header("Weights")
        st.radio(
            "Start from",
            _offered(WEIGHTS_CHOICES, {WEIGHTS_FILE} if student else set(), K.weights_choice),
            key=K.weights_choice,
            help="ImageNet weights are what makes this *transfer* learning. Random weights start "
            "every layer at random, for comparison: frozen random layers carry no knowledge, so "
            "train every layer (freeze point 0) to train from scratch.",
        )
        if st.session_state[K.weights_choice] == WEIGHTS_FILE:
            st.text_input(
                "Weights file", key=K.weights_path, placeholder="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
            )
            if fence:
                st.caption(f"A weights file inside **{fence}/**, or the server's default.")
        _weights_status()
        device_sidebar()
        _jobs_status()


def _jobs_status() -> None:
    """Where training runs: this machine, or a Ray cluster (connected in the background on first sight)."""
    JOBS.connect_in_background()
    st.header("Training")
    if problem := JOBS.backend.problem():
        st.error(problem)
    else:
        st.caption(f"Jobs run on {JOBS.places}.")


def _fence_name() -> str | None:
    """The data root's name for captions (not its location), or None when paths are not fenced."""
    try:
        root = data_root()
    except DataRootError:
        return None  # the refusal itself says what is wrong, where a path is used
    return root.name if root else None


def _weights_status() -> None:
    choice = st.session_state[K.weights_choice]
    ok, message = weights_ready()
    if choice == WEIGHTS_SCRATCH:
        st.warning(
            "No transfer: random weights. Frozen layers compute random features; train every layer "
            "(freeze point 0) to train from scratch."
        )
    elif ok:
        st.success(message)
    elif choice == WEIGHTS_IMAGENET:
        st.warning(message)
        if st.button("Download ImageNet weights", key="download_weights"):
            _download_weights()
    else:
        st.error(message)


def _download_weights() -> None:
    from tlcore.tf.backbones import download_imagenet  # the TensorFlow side (Keras' downloader), only when asked

    with st.spinner("Downloading VGG16 ImageNet weights (58 MB)..."):
        try:
            download_imagenet(get_backbone(DEFAULT_BACKBONE))
        except WeightsError as err:
            st.error(f"{err} In the app: choose 'Weights file' or '{WEIGHTS_SCRATCH}' above.")
            return
    st.rerun()


def _zip_upload() -> None:
    from dashboard import housekeeping
    from tlcore.upload_cleanup import remove_extracted
    from tlcore.uploads import UploadError, extract_zip

    upload = st.file_uploader("Zip of class folders", type=["zip"], key=K.zip_upload)
    if upload is None:
        if st.session_state[K.zip_dir]:  # extracted earlier in this tab or a reloaded one: still in use
            name = st.session_state.get(K.zip_name) or "the .zip uploaded earlier"
            st.caption(f"Using **{name}**. Upload another to replace it.")
        return
    marker = f"{getattr(upload, 'file_id', '')}:{upload.name}:{upload.size}"
    if st.session_state.get("data_zip_marker") != marker:  # each upload is extracted (or refused) once
        previous, owner = st.session_state[K.zip_dir], current_owner()
        try:
            st.session_state[K.zip_dir] = str(extract_zip(upload, name_hint=upload.name))
            st.session_state[K.zip_name] = upload.name
            st.session_state["data_zip_error"] = ""
            housekeeping.tracker().track(st.session_state[K.zip_dir], housekeeping.session_id(), owner)
        except UploadError as err:
            st.session_state[K.zip_dir] = ""  # never show the previous archive under this one's name
            st.session_state["data_zip_error"] = str(err)
        st.session_state["data_zip_marker"] = marker
        if previous:  # a run of this session may still read the old images: then a later sweep removes them
            housekeeping.tracker().release(previous)
            if not housekeeping.job_running(owner):
                remove_extracted(previous)
        housekeeping.sweep(force=True)
    if error := st.session_state.get("data_zip_error"):
        st.error(error)
