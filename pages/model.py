"""Model & freeze page: VGG16's layers, what each phase trains, an advisor, the head and training settings."""

from __future__ import annotations

import streamlit as st

import tlcore.architecture
from dashboard.classroom.views import assignment_banner
from dashboard.code_panel import settings_code_section
from dashboard.dataset_source import require_dataset
from dashboard.model.actions import (
    apply_advice_clicked,
    head_and_training_panel,
    head_or_problem,
    plan_on,
    preset_panel,
)
from dashboard.model.freeze import counts_and_table, phase_controls, shortcut_buttons
from dashboard.model.lr_finder import lr_finder_section
from dashboard.state import K, current_config, page_intro, weights_value
from tlcore.advisor import HEAD_FIRST_WHY, advise
from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.backbones import NO_WEIGHTS
from tlcore.data import TRAIN

SIMILAR = "Similar: everyday photos of objects, animals, scenes"
DIFFERENT = "Different: X-rays, microscopy, satellite views, drawings..."

page_intro(
    "Model & freeze",
    "VGG16 learned its filters on 1.2 million ImageNet photos. Freezing a layer keeps "
    "what it learned; the layers after the freeze point adapt to your classes. Freeze more when you have "
    "few images or ImageNet-like ones; train more when you have many, or very different ones.",
)
assignment_banner()
info = require_dataset()
s = st.session_state
pretrained = weights_value() != NO_WEIGHTS
head, head_problem = head_or_problem(len(info.class_names))
# VGG16's arithmetic, no model built and no TensorFlow: milliseconds, so the page answers at once.
table = tlcore.architecture.layer_table(len(info.class_names), int(s[K.image_size]), head)

st.subheader("What trains")
shortcut_buttons(pretrained)
with st.expander("Not sure? Ask the advisor"):
    similar = st.radio(
        "How similar are your images to ImageNet photos?",
        [SIMILAR, DIFFERENT],
        key="advisor_similar",
        persist_state="session",
    )
    advice = advise(info.num_images(TRAIN), similar == SIMILAR, pretrained)
    head_first = pretrained and advice.freeze_at < VGG16_LAYERS
    st.info(
        f"**{advice.case[0].upper()}{advice.case[1:]}: freeze {advice.freeze_at} of {VGG16_LAYERS} layers, "
        f"augmentation {'on' if advice.augment else 'off'}.**\n\n{advice.explanation}"
        + (f"\n\n*Apply* trains the head first: {HEAD_FIRST_WHY}" if head_first else "")
    )
    st.button("Apply this advice", key="apply_advice", on_click=apply_advice_clicked, args=(advice,))
phase_controls()
if head_problem:
    st.warning("The table shows the default head until the head settings below are fixed.")
counts_and_table(table)

head_and_training_panel(head_problem, info)
lr_finder_section(info)

st.subheader("Classic recipes")
st.caption("The training of two published articles, each corrected where it is wrong; the notes say how.")
preset_panel()

try:
    config = current_config()
    if head_problem:
        raise ValueError(head_problem)
except ValueError as err:
    if str(err) != head_problem:  # a bad head is already shown next to its input
        st.error(f"These settings cannot train yet: {err}")
else:
    then = f", then {config.fine_tune.freeze_at}" if config.fine_tune else ""
    st.success(f"Ready to train at freeze point {config.freeze_at}{then}. {plan_on(info)}")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/show_chart:")
    settings_code_section(info, config)
