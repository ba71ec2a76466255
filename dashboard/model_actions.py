"""The Model page's one-click changes (seed-article presets, freeze shortcuts, the advisor's advice)
and its controls for what Keras' fit offers (class weights, early stopping, reduce on plateau).

Each is a button callback (it runs before the widgets exist again, so it may set their state) that
builds a TrainConfig and writes it through dashboard.state's one widget <-> config mapping.
"""

from __future__ import annotations

import streamlit as st

from dashboard.state import (
    DEFAULT_CONFIG,
    K,
    apply_config,
    augment_from_state,
    balance_classes_toggle,
    current_config,
    head_from_state,
    weights_value,
)
from tlcore.advisor import Advice, apply_advice, train_down_to
from tlcore.config import HeadConfig, TrainConfig
from tlcore.presets import PRESETS

PRESET_APPLIED = "preset_applied"


def preset_panel() -> None:
    """One short button per seed article (full title as tooltip); the applied one's notes folded away."""
    for column, preset in zip(st.columns(len(PRESETS)), PRESETS.values()):
        column.button(
            preset.label,
            key=f"preset_{preset.name}",
            help=preset.title,
            on_click=_apply_preset,
            args=(preset.name,),
            width="stretch",
        )
    if applied := PRESETS.get(str(st.session_state.get(PRESET_APPLIED))):
        st.info(f"**Applied: {applied.title}.** Everything can still be changed.")
        with st.expander("What differs from the article, and why"):
            st.markdown(
                "\n".join(f"- {note}" for note in applied.notes)
                + "\n\nAt 224 px a CPU is slow: see Train's time estimate."
            )


def _apply_preset(name: str) -> None:
    apply_config(PRESETS[name].config)
    st.session_state[PRESET_APPLIED] = name


def _recipe_base() -> TrainConfig:
    """The current settings; with a bad head or phase 2, the defaults around what a recipe reads."""
    try:
        return current_config()
    except ValueError:
        s = st.session_state
        return DEFAULT_CONFIG.replace(
            weights=weights_value(), learning_rate=float(s[K.learning_rate]), augment=augment_from_state(s)
        )


def train_down_to_clicked(freeze_at: int) -> None:
    """A freeze shortcut: train every layer above freeze_at, head first when pretrained layers train."""
    apply_config(train_down_to(_recipe_base(), freeze_at), fields=("freeze_at", "learning_rate", "fine_tune"))


def apply_advice_clicked(advice: Advice) -> None:
    """The advisor's freeze point and augmentation, by the same recipe as the shortcuts."""
    apply_config(apply_advice(_recipe_base(), advice), fields=("freeze_at", "learning_rate", "fine_tune", "augment"))


def head_or_problem(num_classes: int) -> tuple[HeadConfig, str | None]:
    """The head the widgets describe, or the default head and why the widgets' head cannot be built."""
    try:
        head = head_from_state(st.session_state)
    except ValueError as err:
        return HeadConfig(), str(err)
    if head.output == "sigmoid" and num_classes != 2:
        return HeadConfig(), f"A sigmoid output needs exactly 2 classes; this dataset has {num_classes}."
    return head, None


def fit_options_panel() -> None:
    """Class weights, early stopping and reduce-on-plateau: TrainConfig fields, set through the state's mapping."""
    balance_classes_toggle()
    st.toggle(
        "Early stopping",
        key=K.early_stopping,
        help="End a phase when val_loss has not improved for the epochs below, and keep the weights of its best epoch.",
    )
    if st.session_state[K.early_stopping]:
        st.number_input("Epochs without improvement", 1, 100, step=1, key=K.patience)
    st.toggle(
        "Reduce learning rate on plateau",
        key=K.reduce_lr,
        help="Halve the learning rate after 2 epochs "
        "without a val_loss improvement (down to a hundredth of the phase's rate).",
    )
