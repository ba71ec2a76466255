"""Charts from cached Vega-Lite specs (dashboard.chart_cache): made once per data, the same chart drawn."""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.chart_cache import cached_spec, vega_lite_spec
from dashboard.charts import class_counts_chart

CALLS: list[int] = []


def _counted_chart(value: int) -> alt.Chart:
    CALLS.append(value)
    return alt.Chart(pd.DataFrame({"x": [value]})).mark_point().encode(x="x:Q")


def test_a_charts_spec_is_made_once_per_argument_values():
    CALLS.clear()
    spec = cached_spec(_counted_chart)
    first = spec(1)
    assert spec(1) == first and CALLS == [1]  # the second session's rerun: no Altair work
    assert spec(2) != first and CALLS == [1, 2]
    assert cached_spec(_counted_chart) is spec  # one cache per chart function


def test_the_spec_is_the_charts_own_without_altairs_default_size():
    counts = {"train": {"cats": 3, "dogs": 5}, "validation": {"cats": 1, "dogs": 2}}
    spec = vega_lite_spec(class_counts_chart(counts))
    assert "continuousWidth" not in str(spec) and "continuousHeight" not in str(spec)
    rows = [row for data in spec["datasets"].values() for row in data]
    assert {(r["class"], r["split"], r["images"]) for r in rows} >= {("dogs", "train", 5), ("cats", "validation", 1)}
