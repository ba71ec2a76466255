"""A reload keeps the student's work: the dataset, image size and every setting, saved on the server per owner.

Each script run writes the session's settings when they changed (`remember`); a new session of the same
owner (a reloaded tab) gets them back before the defaults fill the rest (`restore`). A value that no longer
fits its widget is left out, and an uploaded .zip that is gone (the server restarted) is said so, not
silently swapped for the sample. Nothing goes into the URL.
"""

from __future__ import annotations

import streamlit as st

from dashboard import housekeeping
from dashboard.state import DEFAULTS, IMAGE_SIZES, SOURCE_SAMPLE, SOURCE_ZIP, SOURCES, WEIGHTS_CHOICES, K
from tlcore.jsontypes import JSONValue
from tlcore.owner_settings import OwnerSettings
from tlcore.upload_cleanup import extraction_folder

# What a reload gives back: every setting with a default, the weights choice, the uploaded .zip's name and
# the run the Inference page opens.
KEPT_KEYS = (*DEFAULTS, K.weights_choice, K.zip_name, K.last_run_dir)
_ALLOWED = {K.image_size: IMAGE_SIZES, K.source: SOURCES, K.weights_choice: WEIGHTS_CHOICES}
_SAVED = "_kept_settings_saved"  # session key: what was last written, so an unchanged run writes nothing
RESTORE_NOTICE = "kept_settings_notice"  # session key: what could not come back, said once by the sidebar


def _fits(key: str, value: JSONValue) -> bool:
    """Whether a saved value can go back into its widget (same kind as the default, an offered option)."""
    if key in _ALLOWED:
        return value in _ALLOWED[key]
    default = DEFAULTS.get(key)
    if default is None:
        return isinstance(value, str)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def restore(owner: str) -> None:
    """Put the owner's saved settings into a new session (before the defaults fill what is missing)."""
    saved = {key: value for key, value in OwnerSettings().load(owner).items() if key in KEPT_KEYS}
    kept = {key: value for key, value in saved.items() if _fits(key, value)}
    if kept.get(K.source) == SOURCE_ZIP:
        folder = extraction_folder(kept.get(K.zip_dir, ""))
        if folder is not None and folder.is_dir():
            housekeeping.tracker().track(kept[K.zip_dir], housekeeping.session_id(), owner)  # this session needs it
        else:
            name = kept.get(K.zip_name) or "your .zip"
            kept.update({K.source: SOURCE_SAMPLE, K.zip_dir: ""})
            st.session_state[RESTORE_NOTICE] = (
                f"The images of {name} are no longer on the server (it restarted): upload the .zip again. "
                "Until then the bundled sample is shown."
            )
    st.session_state.update(kept)
    st.session_state[_SAVED] = dict(kept)


def remember(owner: str) -> None:
    """Save the session's settings for the next tab of this owner, when they changed since the last save."""
    values = {key: st.session_state[key] for key in KEPT_KEYS if key in st.session_state}
    if values == st.session_state.get(_SAVED):
        return
    try:
        OwnerSettings().save(owner, values)
    except OSError:
        return  # a full or read-only disk costs the next reload its settings, never this page
    st.session_state[_SAVED] = values
