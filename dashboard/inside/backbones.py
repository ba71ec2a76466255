"""Backbones the inside views look through, loaded once per process and shared by every session."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import streamlit as st

from tlcore.backbones import NO_WEIGHTS
from tlcore.inside import Weighting
from tlcore.process_memory import collect_garbage

if TYPE_CHECKING:  # the TensorFlow side: imported once a view asks
    import keras


def _file_stamp(weights: str) -> float:
    # A weights file replaced in place gets a new mtime, hence a new cache entry.
    return 0.0 if weights in (NO_WEIGHTS, "imagenet") else os.stat(weights).st_mtime


@st.cache_resource(max_entries=4, show_spinner="Loading VGG16...", on_release=collect_garbage)
def _cached_backbone(weighting: Weighting, image_size: int, stamp: float) -> keras.Model:
    from tlcore.tf.backbones import backbone_for  # the TensorFlow side: only once a view asks

    return backbone_for(weighting, image_size)


def backbone(weighting: Weighting, image_size: int) -> keras.Model:
    """VGG16's convolutional base with the weighting's weights (read only: safe to share)."""
    return _cached_backbone(weighting, image_size, _file_stamp(weighting.weights))
