"""Shared UI plumbing for the pages: session-state keys, the sidebar, cached resources.

No ML logic here: every computation is a tlcore call. TensorFlow is imported
only by the pages that need it (the Dataset page renders without it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import streamlit as st

from tlcore.backbones import NO_WEIGHTS, WEIGHTS_ENV, IMAGENET, weights_status
from tlcore.config import AugmentConfig, FineTuneConfig, HeadConfig, TrainConfig
from tlcore.data import DatasetError, DatasetInfo, display_path, scan, tree_stamp
from tlcore.paths import (DataRootError, PathNotAllowed, data_root, refuse_links_outside, resolve_user_path,
                          typed_weights_path)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = ROOT / "sample_data"
IMAGE_SIZES = [32, 48, 64, 96, 128, 160, 192, 224]
SOURCE_SAMPLE, SOURCE_FOLDER, SOURCE_ZIP = "Bundled sample", "Folder on this computer", "Upload a .zip"
WEIGHTS_IMAGENET, WEIGHTS_FILE, WEIGHTS_SCRATCH = "ImageNet", "Weights file", "From scratch"
# What weights_value() gives for a refused weights path: never the refused path itself (it would be
# loaded, and its status would tell whether it exists), but a file that cannot exist, so every
# page's weights check fails and asks for other weights.
REFUSED_WEIGHTS = "/(refused: outside the data folder)"


class K:
    """Session-state keys, in one place (tests use them too)."""

    source = "data_source"
    folder = "data_folder"
    zip_upload = "data_zip"
    zip_dir = "data_zip_dir"
    image_size = "image_size"
    weights_choice = "weights_choice"
    weights_path = "weights_path"
    freeze_at = "freeze_at"
    pooling = "head_pooling"
    dense = "head_dense"
    dropout = "head_dropout"
    optimizer = "optimizer"
    learning_rate = "learning_rate"
    epochs = "epochs"
    batch_size = "batch_size"
    augment = "augment_enabled"
    flip = "augment_flip"
    rotation = "augment_rotation"
    zoom = "augment_zoom"
    translation = "augment_translation"
    contrast = "augment_contrast"
    fine_tune = "fine_tune_enabled"
    ft_freeze_at = "fine_tune_freeze_at"
    ft_epochs = "fine_tune_epochs"
    ft_lr = "fine_tune_lr"
    seed = "seed"
    job_id = "job_id"
    last_run_dir = "last_run_dir"
    history = "history"
    grid_seed = "grid_seed"
    owner = "owner"


DEFAULTS: dict[str, Any] = {
    K.source: SOURCE_SAMPLE,
    K.folder: "",
    K.zip_dir: "",
    K.image_size: 128,
    K.weights_choice: WEIGHTS_IMAGENET,
    K.weights_path: os.environ.get(WEIGHTS_ENV, ""),
    K.freeze_at: 18,
    K.pooling: "avg",
    K.dense: "256",
    K.dropout: 0.5,
    K.optimizer: "adam",
    K.learning_rate: 1e-3,
    K.epochs: 5,
    K.batch_size: 32,
    K.augment: False,
    K.flip: True,
    K.rotation: 0.1,
    K.zoom: 0.1,
    K.translation: 0.1,
    K.contrast: 0.1,
    K.fine_tune: False,
    K.ft_freeze_at: 14,
    K.ft_epochs: 3,
    K.ft_lr: 1e-5,
    K.seed: 1337,
    K.grid_seed: 0,
}


def init_session_state() -> None:
    """Fill defaults, and keep widget values alive across pages.

    Streamlit forgets a widget's value when a page without that widget runs;
    writing each value back as plain state keeps it.
    """
    if os.environ.get(WEIGHTS_ENV) and K.weights_choice not in st.session_state:
        st.session_state[K.weights_choice] = WEIGHTS_FILE
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value
        else:
            st.session_state[key] = st.session_state[key]
    if K.owner not in st.session_state:
        st.session_state[K.owner] = st.query_params.get("owner") or os.urandom(6).hex()
    st.query_params["owner"] = st.session_state[K.owner]


# --- dataset ---------------------------------------------------------------------------


@st.cache_resource(show_spinner="Scanning the image folder...", max_entries=8)
def _scan_cached(root: str, stamp: str, fence: str = "") -> DatasetInfo | DatasetError:
    """Scan `root`; with a fence (the data root), first refuse a folder whose links lead outside it.

    `stamp` (tree_stamp: the mtimes of every folder under root) makes an image added or removed in any
    class folder a new cache entry, so the pages show the new counts.
    """
    try:
        if fence:
            # The scan follows links; checked first so it never reads or lists files outside the fence.
            refuse_links_outside(Path(root), Path(fence))
        return scan(root)
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
    # The app extracted the .zip into its own temporary folder: no user-typed path to fence.
    return Path(st.session_state[K.zip_dir]) if st.session_state[K.zip_dir] else None


def current_dataset() -> DatasetInfo | DatasetError | None:
    """The scanned dataset the sidebar points at (cached; rescanned when the folder changes)."""
    try:
        root = dataset_root()
    except (PathNotAllowed, DataRootError) as err:
        return DatasetError(str(err))
    if root is None:
        return None
    fence = data_root() if st.session_state[K.source] == SOURCE_FOLDER else None
    stamp = tree_stamp(root, within=fence) if root.exists() else ""
    return _scan_cached(str(root), stamp, str(fence or ""))


def require_dataset() -> DatasetInfo:
    """The dataset, or a message with what to do and st.stop()."""
    info = current_dataset()
    if info is None:
        st.info("Choose a dataset in the sidebar: the bundled sample, a folder path, or a .zip of class folders.")
        st.stop()
    if isinstance(info, DatasetError):
        st.error(f"This dataset cannot be used: {info}")
        if info.info is not None and info.info.skipped:
            st.dataframe(
                [{"file": display_path(s.path), "reason": s.reason} for s in info.info.skipped], hide_index=True
            )
        st.stop()
    return info


# --- weights and config ---------------------------------------------------------------------


def _weights_file() -> tuple[str, str | None]:
    """The typed weights file (inside the data root, when one is set), or REFUSED_WEIGHTS and why."""
    try:
        return typed_weights_path(st.session_state[K.weights_path], os.environ.get(WEIGHTS_ENV, "")) or NO_WEIGHTS, None
    except (PathNotAllowed, DataRootError) as err:
        return REFUSED_WEIGHTS, str(err)


def weights_value() -> str:
    """The weights for TrainConfig: "imagenet", "none" or a file path (REFUSED_WEIGHTS for a refused one)."""
    choice = st.session_state[K.weights_choice]
    if choice == WEIGHTS_SCRATCH:
        return NO_WEIGHTS
    if choice == WEIGHTS_FILE:
        return _weights_file()[0]
    return IMAGENET


def weights_ready() -> tuple[bool, str]:
    """Whether the chosen weights can be used now, in plain words; a refused path says why."""
    if st.session_state[K.weights_choice] == WEIGHTS_FILE:
        _, refusal = _weights_file()
        if refusal:
            return False, refusal
    return weights_status(weights_value())


def parse_dense(text: str) -> tuple[int, ...]:
    """'1024, 512' -> (1024, 512); raises ValueError with the bad text."""
    try:
        return tuple(int(part) for part in str(text).replace(" ", "").split(",") if part)
    except ValueError:
        raise ValueError(f"Dense sizes must be whole numbers separated by commas. Received: {text!r}") from None


def current_config() -> TrainConfig:
    """The TrainConfig the widgets describe (raises ValueError for bad values)."""
    s = st.session_state
    fine_tune = None
    if s[K.fine_tune]:
        fine_tune = FineTuneConfig(int(s[K.ft_freeze_at]), int(s[K.ft_epochs]), float(s[K.ft_lr]))
    return TrainConfig(
        weights=weights_value(),
        image_size=int(s[K.image_size]),
        batch_size=int(s[K.batch_size]),
        epochs=int(s[K.epochs]),
        optimizer=s[K.optimizer],
        learning_rate=float(s[K.learning_rate]),
        freeze_at=int(s[K.freeze_at]),
        head=HeadConfig(pooling=s[K.pooling], dense=parse_dense(s[K.dense]), dropout=float(s[K.dropout])),
        augment=AugmentConfig(
            enabled=bool(s[K.augment]), flip=bool(s[K.flip]), rotation=float(s[K.rotation]),
            zoom=float(s[K.zoom]), translation=float(s[K.translation]), contrast=float(s[K.contrast]),
        ),
        fine_tune=fine_tune,
        seed=int(s[K.seed]),
    )


def keep_keras_state() -> None:
    """Stop Streamlit from resetting Keras at the end of every script run.

    Streamlit calls keras.backend.clear_session() whenever a script run ends
    (`_clean_problem_modules` in streamlit.runtime.scriptrunner.script_runner).
    With a run training in a background thread, every click and every tick of
    the live view then replaced Keras' global state under it, emptied
    TensorFlow's kernel cache and ran a full garbage collection: the reason
    watching a run made it several times slower. Only the pyplot cleanup is
    kept. Should a Streamlit version move that function, nothing breaks here;
    bench/live_view.py would show the cost again.
    """
    from streamlit.runtime.scriptrunner import script_runner

    if hasattr(script_runner, "_clean_problem_modules"):
        script_runner._clean_problem_modules = _close_pyplot_figures


def _close_pyplot_figures() -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


def _run_through_app() -> None:
    # A fresh server's first request for a page URL may run the page file
    # without app.py: Streamlit's legacy pages/ mode, before st.navigation has
    # switched it off. Switch it off as st.navigation does, and run app.py.
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def page_intro(title: str, text: str) -> None:
    """Every page opens with this: its title and a sentence or two for a learner."""
    _run_through_app()
    st.title(title)
    st.write(text)
