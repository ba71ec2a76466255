"""The Model & freeze page (AppTest over the whole app) and tlcore.preview's layer-table helpers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import tlcore.tf.model
from dashboard.state import WEIGHTS_SCRATCH, K, state_to_config
from dashboard.tables import FROZEN, INPUT, NEW, PHASE_2, TRAINABLE, freeze_display, freeze_summary
from tests.conftest import ROOT
from tlcore.config import FineTuneConfig

SHORTCUTS = {"freeze_18": 18, "freeze_14": 14, "freeze_10": 10, "freeze_0": 0}


@pytest.fixture(scope="module")
def vgg_model():
    """The page's default model (128 px, 2 classes, max -> norm -> 256 -> dropout .5 -> softmax), built here."""
    return tlcore.tf.model.build_model(2, 128, weights="none")


def expected_counts(model, freeze_at: int) -> tuple[int, int]:
    """(trainable, frozen) as Keras itself counts them after setting the freeze point."""
    tlcore.tf.model.set_freeze_point(model, freeze_at)
    return tlcore.tf.model.param_counts(model)


@pytest.fixture
def builds(monkeypatch) -> Iterator[list[tuple]]:
    """Every build_model call the page makes, with an empty model cache to start from."""
    calls: list[tuple] = []
    real = tlcore.tf.model.build_model

    def counting(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(tlcore.tf.model, "build_model", counting)
    st.cache_resource.clear()
    yield calls
    st.cache_resource.clear()


def _model_page(**state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page("pages/model.py").run()
    assert not at.exception, at.exception
    return at


def _metric(at: AppTest, label: str) -> int:
    return int(next(m.value for m in at.metric if m.label == label).replace(",", ""))


def _table(at: AppTest):
    return next(df.value for df in at.dataframe if "state" in df.value.columns)


def test_layer_table_lists_vgg16_and_the_head():
    at = _model_page()
    assert at.title[0].value == "Model & freeze"
    table = _table(at)
    backbone = table[table["block"].str.startswith("block")]
    assert len(backbone) == 18
    assert list(backbone["layer"][:3]) == ["block1_conv1", "block1_conv2", "block1_pool"]
    assert set(backbone["state"]) == {FROZEN}  # default: train only the head
    assert list(table["layer"][-5:]) == ["head_max_pool", "head_norm", "head_dense_1", "head_dropout_1", "predictions"]
    assert set(table[table["block"] == "head"]["state"]) == {NEW}
    assert table["params"].sum() == 14_714_688 + 1_024 + 131_328 + 514


def test_slider_moves_the_counts_without_rebuilding(builds, vgg_model):
    at = _model_page()
    assert builds == []  # the table is VGG16's arithmetic (tlcore.architecture): no model is ever built here
    for k in (14, 6, 17):
        at.slider(key=K.freeze_at).set_value(k).run()
        assert not at.exception
        trainable, frozen = expected_counts(vgg_model, k)
        assert (_metric(at, "Trainable parameters"), _metric(at, "Frozen parameters")) == (trainable, frozen)
        table = _table(at)
        assert (table["state"] == FROZEN).sum() == k
    at.button(key="freeze_10").click().run()
    assert at.slider(key=K.freeze_at).value == 18 and at.slider(key=K.ft_freeze_at).value == 10  # head first
    assert builds == []  # 3 slider moves and a shortcut: still nothing built


def test_block_5_counts_match_keras(vgg_model):
    at = _model_page()
    at.slider(key=K.freeze_at).set_value(14).run()
    assert _metric(at, "Frozen parameters") == 7_635_264  # blocks 1-4
    assert _metric(at, "Trainable parameters") == 7_079_424 + 1_024 + 131_328 + 514  # block 5 + head
    assert (_metric(at, "Trainable parameters"), _metric(at, "Frozen parameters")) == expected_counts(vgg_model, 14)


def _config(at: AppTest):
    return state_to_config(at.session_state)


@pytest.mark.parametrize(("key", "freeze_at"), SHORTCUTS.items())
def test_a_block_shortcut_shows_both_phases_where_it_was_clicked(vgg_model, key, freeze_at):
    at = _model_page(**{K.freeze_at: 5, K.learning_rate: 1e-3})
    assert any("wreck the pretrained filters" in c.value for c in at.caption)  # the one-sentence why
    at.button(key=key).click().run()
    assert not at.exception
    config = _config(at)
    # The keras.io recipe: the head alone at 1e-3, then down to the block at 1e-5 (measured: 0.96 for
    # block 5 on the sample data, against 0.50 for block 5 straight away at 1e-3).
    phase_2 = None if freeze_at == 18 else FineTuneConfig(freeze_at, 3, 1e-5)
    assert (config.freeze_at, config.learning_rate, config.fine_tune) == (18, 1e-3, phase_2), key
    assert at.button(key=key).proto.type == "primary"  # the active shortcut stands out
    # What the screen shows is what trains: phase 1's slider, phase 2's slider right below it, the table's
    # layers that train only in phase 2, and each phase's counts as Keras counts them.
    assert at.slider(key=K.freeze_at).value == 18
    table = _table(at)
    backbone = list(table[table["#"].notna()]["state"])
    assert backbone == [FROZEN] * freeze_at + [PHASE_2] * (18 - freeze_at)
    assert TRAINABLE not in set(table["state"]) and set(table[table["block"] == "head"]["state"]) == {NEW}
    assert _metric(at, "Trains in phase 1" if phase_2 else "Trainable parameters") == expected_counts(vgg_model, 18)[0]
    if phase_2:
        assert at.toggle(key=K.fine_tune).value is True
        assert freeze_at == 0 or at.slider(key=K.ft_freeze_at).value == freeze_at
        trainable, frozen = expected_counts(vgg_model, freeze_at)
        assert (_metric(at, "Trains in phase 2"), _metric(at, "Frozen throughout")) == (trainable, frozen)
    else:
        assert not [t for t in at.slider if t.key == K.ft_freeze_at]
    (ready,) = [s.value for s in at.main.success if s.value.startswith("Ready to train")]
    assert ready.startswith(f"Ready to train at freeze point 18{f', then {freeze_at}' if phase_2 else ''}. ")
    assert not any("overwrite what ImageNet taught them" in w.value for w in at.warning)


def test_with_random_weights_a_shortcut_trains_down_to_its_block_in_one_phase(vgg_model):
    at = _model_page(**{K.freeze_at: 5, K.weights_choice: WEIGHTS_SCRATCH, K.learning_rate: 1e-3})
    assert not any("wreck the pretrained filters" in c.value for c in at.caption)
    for key, freeze_at in SHORTCUTS.items():
        at.button(key=key).click().run()
        assert not at.exception
        config = _config(at)
        assert (config.weights, config.freeze_at, config.fine_tune) == ("none", freeze_at, None)
        assert config.learning_rate == (1e-3 if freeze_at == 18 else 1e-4)  # as the sweep's scratch point
        assert at.slider(key=K.freeze_at).value == freeze_at
        assert _metric(at, "Trainable parameters") == expected_counts(vgg_model, freeze_at)[0]
        assert at.button(key=key).proto.type == "primary"


def test_a_high_rate_set_by_hand_is_still_allowed_with_the_warning():
    at = _model_page()
    at.button(key="freeze_14").click().run()
    at.toggle(key=K.fine_tune).set_value(False).run()
    at.slider(key=K.freeze_at).set_value(14).run()
    at.select_slider(key=K.learning_rate).set_value(1e-2).run()
    assert not at.exception
    assert _config(at).learning_rate == 1e-2 and _config(at).freeze_at == 14
    assert any("overwrite what ImageNet taught them" in w.value for w in at.warning)


def test_head_change_builds_a_new_table(builds):
    at = _model_page()
    at.text_input(key=K.dense).input("64,32").run()
    assert not at.exception
    dense = [layer for layer in _table(at)["layer"] if layer.startswith("head_dense")]
    assert dense == ["head_dense_1", "head_dense_2"]
    at.slider(key=K.freeze_at).set_value(14).run()
    assert builds == []


def test_bad_dense_sizes_show_an_error_and_keep_the_table():
    at = _model_page()
    at.text_input(key=K.dense).input("256,abc").run()
    assert not at.exception
    assert any("Received: '256,abc'" in e.value for e in at.error)
    assert any("default head" in w.value for w in at.warning)
    assert len(_table(at)) == 25  # the default head: pooling, normalisation, dense, dropout, output


def test_advisor_apply_sets_freeze_point_and_augmentation():
    at = _model_page()
    assert "freeze 18 of 18 layers" in at.main.info[0].value  # 90 training images, similar: only the head
    at.button(key="apply_advice").click().run()
    assert at.slider(key=K.freeze_at).value == 18 and at.session_state[K.augment] is False
    assert _config(at).fine_tune is None
    different = next(o for o in at.radio(key="advisor_similar").options if o.startswith("Different"))
    at.radio(key="advisor_similar").set_value(different).run()
    assert "freeze 10 of 18 layers, augmentation on" in at.main.info[0].value
    assert "trains the head first" in at.main.info[0].value
    at.button(key="apply_advice").click().run()
    assert not at.exception
    config = _config(at)
    assert (config.freeze_at, config.learning_rate, config.fine_tune) == (18, 1e-3, FineTuneConfig(10, 3, 1e-5))
    assert config.augment.enabled is True
    # The table above shows it: blocks 4 and 5 train in phase 2.
    table = _table(at)
    assert list(table[table["#"].notna()]["state"]) == [FROZEN] * 10 + [PHASE_2] * 8


def test_with_random_weights_the_advisor_says_train_everything():
    at = _model_page(**{K.weights_choice: WEIGHTS_SCRATCH})
    assert "freeze 0 of 18 layers" in at.main.info[0].value
    assert "carry no knowledge" in at.main.info[0].value
    at.button(key="apply_advice").click().run()
    assert not at.exception
    config = _config(at)
    assert (config.freeze_at, config.fine_tune, config.learning_rate) == (0, None, 1e-4)


def test_fine_tune_slider_stays_below_the_freeze_point():
    at = _model_page(**{K.freeze_at: 10, K.fine_tune: True, K.ft_freeze_at: 14})
    slider = at.slider(key=K.ft_freeze_at)
    assert slider.max == 9 and slider.value == 9
    assert any("at freeze point 10, then 9." in s.value for s in at.main.success)


def test_fine_tune_with_nothing_frozen_is_a_clear_error():
    at = _model_page(**{K.freeze_at: 0, K.fine_tune: True})
    assert any("fine_tune.freeze_at must unfreeze more layers" in e.value for e in at.error)


def test_training_settings_write_the_shared_state():
    at = _model_page()
    at.select_slider(key=K.learning_rate).set_value(1e-4).run()
    at.selectbox(key=K.optimizer).set_value("sgd").run()
    at.radio(key=K.pooling).set_value("max").run()
    assert not at.exception
    assert (at.session_state[K.learning_rate], at.session_state[K.optimizer], at.session_state[K.pooling]) == (
        1e-4,
        "sgd",
        "max",
    )
    assert "head_max_pool" in list(_table(at)["layer"])
    at.radio(key=K.output).set_value("sigmoid").run()
    assert not at.exception
    assert _config(at).head.output == "sigmoid" and _table(at)["output shape"].iloc[-1] == "1"


# --- tlcore.preview --------------------------------------------------------------------------


def test_freeze_display_states(vgg_model):
    table = tlcore.tf.model.layer_table(vgg_model)
    display = freeze_display(table, 10)
    assert list(display.columns) == ["#", "layer", "type", "output shape", "params", "block", "state"]
    assert list(display["state"][:2]) == [INPUT, INPUT]
    assert list(display["state"][2:12]) == [FROZEN] * 10
    assert list(display["state"][12:20]) == [TRAINABLE] * 8
    assert set(display["state"][20:]) == {NEW}
    assert display["#"].dropna().tolist() == list(range(1, 19))
    two_phases = freeze_display(table, 18, phase_2_at=14)
    assert list(two_phases["state"][2:20]) == [FROZEN] * 14 + [PHASE_2] * 4


def test_freeze_summary_names_the_cut(vgg_model):
    table = tlcore.tf.model.layer_table(vgg_model)
    assert freeze_summary(table, 10) == (
        "Frozen: block1_conv1 … block3_pool (10 layers). Learning: block4_conv1 … block5_pool (8 layers) and the head."
    )
    assert freeze_summary(table, 0).startswith("Nothing is frozen")
    assert "only the head learns" in freeze_summary(table, 18)
    assert freeze_summary(table, 18, 14).endswith(
        "Phase 2 — block5_conv1 … block5_pool (4 layers) unfreeze too, 14 stay frozen."
    )


def test_fast_learning_rate_with_unfrozen_pretrained_layers_is_warned():
    at = _model_page(**{K.freeze_at: 14, K.learning_rate: 1e-3})
    assert any("overwrite what ImageNet taught them" in w.value for w in at.warning)
    at.select_slider(key=K.learning_rate).set_value(1e-4).run()
    assert not any("overwrite what ImageNet taught them" in w.value for w in at.warning)
