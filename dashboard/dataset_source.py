"""Which dataset the sidebar points at (the sample, a folder, an uploaded .zip, the person's own photos), scanned.

A typed folder stays inside the data root when one is set; scans are cached per folder version.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import housekeeping
from dashboard.identity import actor
from dashboard.skipped import skipped_files
from dashboard.state import SAMPLE_DATA, SOURCE_FOLDER, SOURCE_PHOTOS, SOURCE_SAMPLE, K
from tlcore.data import DatasetInfo, scan
from tlcore.data_problems import DatasetError
from tlcore.folder_walk import tree_stamp
from tlcore.paths import DataRootError, PathNotAllowed, data_root, refuse_links_outside, resolve_user_path
from tlcore.photos import PhotoStore


# A class keeps 30 students' own photo folders in use at once, besides the sample and the teacher's folders.
@st.cache_resource(show_spinner="Scanning the image folder...", max_entries=64)
def _scan_cached(root: str, stamp: str, fence: str = "", verify: bool = True) -> DatasetInfo | DatasetError:
    """Scan `root`; with a fence (the data root), first refuse a folder whose links lead outside it.

    `stamp` (tree_stamp: the mtimes of every folder under root) makes an image added or removed in any
    class folder a new cache entry, so the pages show the new counts. `verify=False` skips decoding each
    image: only for the photo store, whose every file the lab decoded and re-encoded itself.
    """
    try:
        if fence:
            # The scan follows links; checked first so it never reads or lists files outside the fence.
            refuse_links_outside(Path(root), Path(fence))
        return scan(root, verify=verify)
    except PathNotAllowed as err:
        return DatasetError(str(err))
    except DatasetError as err:
        return err


def dataset_root() -> Path | None:
    """The folder the sidebar points at; a typed folder path stays inside the data root, when one is set.

    Raises:
        PathNotAllowed, DataRootError: the folder path is refused (the message is safe to show).
    """
    source = st.session_state[K.source]
    if source == SOURCE_SAMPLE:
        return SAMPLE_DATA
    if source == SOURCE_FOLDER:
        folder = st.session_state[K.folder].strip()
        return resolve_user_path(folder, data_root(), "Folder path") if folder else None
    if source == SOURCE_PHOTOS:  # this session's own photos, made on the Dataset page
        return my_photos().root
    # The app extracted the .zip into its own temporary folder: no user-typed path to fence. In a class it is
    # its uploader's alone: another's folder reads as no upload (the single-user lab's administrator reads all).
    folder = st.session_state[K.zip_dir]
    return Path(folder) if folder and housekeeping.tracker().may_read(folder, actor()) else None


def _my_photos_dataset() -> DatasetInfo | DatasetError | None:
    """The session's own photos as a dataset: None before the first photo; what is missing in words (never
    the server's path) until every class has photos."""
    store = my_photos()
    counts = store.counts()
    if not any(counts.values()):
        return None  # the Dataset page's maker is where to start
    if empty := [name for name, count in counts.items() if not count]:
        return DatasetError(f"add photos to every class: {', '.join(f'“{n}”' for n in empty)} has none yet.")
    if len(counts) < 2:
        return DatasetError("name a second class on the Dataset page: training tells classes apart.")
    info = _scan_cached(str(store.root), tree_stamp(store.root), verify=False)
    if isinstance(info, DatasetError):
        return DatasetError(str(info).replace(str(store.root), "your photos"))
    return info


def dataset_is_shared() -> bool:
    """Whether the dataset is the class's common data (the sample, the teacher's folders), not a person's own
    (their photos, their uploaded .zip): passes over it may serve everyone."""
    return st.session_state[K.source] in (SOURCE_SAMPLE, SOURCE_FOLDER)


def my_photos() -> PhotoStore:
    """The photo store of this session's owner (dashboard.identity.owner has set it for this run)."""
    return PhotoStore(str(st.session_state[K.owner]))


def current_dataset() -> DatasetInfo | DatasetError | None:
    """The scanned dataset the sidebar points at (cached; rescanned when the folder changes)."""
    try:
        root = dataset_root()
    except (PathNotAllowed, DataRootError) as err:
        return DatasetError(str(err))
    if st.session_state[K.source] == SOURCE_PHOTOS:
        return _my_photos_dataset()
    if root is None:
        return None
    fence = data_root() if st.session_state[K.source] == SOURCE_FOLDER else None
    stamp = tree_stamp(root, within=fence) if root.exists() else ""
    return _scan_cached(str(root), stamp, str(fence or ""))


def require_dataset() -> DatasetInfo:
    """The dataset, or a message with what to do and st.stop()."""
    info = current_dataset()
    if info is None:
        if st.session_state[K.source] == SOURCE_PHOTOS:
            st.info("Your dataset has no photos yet: add some on the Dataset page.")
        else:
            st.info("Choose a dataset in the sidebar: the bundled sample, a folder path, or a .zip of class folders.")
        st.stop()
    if isinstance(info, DatasetError):
        st.error(f"This dataset cannot be used: {info}")
        if info.info is not None and info.info.skipped:
            skipped_files(info.info.skipped, info.info.root)
        st.stop()
    return info
