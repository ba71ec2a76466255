"""The Model page's freeze section: shortcuts, both phases' freeze points, their counts and the layer table.

What a shortcut, a preset or the advisor's *Apply* sets is what this section shows: phase 1's slider,
phase 2's switch and slider right below it, the parameters each phase trains, and the layer table with
the layers that train only in phase 2 in their own colour. Nothing here builds a model.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import tlcore.architecture
from dashboard.model.actions import FINE_TUNE_RATES, snap_rate, train_down_to_clicked
from dashboard.state import K
from dashboard.tables import STATE_LEGEND, freeze_display, freeze_summary, styled_freeze_display
from tlcore.advisor import HEAD_FIRST_WHY
from tlcore.backbone_facts import BLOCK5, BLOCKS4_5, EVERYTHING, HEAD_ONLY, VGG16_BLOCKS, VGG16_CONVS, VGG16_LAYERS

# Short enough for four buttons side by side at 1024 px beside the sidebar.
SHORTCUTS = [
    ("Head only", HEAD_ONLY),
    ("Block 5 + head", BLOCK5),
    ("Blocks 4-5 + head", BLOCKS4_5),
    ("Everything", EVERYTHING),
]


def phase_2_at() -> int | None:
    """The second phase's freeze point as the widgets set it, or None for one phase."""
    s = st.session_state
    return int(s[K.ft_freeze_at]) if s[K.fine_tune] and int(s[K.freeze_at]) > 0 else None


def shortcut_buttons(pretrained: bool) -> None:
    """One button per block boundary; the one the settings train down to is highlighted."""
    second = phase_2_at()
    trains_down_to = second if second is not None else int(st.session_state[K.freeze_at])
    for column, (label, k) in zip(st.columns(len(SHORTCUTS)), SHORTCUTS):
        column.button(
            label,
            key=f"freeze_{k}",
            on_click=train_down_to_clicked,
            args=(k,),
            width="stretch",
            type="primary" if k == trains_down_to else "secondary",
            help=f"Train every layer above freeze point {k}" + (" after the head" if pretrained and k < 18 else ""),
        )
    if pretrained:
        st.caption(f"With pretrained weights the block buttons train in two phases. {HEAD_FIRST_WHY}")


def phase_controls() -> None:
    """Phase 1's freeze slider, then phase 2's switch and its settings, together."""
    s = st.session_state
    st.slider(
        "Phase 1: VGG16 layers frozen, counted from the input",
        0,
        VGG16_LAYERS,
        key=K.freeze_at,
        help=f"VGG16 has {VGG16_LAYERS} layers after the input: {len(VGG16_CONVS)} convolutions and "
        f"{VGG16_LAYERS - len(VGG16_CONVS)} poolings, in {len(VGG16_BLOCKS)} blocks.",
    )
    freeze_at = int(s[K.freeze_at])
    st.toggle(
        "Phase 2: then fine-tune deeper",
        key=K.fine_tune,
        help="After phase 1, unfreeze more layers and train on at a lower learning rate.",
    )
    if not s[K.fine_tune]:
        return
    if freeze_at == 0:
        st.caption("Phase 1 already trains every layer: a second phase has nothing left to unfreeze.")
        return
    s[K.ft_freeze_at] = min(int(s[K.ft_freeze_at]), freeze_at - 1)  # must unfreeze more than phase 1
    if freeze_at > 1:
        st.slider("Phase 2: VGG16 layers frozen", 0, freeze_at - 1, key=K.ft_freeze_at)
    else:
        st.caption("Phase 2 unfreezes every layer.")
    snap_rate(K.ft_lr, FINE_TUNE_RATES)
    epochs, rate = st.columns(2)
    epochs.number_input("Phase 2 epochs", 1, 500, step=1, key=K.ft_epochs)
    rate.select_slider("Phase 2 learning rate", FINE_TUNE_RATES, key=K.ft_lr, format_func=lambda v: f"{v:g}")


def counts_and_table(table: pd.DataFrame) -> None:
    """What each phase trains: the counts, the cut in words, and the layer table coloured by state."""
    freeze_at, second = int(st.session_state[K.freeze_at]), phase_2_at()
    trainable, frozen = tlcore.architecture.counts_at(table, freeze_at)
    total = trainable + frozen
    columns = st.columns(3)
    columns[0].metric("Trains in phase 1" if second is not None else "Trainable parameters", f"{trainable:,}")
    if second is not None:
        trainable_2, frozen = tlcore.architecture.counts_at(table, second)
        columns[1].metric("Trains in phase 2", f"{trainable_2:,}")
        columns[2].metric("Frozen throughout", f"{frozen:,}", help=f"{frozen / total:.1%} of all parameters")
    else:
        columns[1].metric("Frozen parameters", f"{frozen:,}")
        columns[2].metric("Share that learns", f"{trainable / total:.1%}")
    st.caption(freeze_summary(table, freeze_at, second))
    display = freeze_display(table, freeze_at, second)
    st.dataframe(
        styled_freeze_display(display),
        hide_index=True,
        height=35 * (len(display) + 1) + 3,
        placeholder="",
        # The shades and the layer names show the blocks; widths that fit a projector's 1024 px beside the sidebar.
        column_config={
            "block": None,
            "#": st.column_config.NumberColumn(width=36),
            "layer": st.column_config.TextColumn(width=128),
            "type": st.column_config.TextColumn(width=140),
            "output shape": st.column_config.TextColumn(width=100),
            "params": st.column_config.NumberColumn(width=82),
            "state": st.column_config.TextColumn(width=90),
        },
    )
    st.caption(STATE_LEGEND)
