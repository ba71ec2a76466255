"""The learning-rate finder: the schedule, smoothing, stop rule and suggestion (no TensorFlow), then the sweep
on a TrainConfig, cached and end to end (weights none, 32 px), leaving the model as it found it."""

from __future__ import annotations

import itertools
import json
import math
import threading

import keras
import numpy as np
import pytest

from tests.helpers import TINY_CONFIG, make_dataset_folder
from tlcore.config import AugmentConfig, FineTuneConfig, HeadConfig
from tlcore.data import scan
from tlcore.lr_finder import (
    DIVERGED,
    ENDED,
    MARKED_RATES,
    MIN_STEPS,
    NOT_FINITE,
    SMOOTHING_DECADES,
    STOPPED,
    TIME_CAP,
    WARMUP_STEPS,
    FinderStart,
    FinderStep,
    RangeTest,
    format_rate,
    guess_loss,
    planned_steps,
    rate_schedule,
    relevant_config,
    result_of,
    smooth,
    smoothing_beta,
    sweep_freeze_at,
    valley_index,
)
from tlcore.progress import PhaseStart, StepProgress
from tlcore.route import CACHED, END_TO_END

# --- TensorFlow-free: the range test's arithmetic -----------------------------------------


def test_the_schedule_is_exponential_and_rising():
    rates = rate_schedule(8, 1e-7, 1.0)
    assert rates[0] == 1e-7 and rates[-1] == pytest.approx(1.0)
    ratios = [b / a for a, b in itertools.pairwise(rates)]
    assert ratios == pytest.approx([10.0] * 7)  # seven decades in seven equal steps
    assert all(b > a for a, b in itertools.pairwise(rates))
    hundred = rate_schedule(100)
    assert all(b > a for a, b in itertools.pairwise(hundred))
    assert math.log10(hundred[50] / hundred[0]) == pytest.approx(7 * 50 / 99)
    with pytest.raises(ValueError, match="at least 2 steps"):
        rate_schedule(1)
    with pytest.raises(ValueError, match="0 < start < end"):
        rate_schedule(10, 1e-2, 1e-3)


def test_the_smoothing_is_a_bias_corrected_moving_average_whose_memory_spans_half_a_decade():
    assert smooth([0.7] * 5, 0.9) == pytest.approx([0.7] * 5)  # no pull towards zero at the start
    # beta 0.5 by hand: 0.5 * 1 / (1 - 0.5) = 1, then (0.25 * 1 + 0.5 * 0) / (1 - 0.25) = 1/3.
    assert smooth([1.0, 0.0], 0.5) == pytest.approx([1.0, 1 / 3])
    assert SMOOTHING_DECADES == 0.5
    # 100 steps over 7 decades: 0.0707 decades a step, so beta = exp(-0.0707 / 0.5) = 0.868.
    assert smoothing_beta(100) == pytest.approx(math.exp(-(7 / 99) / 0.5))
    assert smoothing_beta(30) < smoothing_beta(100)  # coarser steps: fewer of them to remember


def _valley_loss(rate: float) -> float:
    """Flat at 0.7 below 1e-5, falling fastest at 1e-4, lowest near 3e-3, exploding above 1e-2."""
    x = math.log10(rate)
    return 0.2 + 0.5 / (1 + math.exp(3 * (x + 4))) + 0.2 * math.exp(3 * (x + 2))


def _run(test: RangeTest, loss_of) -> str:
    while not (reason := test.record(loss_of(test.next_rate()))):
        pass
    return reason


def test_the_stop_rule_ends_early_on_a_diverging_loss():
    test = RangeTest(70)
    assert _run(test, _valley_loss) == DIVERGED
    assert len(test.losses) < 70
    assert test.smoothed[-1] > 4 * min(test.smoothed) and all(s <= 4 * min(test.smoothed) for s in test.smoothed[:-1])
    assert 1e-2 < test.rates[-1] < 1e-1  # the blow-up, not the end rate
    # A loss that is not a number ends the sweep at once and is not a point of the curve.
    nan_test = RangeTest(70)
    assert _run(nan_test, lambda rate: math.nan if rate > 1e-3 else 0.5) == NOT_FINITE
    assert all(r <= 1e-3 for r in nan_test.rates) and not any(math.isnan(v) for v in nan_test.smoothed)
    # A trained head's tiny loss (0.02) rising to 0.1 on batch noise has not blown up: it is still far below a
    # guess's loss, ln 2 for two classes. fastai's rule alone (no floor) stops there.
    noisy = [0.02, 0.02, 0.1, 0.1, 0.1, 0.1] * 5
    assert _run(RangeTest(30), lambda rate: noisy.pop(0)) == DIVERGED
    noisy = [0.02, 0.02, 0.1, 0.1, 0.1, 0.1] * 5
    assert _run(RangeTest(30, floor=guess_loss(2)), lambda rate: noisy.pop(0)) == ENDED
    assert guess_loss(2) == pytest.approx(math.log(2)) and guess_loss(10) == pytest.approx(math.log(10))
    # A loss that never blows up runs to the end rate.
    flat = RangeTest(30)
    assert _run(flat, lambda rate: 0.69) == ENDED
    assert len(flat.losses) == 30 and flat.rates[-1] == pytest.approx(1.0)


def test_the_suggestion_on_a_valley_is_half_way_down_it():
    test = RangeTest(100)
    reason = _run(test, _valley_loss)
    result = result_of(test, 1, 18, CACHED, "", reason, "")
    assert result.suggested_rate is not None and result.minimum_rate is not None
    # The loss falls fastest at 1e-4: the valley's rate is within half a decade of it.
    assert 10**-4.5 < result.suggested_rate < 10**-3.5
    # The smoothed minimum lies just below the blow-up (the true one at ~3e-3); a tenth of it is safer.
    assert 1e-3 < result.minimum_rate < 2e-2
    assert result.minimum_rate == result.rates[result.smoothed.index(min(result.smoothed[10:]))]
    assert result.falls  # 0.7 down to 0.2
    # A head that already fits its batches: flat at 0.05, then only rising. Its minimum means nothing.
    rising = RangeTest(50, floor=guess_loss(2))
    _run(rising, lambda rate: 0.05 + 0.03 * math.sin(1e9 * rate) + (5 * rate if rate > 1e-4 else 0.0))
    assert not result_of(rising, 2, 14, CACHED, "", DIVERGED, "").falls
    # By hand: the longest fall is 5 > 4 > 3 > 2 > 1 (5 points ending at index 6), so the valley spans
    # [1, 6] and the point a third plus a sixth of its 5 steps along is index 1 + 1 + 0 = 2.
    assert valley_index([5, 5, 4, 3, 2, 3, 1, 9]) == 2
    assert valley_index([1.0]) is None


def test_a_short_curve_suggests_nothing_and_marked_rates_are_placed_or_said_missing():
    test = RangeTest(20)
    for loss in (0.7, 0.6):
        test.record(loss)
    assert result_of(test, 1, 18, CACHED, "", STOPPED, "stopped").suggested_rate is None
    test = RangeTest(71)  # 1e-7 .. 1, ten steps a decade: the rates hit every power of ten
    assert _run(test, _valley_loss) == DIVERGED
    result = result_of(test, 2, 14, END_TO_END, "why", DIVERGED, "the loss blew up at 3e-2")
    assert result.loss_at(1e-4) == pytest.approx(result.smoothed[30], rel=1e-6)
    assert result.loss_at(math.sqrt(1e-4 * 10**-3.9)) == pytest.approx(
        (result.smoothed[30] + result.smoothed[31]) / 2, rel=1e-6
    )
    assert result.loss_at(1e-8) is None and result.loss_at(0.5) is None
    assert result.marked_text(1e-3).startswith("1e-3: smoothed loss ")
    assert result.marked_text(0.5) == ("5e-1: not reached; the loss had blown up before (the loss blew up at 3e-2)")
    data = json.loads(json.dumps(result.to_json()))  # plain JSON: no NaN, no tuples
    assert data["suggestion_method"] == "valley" and data["steps"] == len(data["curve"]) == result.steps
    assert data["loss_falls"] is True
    assert result.minimum_rate is not None
    assert data["minimum_loss_rate_over_10"] == pytest.approx(result.minimum_rate / 10)
    assert [m["rate"] for m in data["marked"]] == list(MARKED_RATES) == [1e-4, 1e-3]
    assert data["route"] == END_TO_END and data["phase"] == 2 and data["freeze_at"] == 14


def test_planned_steps_fit_the_time_left_within_the_caps():
    assert planned_steps(100, seconds_left=60, step_seconds=0.01) == 100
    assert planned_steps(100, seconds_left=60, step_seconds=1.5) == 40
    assert planned_steps(100, seconds_left=60, step_seconds=30) == MIN_STEPS
    assert planned_steps(5, seconds_left=60, step_seconds=0.01) == 5


def test_what_a_sweep_reads_of_the_config():
    two_phase = TINY_CONFIG.replace(fine_tune=FineTuneConfig(14, 3, 1e-5))
    # Phase 1's sweep reads neither its own rate nor the second phase: the same sweep, the same key.
    assert relevant_config(two_phase.replace(learning_rate=1e-2, epochs=9), 1) == relevant_config(TINY_CONFIG, 1)
    assert relevant_config(two_phase.replace(fine_tune=FineTuneConfig(14, 7, 1e-6)), 2) == relevant_config(two_phase, 2)
    assert relevant_config(two_phase.replace(learning_rate=1e-4), 2) != relevant_config(two_phase, 2)
    assert sweep_freeze_at(two_phase, 1) == 18 and sweep_freeze_at(two_phase, 2) == 14
    with pytest.raises(ValueError, match="no second phase"):
        relevant_config(TINY_CONFIG, 2)
    assert [format_rate(r) for r in (1e-3, 2.5e-4, 3.16e-5, 1.0)] == ["1e-3", "2.5e-4", "3.2e-5", "1"]


# --- the sweep on a TrainConfig (TensorFlow) -----------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from tlcore.tf.training import prepare_data

    root = make_dataset_folder(tmp_path_factory.mktemp("lr") / "d", n_train=16, n_val=4)
    return prepare_data(scan(root), 32)


def _state(model: keras.Model) -> tuple[list[np.ndarray], list[bool]]:
    """Every variable (weights and the dropout layers' random state) and every layer's trainable flag."""
    return [v.numpy().copy() for v in model.variables], [layer.trainable for layer in model.layers]


def _assert_same_state(before, after) -> None:
    assert len(before[0]) == len(after[0]) and before[1] == after[1]
    for b, a in zip(before[0], after[0]):
        np.testing.assert_array_equal(b, a)


# Dropout on: its random state must be put back too.
CONFIG = TINY_CONFIG.replace(head=HeadConfig(dense=(8,), dropout=0.5))


def test_cached_sweep_gives_losses_within_the_step_cap_and_the_next_training_starts_as_before(data):
    from tlcore.tf.lr_finder import find_learning_rate
    from tlcore.tf.training import build_for, train

    model = build_for(CONFIG, 2)
    before = _state(model)
    events: list[object] = []
    result = find_learning_rate(CONFIG, data, model=model, max_steps=25, progress=events.append)
    _assert_same_state(before, _state(model))
    assert not model.compiled  # the sweep compiled its own model over the same layers
    assert result.route == CACHED and result.phase == 1 and result.freeze_at == 18
    assert result.planned_steps == 25 and 2 <= result.steps <= 25
    assert result.rates == tuple(rate_schedule(25)[: result.steps])
    assert all(math.isfinite(v) and v > 0 for v in result.losses)
    assert result.stop in (ENDED, DIVERGED)
    (start,) = [e for e in events if isinstance(e, FinderStart)]
    assert (start.route, start.freeze_at, start.phase) == (CACHED, 18, 1)
    assert [e.done for e in events if isinstance(e, StepProgress)][-1] == len(data.train)  # features: train only
    steps = [e for e in events if isinstance(e, FinderStep)]
    assert [e.steps for e in steps[:WARMUP_STEPS]] == [0] * WARMUP_STEPS
    assert [e.step for e in steps[WARMUP_STEPS:]] == list(range(1, result.steps + 1))
    assert [e.loss for e in steps[WARMUP_STEPS:]] == pytest.approx(list(result.losses))
    # Training the swept model gives what training a fresh build gives (dropout's random state included).
    after_sweep = train(CONFIG, data, model=model).history
    fresh = train(CONFIG, data).history
    assert [r.loss for r in after_sweep] == pytest.approx([r.loss for r in fresh], rel=1e-5)


def test_end_to_end_sweep_and_its_stop_flag(data):
    from tlcore.tf.lr_finder import find_learning_rate
    from tlcore.tf.training import build_for

    config = CONFIG.replace(freeze_at=14, augment=AugmentConfig(enabled=True))  # augmentation: every pixel anew
    model = build_for(config, 2)
    before = _state(model)
    stop = threading.Event()

    def stop_after_three(event: object) -> None:
        if isinstance(event, FinderStep) and event.steps and event.step == 3:
            stop.set()

    result = find_learning_rate(config, data, model=model, max_steps=30, progress=stop_after_three, stop=stop)
    _assert_same_state(before, _state(model))
    assert result.route == END_TO_END and "augmentation is on" in result.route_reason
    assert result.stop == STOPPED and result.steps == 3 and result.planned_steps == 30
    assert result.stop_reason.startswith("stopped by the user")
    assert all(math.isfinite(v) for v in result.losses)


def test_the_time_cap_ends_a_sweep_after_its_warmup(data):
    from tlcore.tf.lr_finder import find_learning_rate

    result = find_learning_rate(TINY_CONFIG, data, max_seconds=0.0)
    assert result.stop == TIME_CAP and result.steps == 0 and result.planned_steps == MIN_STEPS


def test_a_phase_2_sweep_trains_the_head_first_then_puts_everything_back(data):
    from tlcore.tf.lr_finder import find_learning_rate
    from tlcore.tf.training import build_for

    config = TINY_CONFIG.replace(fine_tune=FineTuneConfig(14, 1, 1e-5))
    model = build_for(config, 2)
    before = _state(model)
    events: list[object] = []
    result = find_learning_rate(config, data, phase=2, model=model, max_steps=12, progress=events.append)
    _assert_same_state(before, _state(model))
    kinds = [type(e).__name__ for e in events if isinstance(e, PhaseStart | FinderStart)]
    assert kinds == ["PhaseStart", "FinderStart"]  # phase 1 trained, then the sweep
    assert (result.phase, result.freeze_at, result.route) == (2, 14, CACHED)
    assert 2 <= result.steps <= 12


def test_a_phase_the_config_does_not_have_is_refused(data):
    from tlcore.tf.lr_finder import find_learning_rate

    with pytest.raises(ValueError, match="no second phase"):
        find_learning_rate(TINY_CONFIG, data, phase=2)


class _SeenBatches(keras.callbacks.Callback):
    """Each batch fit runs: its index, the optimizer's rate while it trains, and its logged loss."""

    def on_train_begin(self, logs=None):
        self.batches, self.rates, self.losses = [], [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.batches.append(batch)
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


@pytest.mark.parametrize("route", [CACHED, END_TO_END])
def test_the_range_test_callback_raises_the_rate_each_batch_and_stops_training_when_the_loss_blows_up(data, route):
    from tlcore.tf.lr_finder import LRRangeTest
    from tlcore.tf.training import train

    config = TINY_CONFIG.replace(epochs=20)  # more batches than the test takes
    if route == END_TO_END:
        config = config.replace(cache_features=False)
    steps, rates = 30, (1e-4, 1e3)  # up to a rate no model survives
    finder, seen = LRRangeTest(steps, max_seconds=600, rates=rates, floor=guess_loss(2)), _SeenBatches()
    result = train(config, data, callbacks=[finder, seen], drop_remainder=True, batches_per_call=1)
    test = finder.range_test
    assert result.routes == [route] and test is not None and len(test.schedule) == steps
    # One batch per call, on either route: the batch hooks saw every batch of every epoch.
    per_epoch = len(data.train) // config.batch_size
    assert per_epoch > 1 and seen.batches == [i % per_epoch for i in range(len(seen.batches))]
    # The warm-up at the start rate, then each batch one step further along the schedule.
    swept = len(seen.rates) - WARMUP_STEPS
    assert seen.rates == pytest.approx([rates[0]] * WARMUP_STEPS + rate_schedule(steps, *rates)[:swept], rel=1e-6)
    # Each point is its batch's own loss (the callback resets the metrics before every batch), as logged.
    assert list(test.losses) == pytest.approx(seen.losses[WARMUP_STEPS : WARMUP_STEPS + len(test.losses)])
    assert test.rates == pytest.approx(seen.rates[WARMUP_STEPS : WARMUP_STEPS + len(test.rates)], rel=1e-6)
    # The loss blew up before the end rate, and no batch ran after the one that said so.
    assert finder.stop_code in (DIVERGED, NOT_FINITE) and len(test.losses) < steps
    assert swept == len(test.losses) + (finder.stop_code == NOT_FINITE)  # a NaN loss is no point of the curve
    if finder.stop_code == DIVERGED:
        assert test.smoothed[-1] > 4 * min(test.smoothed) and test.smoothed[-1] > guess_loss(2)


def test_each_point_is_its_batch_s_own_loss_not_the_epoch_s_running_mean():
    from tlcore.tf.lr_finder import LRRangeTest

    # A zero weight and rates too small to move it: each batch's loss is the mean square of its targets.
    x, y = np.ones((32, 1), "float32"), np.repeat([1.0, 2.0, 3.0, 4.0], 8)[:, None].astype("float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(), loss="mse")
    events: list[FinderStep] = []

    def record(event: object) -> None:
        assert isinstance(event, FinderStep)  # the one kind of event the range test reports
        events.append(event)

    finder = LRRangeTest(max_steps=2, max_seconds=600, rates=(1e-12, 1e-11), report=record)
    model.fit(x, y, batch_size=8, shuffle=False, epochs=3, callbacks=[finder], verbose=0)
    assert [e.loss for e in events] == pytest.approx([1.0, 4.0, 9.0, 16.0])  # running means: 1, 2.5, 4.7, 7.5
    assert finder.stop_code == ENDED and finder.range_test is not None and finder.range_test.losses == [9.0, 16.0]
