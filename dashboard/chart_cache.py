"""Charts drawn from Vega-Lite specs made once per data: Altair's chart building is most of a page's CPU.

Under a class's load (thirty sessions, each page a fresh script run) building the same Altair chart again
on every rerun (channel inference, schema validation, to_dict) took a third of the server's time. Each chart
function's spec is kept per argument values (st.cache_data: shared by every session) and drawn with
st.vega_lite_chart, which takes the same spec Streamlit would have made from the chart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec

import altair as alt
import streamlit as st

from dashboard.charts import AltairChart, VegaSpec

P = ParamSpec("P")  # a chart function's parameters, which its cached spec and show_chart take as they are
_CACHED: dict[str, Callable[..., VegaSpec]] = {}
# What Altair's default theme adds to every chart, which Streamlit's own conversion leaves out (its "none" theme).
ALTAIR_DEFAULT_VIEW = ("continuousWidth", "continuousHeight")


def vega_lite_spec(chart: alt.TopLevelMixin) -> VegaSpec:
    """The chart's Vega-Lite spec as Streamlit would draw it (without Altair's default view size)."""
    spec = chart.to_dict()
    view = spec.get("config", {}).get("view", {})
    for key in ALTAIR_DEFAULT_VIEW:
        view.pop(key, None)
    if "view" in spec.get("config", {}) and not view:
        del spec["config"]["view"]
    if "config" in spec and not spec["config"]:
        del spec["config"]
    return spec


def cached_spec(make: Callable[P, AltairChart]) -> Callable[P, VegaSpec]:
    """`make`'s chart as a spec, made once per argument values (arguments Streamlit can hash: frames, numbers)."""
    name = f"{make.__module__}.{make.__qualname__}"
    if name not in _CACHED:

        def spec(*args: P.args, **kwargs: P.kwargs) -> VegaSpec:
            return vega_lite_spec(make(*args, **kwargs))

        # Streamlit keys a cache by the function's module and qualified name: one cache per chart function.
        spec.__qualname__ = spec.__name__ = f"spec_of_{make.__qualname__}"
        _CACHED[name] = st.cache_data(max_entries=64, show_spinner=False)(spec)
    return _CACHED[name]


def show_chart(make: Callable[P, AltairChart], *args: P.args, **kwargs: P.kwargs) -> None:
    """Draw `make(*args, **kwargs)` from its cached spec, where the page draws (in a column: `with column:`)."""
    st.vega_lite_chart(cached_spec(make)(*args, **kwargs), width="stretch", theme="streamlit")
