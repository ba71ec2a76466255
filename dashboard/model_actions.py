"""The Model page's one-click changes (seed-article presets, freeze shortcuts, the advisor's advice)
and its controls for what Keras' fit offers (class weights, early stopping, reduce on plateau).

Each is a button callback (it runs before the widgets exist again, so it may set their state) that
builds a TrainConfig and writes it through dashboard.state's one widget <-> config mapping.
"""

from __future__ import annotations

import math

import streamlit as st

from dashboard.devices import precision_control
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
from tlcore.advisor import Advice, apply_advice, learning_rate_warning, train_down_to
from tlcore.config import OPTIMIZERS, OUTPUTS, POOLINGS, HeadConfig, TrainConfig
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


LEARNING_RATES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
FINE_TUNE_RATES = [1e-6, 3e-6, 1e-5, 3e-5, 1e-4]


def nearest_rate(value: float, options: list[float]) -> float:
    """The offered rate nearest to `value` on a log scale (the smallest for a value that is not positive)."""
    return min(options, key=lambda o: abs(math.log(o / value)) if value > 0 else o)


def _snap(key: str, options: list[float]) -> None:
    # A select_slider refuses a value outside its options (e.g. from a loaded run): take the nearest.
    value = float(st.session_state[key])
    if value not in options:
        st.session_state[key] = nearest_rate(value, options)


def head_and_training_panel(freeze_at: int, head_problem: str | None) -> None:
    """The Model page's head, optimizer, epochs, fit options and second-phase settings."""
    s = st.session_state
    st.subheader("Head and training")
    st.caption(
        "The head is new: pooling turns VGG16's feature maps into one vector, dense layers combine it, "
        "and the output layer gives the class probabilities."
    )
    _snap(K.learning_rate, LEARNING_RATES)
    _snap(K.ft_lr, FINE_TUNE_RATES)
    head_col, train_col, tune_col = st.columns(3, gap="large")
    with head_col:
        st.radio(
            "Pooling",
            POOLINGS,
            key=K.pooling,
            horizontal=True,
            help="flatten keeps where each feature was (many more weights); avg and max summarise each map.",
        )
        st.text_input(
            "Dense layer sizes", key=K.dense, help="Comma-separated, e.g. 256 or 1024,1024,512; empty for none."
        )
        if head_problem:
            st.error(head_problem)
        st.slider(
            "Dropout",
            0.0,
            0.9,
            step=0.05,
            key=K.dropout,
            help="Share of the head's units dropped at random in each training step, against overfitting.",
        )
        st.radio(
            "Output",
            OUTPUTS,
            key=K.output,
            horizontal=True,
            help="softmax: one probability per class; "
            "sigmoid: one probability (of the second class), for 2 classes only, with binary cross-entropy.",
        )
    with train_col:
        st.selectbox("Optimizer", OPTIMIZERS, key=K.optimizer)
        st.select_slider("Learning rate", LEARNING_RATES, key=K.learning_rate, format_func=lambda v: f"{v:g}")
        if warning := learning_rate_warning(s[K.freeze_at], s[K.learning_rate], weights_value() != "none"):
            st.warning(warning)
        st.number_input("Epochs", 1, 500, step=1, key=K.epochs)
        st.number_input("Batch size", 1, 1024, step=1, key=K.batch_size)
        precision_control()
        fit_options_panel()
    with tune_col:
        st.toggle(
            "Second phase: fine-tune deeper",
            key=K.fine_tune,
            help="After training at the freeze point above, unfreeze more layers and train on at a lower rate.",
        )
        if s[K.fine_tune] and freeze_at > 0:
            s[K.ft_freeze_at] = min(int(s[K.ft_freeze_at]), freeze_at - 1)  # must unfreeze more than phase 1
            if freeze_at > 1:
                st.slider("Phase 2: layers frozen", 0, freeze_at - 1, key=K.ft_freeze_at)
            else:
                st.caption("Phase 2 unfreezes every layer.")
            st.number_input("Phase 2 epochs", 1, 500, step=1, key=K.ft_epochs)
            st.select_slider("Phase 2 learning rate", FINE_TUNE_RATES, key=K.ft_lr, format_func=lambda v: f"{v:g}")
        elif s[K.fine_tune]:
            st.caption("Phase 1 already trains every layer: a second phase has nothing left to unfreeze.")
