"""The Model page's widgets that a TrainConfig field's declaration draws (tlcore.setting: DECLARED_WIDGET)."""

from __future__ import annotations

import streamlit as st

from tlcore.config import TrainConfig
from tlcore.setting import DECLARED_WIDGET, Setting, declared, value_type


def declared_widgets() -> None:
    """One widget per declared field, keyed by the field's name (dashboard.state maps it to the config)."""
    for name, info in declared(TrainConfig):
        if info.widget == DECLARED_WIDGET:
            _widget(name, info)


def _widget(name: str, info: Setting) -> None:
    kind, _ = value_type(TrainConfig, name)
    label, tip = info.label[:1].upper() + info.label[1:], info.tip or info.help or None
    if kind is bool:
        st.toggle(label, key=name, help=tip)
    elif info.choices:
        st.selectbox(label, info.choices, key=name, help=tip)
    elif kind is int:
        low, high = (None if v is None else int(v) for v in (info.low, info.high))
        st.number_input(label, low, high, step=int(info.step or 1), key=name, help=tip)
    else:
        st.number_input(label, info.low, info.high, step=info.step, key=name, help=tip, format="%g")
