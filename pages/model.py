"""Model & freeze page: VGG16's layers, the freeze point, an advisor, the head and training settings."""

from __future__ import annotations

import streamlit as st

import tlcore.architecture
from dashboard.code_panel import settings_code_section
from dashboard.lr_finder_panel import lr_finder_section
from dashboard.model_actions import (
    apply_advice_clicked,
    head_and_training_panel,
    head_or_problem,
    preset_panel,
    train_down_to_clicked,
)
from dashboard.state import K, current_config, page_intro, require_dataset, weights_value
from dashboard.tables import freeze_display, freeze_summary, styled_freeze_display
from tlcore.advisor import HEAD_FIRST_WHY, advise
from tlcore.backbone_facts import BLOCK5, BLOCKS4_5, EVERYTHING, HEAD_ONLY, VGG16_BLOCKS, VGG16_CONVS, VGG16_LAYERS
from tlcore.backbones import NO_WEIGHTS
from tlcore.data import TRAIN

SHORTCUTS = [
    ("Train only the head", HEAD_ONLY),
    ("Train block 5 + head", BLOCK5),
    ("Train blocks 4-5 + head", BLOCKS4_5),
    ("Train everything", EVERYTHING),
]
SIMILAR = "Similar: everyday photos of objects, animals, scenes"
DIFFERENT = "Different: X-rays, microscopy, satellite views, drawings..."

page_intro(
    "Model & freeze",
    "VGG16 learned its filters on 1.2 million ImageNet photos. Freezing a layer keeps "
    "what it learned; the layers after the freeze point adapt to your classes. Freeze more when you have "
    "few images or ImageNet-like ones; train more when you have many, or very different ones.",
)
info = require_dataset()
s = st.session_state
pretrained = weights_value() != NO_WEIGHTS
head, head_problem = head_or_problem(len(info.class_names))
st.subheader("Reproduce a seed article")
preset_panel()
# VGG16's arithmetic, no model built and no TensorFlow: milliseconds, so the page answers at once.
table = tlcore.architecture.layer_table(len(info.class_names), int(s[K.image_size]), head)

st.subheader("Freeze point")
st.slider(
    "VGG16 layers frozen, counted from the input",
    0,
    VGG16_LAYERS,
    key=K.freeze_at,
    help=f"VGG16 has {VGG16_LAYERS} layers after the input: {len(VGG16_CONVS)} convolutions and "
    f"{VGG16_LAYERS - len(VGG16_CONVS)} poolings, in {len(VGG16_BLOCKS)} blocks.",
)
freeze_at = int(s[K.freeze_at])
trains_down_to = int(s[K.ft_freeze_at]) if s[K.fine_tune] and freeze_at > 0 else freeze_at  # after phase 2
for column, (label, k) in zip(st.columns(len(SHORTCUTS)), SHORTCUTS):
    column.button(
        label,
        key=f"freeze_{k}",
        on_click=train_down_to_clicked,
        args=(k,),
        width="stretch",
        type="primary" if k == trains_down_to else "secondary",
    )
if pretrained:
    st.caption(
        "With pretrained weights the block buttons train in two phases (head first, then the blocks: see "
        f"*Second phase* below). {HEAD_FIRST_WHY} The table shows phase 1."
    )
trainable, frozen = tlcore.architecture.counts_at(table, freeze_at)
left, middle, right = st.columns(3)
left.metric("Trainable parameters", f"{trainable:,}")
middle.metric("Frozen parameters", f"{frozen:,}")
right.metric("Share that learns", f"{trainable / (trainable + frozen):.1%}")
st.caption(freeze_summary(table, freeze_at))
if head_problem:
    st.warning("The table shows the default head until the head settings below are fixed.")
display = freeze_display(table, freeze_at)
st.dataframe(styled_freeze_display(display), hide_index=True, height=35 * (len(display) + 1) + 3, placeholder="")
st.caption(
    ":blue-background[frozen] pretrained, kept as is · :orange-background[trainable] pretrained, fine-tuned · "
    ":green-background[new (head)] random start, always trained · shades alternate by VGG block."
)

st.subheader("Not sure? Ask the advisor")
num_train = info.num_images(TRAIN)
similar = st.radio(
    "How similar are your images to ImageNet photos?",
    [SIMILAR, DIFFERENT],
    key="advisor_similar",
    persist_state="session",
)
advice = advise(num_train, similar == SIMILAR, pretrained)
head_first = pretrained and advice.freeze_at < VGG16_LAYERS
st.info(
    f"**{advice.case[0].upper()}{advice.case[1:]}: freeze {advice.freeze_at} of {VGG16_LAYERS} layers, "
    f"augmentation {'on' if advice.augment else 'off'}.**\n\n{advice.explanation}"
    + (f"\n\n*Apply* trains the head first: {HEAD_FIRST_WHY}" if head_first else "")
)
st.button("Apply this advice", key="apply_advice", on_click=apply_advice_clicked, args=(advice,))

head_and_training_panel(freeze_at, head_problem)
lr_finder_section(info)

try:
    config = current_config()
    if head_problem:
        raise ValueError(head_problem)
except ValueError as err:
    if str(err) != head_problem:  # a bad head is already shown next to its input
        st.error(f"These settings cannot train yet: {err}")
else:
    st.success(
        f"Ready to train: {config.epochs} epoch(s) at freeze point {config.freeze_at}"
        + (f", then {config.fine_tune.epochs} at {config.fine_tune.freeze_at}." if config.fine_tune else ".")
    )
    st.page_link("pages/train.py", label="Go to Train", icon=":material/show_chart:")
    settings_code_section(info, config)
