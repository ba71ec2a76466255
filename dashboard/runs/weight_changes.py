"""The Runs page's "What fine-tuning changed" section: two runs' per-layer weight changes side by side.

Measuring a run rebuilds its starting weights (VGG16 built again, a second
or two) and loads its model, so nothing is computed until the user asks; a
run measured once is cached by its folder and its model file's modification time.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from dashboard.charts import change_domain, cka_chart, cka_domain, weight_changes_chart
from dashboard.tables import curve_label, describe_run
from tlcore.records import RUNNING
from tlcore.run_folder import MODEL_FILE
from tlcore.runs import RunSummary
from tlcore.weight_changes import ChangesUnavailable, WeightChanges

CHANGES_PICKS = ("changes_run_a", "changes_run_b")  # the two runs' pickers
CHANGES_SHOW = "changes_show"  # the button
CHANGES_SHOWN = "changes_shown"  # set by the button: keep showing (cached) changes as the picks change
CHANGES_CKA = "changes_cka"  # the checkbox: also compare what the conv layers compute

WHY = (
    "Fine-tuning starts from the pretrained weights and nudges them: each bar is how far a layer's weights moved "
    "from where its run started, relative to their size (log scale). Early layers barely move, because the edges "
    "and textures they learned on ImageNet are general and transfer as they are; later layers and the head adapt "
    "to your classes."
)
CKA_WHY = (
    "Weights can move a lot and still compute much the same. CKA (centred kernel alignment, Kornblith et al. "
    "2019) compares what each conv layer computes on the run's validation images before and after training: "
    "1 means the same representation, up to rotation and scale; lower means the layer now sees the images "
    "differently."
)


def measurable_runs(summaries: Sequence[RunSummary]) -> list[RunSummary]:
    """The finished runs that saved a model, in the order given (newest first)."""
    return [s for s in summaries if s.status != RUNNING and (s.run_dir / MODEL_FILE).is_file()]


@st.cache_data(max_entries=32, show_spinner="Rebuilding where the run started and comparing its layers...")
def run_changes(run_dir: str, model_mtime_ns: int, cka: bool = False) -> tuple[WeightChanges | None, str]:
    """(the run's weight changes, '') or (None, why they cannot be measured); model_mtime_ns is only the cache key.

    `cka`: with each conv layer's CKA on the run's validation images (both models through every image).
    """
    from tlcore.tf.weight_changes import weight_changes  # the TensorFlow side, imported when a user asks

    try:
        return weight_changes(run_dir, cka=cka), ""
    except (ChangesUnavailable, FileNotFoundError, OSError) as err:
        return None, str(err)


def _show() -> None:
    st.session_state[CHANGES_SHOWN] = True


def weight_change_section(summaries: Sequence[RunSummary]) -> None:
    """Pick two runs (the two newest finished ones by default) and see their layers' changes side by side."""
    st.subheader("What fine-tuning changed")
    st.write(WHY)
    runs = {s.run_id: s for s in measurable_runs(summaries)}
    if not runs:
        st.info("No finished run with a saved model yet: train one and see which of its layers moved.")
        return
    ids = list(runs)
    for key, default in zip(CHANGES_PICKS, (ids[0], ids[min(1, len(ids) - 1)])):
        if st.session_state.get(key) not in runs:  # first visit, or the picked run was deleted
            st.session_state[key] = default
    picks = [
        column.selectbox(f"Run {name}", ids, format_func=lambda r: describe_run(runs[r]), key=key)
        for column, name, key in zip(st.columns(2), "AB", CHANGES_PICKS)
    ]
    cka = st.checkbox(
        "Also compare what the layers compute (CKA)",
        key=CHANGES_CKA,
        help="Both models go through the run's validation images: 10-20 s more for 50 images at 128 px.",
    )
    st.button("Show what changed", key=CHANGES_SHOW, on_click=_show)
    if not st.session_state.get(CHANGES_SHOWN):
        st.caption("Each run's starting weights are rebuilt to compare with (VGG16 built again: a second or two).")
        return
    results = [run_changes(str(runs[r].run_dir), (runs[r].run_dir / MODEL_FILE).stat().st_mtime_ns, cka) for r in picks]
    domain = change_domain(*(changes for changes, _ in results if changes is not None))
    for column, run_id, (changes, reason) in zip(st.columns(2), picks, results):
        with column:
            if changes is None:
                st.warning(reason)
                continue
            chart = weight_changes_chart(changes, title=curve_label(runs[run_id]), domain=domain)
            st.altair_chart(chart, width="stretch", theme="streamlit")
            st.caption(changes.summary)
    measured = [changes.representations for changes, _ in results if changes and changes.representations]
    if measured:
        st.write(CKA_WHY)
        low = cka_domain(*measured)  # one axis for both runs, as the weight changes above share one
        # One above the other: each layer's label carries its value, too long for half a projector's width.
        for run_id, (changes, _) in zip(picks, results):
            if changes is not None and changes.representations is not None:
                chart = cka_chart(changes.representations, title=curve_label(runs[run_id]), low=low)
                st.altair_chart(chart, width="stretch", theme="streamlit")
                st.caption(changes.representations.summary)
