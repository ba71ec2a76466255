"""The Model page's one-click changes (seed-article presets, freeze shortcuts, the advisor's advice)
and its controls for what Keras' fit offers (class weights, early stopping, reduce on plateau).

Each is a button callback (it runs before the widgets exist again, so it may set their state) that
builds a TrainConfig and writes it through dashboard.state's one widget <-> config mapping.
"""

from __future__ import annotations

import math

import streamlit as st

from dashboard.devices import precision_control
from dashboard.model.setting_widgets import declared_widgets
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
from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.presets import PRESETS
from tlcore.route import choose_route
from tlcore.schedule import schedule

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
    """Class weights, early stopping and the declared options: TrainConfig fields, set through the state's mapping."""
    balance_classes_toggle()
    st.toggle(
        "Early stopping",
        key=K.early_stopping,
        help="End a phase when val_loss has not improved for the epochs below, and keep the weights of its best epoch.",
    )
    if st.session_state[K.early_stopping]:
        st.number_input("Epochs without improvement", 1, 100, step=1, key=K.patience)
    declared_widgets()  # reduce on plateau, and every option declared the same way


LEARNING_RATES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
FINE_TUNE_RATES = [1e-6, 3e-6, 1e-5, 3e-5, 1e-4]


def nearest_rate(value: float, options: list[float]) -> float:
    """The offered rate nearest to `value` on a log scale (the smallest for a value that is not positive)."""
    return min(options, key=lambda o: abs(math.log(o / value)) if value > 0 else o)


def snap_rate(key: str, options: list[float]) -> None:
    """Set a rate to the nearest offered one: a select_slider refuses a value outside its options (a loaded run's)."""
    value = float(st.session_state[key])
    if value not in options:
        st.session_state[key] = nearest_rate(value, options)


def head_and_training_panel(head_problem: str | None, info: DatasetInfo) -> None:
    """The Model page's head, optimizer, epochs, training length and fit options."""
    s = st.session_state
    st.subheader("Head and training")
    st.caption(
        "The head is new: pooling turns VGG16's feature maps into one vector, normalising scales it, dense "
        "layers combine it, and the output layer gives the class probabilities."
    )
    snap_rate(K.learning_rate, LEARNING_RATES)
    head_col, train_col = st.columns(2, gap="large")
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
        st.toggle(
            "Normalise the pooled features",
            key=K.normalize,
            help="A LayerNormalization before the dense layers: VGG16's features come in the hundreds, so a new "
            "head would start far from chance (a first loss of 6-11 on two classes instead of about 0.7).",
        )
    with train_col:
        st.selectbox("Optimizer", OPTIMIZERS, key=K.optimizer)
        st.select_slider("Learning rate", LEARNING_RATES, key=K.learning_rate, format_func=lambda v: f"{v:g}")
        if warning := learning_rate_warning(s[K.freeze_at], s[K.learning_rate], weights_value() != "none"):
            st.warning(warning)
        epochs, batch = st.columns(2)
        epochs.number_input("Epochs", 1, 500, step=1, key=K.epochs)
        batch.number_input("Batch size", 1, 1024, step=1, key=K.batch_size)
        st.number_input(
            "At least this many steps for the head",
            0,
            100_000,
            step=10,
            key=K.min_steps,
            help="On a small dataset a few epochs are very few optimiser steps. Above 0, the batch shrinks so an "
            "epoch has several steps, and a head on cached features trains until it took this many. "
            "0: exactly the epochs and batch size above.",
        )
        if plan := plan_on(info):
            st.caption(f"On this dataset: {plan}")
        precision_control()
        fit_options_panel()


def plan_on(info: DatasetInfo) -> str:
    """How long the current settings train on this dataset, in one sentence ("" while they are not valid)."""
    try:
        config = current_config()
    except ValueError:
        return ""
    route, _ = choose_route(config, config.freeze_at)
    return schedule(config, info.num_images(TRAIN), info.class_counts(VALIDATION), route).describe(
        info.num_images(TRAIN)
    )
