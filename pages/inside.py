"""Inside page: what VGG16's frozen layers see, where its transferable knowledge lives, the features as a map."""

from __future__ import annotations

import streamlit as st

from dashboard.dataset_source import require_dataset
from dashboard.inside.feature_maps import feature_maps_section
from dashboard.inside.probe import probe_section
from dashboard.state import K, page_intro, weights_value
from tlcore.inside import compared_weightings

page_intro(
    "See inside",
    "Accuracy curves show *that* pretrained VGG16 wins; these views show *why*. Each puts your images "
    "through VGG16 twice, with its ImageNet weights and with random ones, and shows what comes out.",
)
info = require_dataset()
s = st.session_state
image_size, freeze_at = int(s[K.image_size]), int(s[K.freeze_at])
comparison = compared_weightings(weights_value(), seed=int(s[K.seed]))
if comparison.reason:
    st.warning(f"{comparison.reason} Each view shows the random side alone.")

feature_maps_section(info, comparison, image_size, freeze_at)
probe_section(info, comparison, image_size, freeze_at)
