"""This machine's speed from its own runs (tlcore.speed): the figures, and estimates that follow them."""

from __future__ import annotations

import pytest

from tests.helpers import history_row
from tlcore.config import FineTuneConfig, TrainConfig
from tlcore.data import scan
from tlcore.estimate import estimate
from tlcore.records import COMPLETED, STOPPED
from tlcore.route import CACHED, END_TO_END
from tlcore.runs import RunStore
from tlcore.speed import EPOCH_OVERHEAD_S, RUN_OVERHEAD_S, Speed, epoch_work, extraction_flops, machine_speed, measure

FALLBACK = Speed.arithmetic(100.0)
HEAD_ONLY = TrainConfig(image_size=64, freeze_at=18, epochs=4, min_steps=0)  # exactly 4 epochs
BLOCK_5 = TrainConfig(image_size=64, freeze_at=18, epochs=2, fine_tune=FineTuneConfig(freeze_at=14, epochs=2))


def _record(store: RunStore, info, config: TrainConfig, *, extract_s: float, rows, overhead_s: float, **finish):
    """A finished run whose timings are exactly these: extraction, epoch rows, and `overhead_s` beyond them."""
    run = store.create(config, info)
    for row in rows:
        run.add_epoch(row)
    train_s = sum(row["seconds"] for row in rows)
    fields = {
        "seconds": extract_s + train_s + overhead_s,
        "extract_seconds": extract_s,
        "train_seconds": train_s,
        "features": [{"phase": 1, "freeze_at": config.freeze_at, "reused": extract_s == 0}],
    }
    fields.update(finish)
    run.finish(fields.pop("status", COMPLETED), **fields)
    return run


def _head_rows(epochs: int, seconds: float) -> list[dict]:
    return [history_row(epoch=e, freeze_at=18, path=CACHED, seconds=seconds) for e in range(1, epochs + 1)]


def test_the_speed_is_what_the_runs_recorded(tiny_dataset, tmp_path):
    info = scan(tiny_dataset)
    n_train, n_val = info.num_images("train"), info.num_images("validation")
    store = RunStore(tmp_path / "runs")
    # Extraction at 64 px through all 18 layers: 2 s for this dataset's images is this many GFLOP/s.
    extract_gflops = extraction_flops(64, 18, n_train + n_val) / 2.0 / 1e9
    head = _record(store, info, HEAD_ONLY, extract_s=2.0, rows=_head_rows(4, 0.02), overhead_s=1.5)
    # A run training block 5 on cached block-4 features: its epochs are 0.02 s overhead + FLOPs / 50 GFLOP/s.
    work = epoch_work(64, 14, CACHED, n_train, n_val)
    rows = _head_rows(2, 0.02) + [
        history_row(phase=2, epoch=e, freeze_at=14, path=CACHED, seconds=0.02 + work.train_flops / 50e9) for e in (3, 4)
    ]
    block5 = _record(store, info, BLOCK_5, extract_s=0.0, rows=rows, overhead_s=2.5)

    speed = measure([head.record, block5.record], FALLBACK)
    assert speed.runs == 2
    assert speed.extract_gflops == pytest.approx(extract_gflops)
    assert speed.train_gflops == pytest.approx(50.0)
    assert speed.epoch_overhead_s[CACHED] == pytest.approx(0.02)
    assert speed.epoch_overhead_s[END_TO_END] == EPOCH_OVERHEAD_S[END_TO_END]  # no run went end to end
    assert speed.run_overhead_s == pytest.approx(2.0)  # the median of 1.5 and 2.5
    assert "measured on the last 2 run(s)" in speed.describe()

    # The estimate of the first run, from this speed, is the first run's own time.
    guess = estimate(HEAD_ONLY, n_train, n_val, speed)
    assert guess.extract_seconds == pytest.approx(2.0)
    assert guess.total_seconds == pytest.approx(2.0 + guess.epoch_seconds * 4 + 2.0)


def test_runs_that_say_nothing_of_speed_leave_the_arithmetic(tiny_dataset, tmp_path):
    info = scan(tiny_dataset)
    store = RunStore(tmp_path / "runs")
    stopped = _record(store, info, HEAD_ONLY, extract_s=9.0, rows=_head_rows(1, 5.0), overhead_s=1.0, status=STOPPED)
    assert measure([stopped.record], FALLBACK) == FALLBACK
    assert measure([], FALLBACK).describe().endswith("from arithmetic (no run on this machine yet)")
    # Head-only runs alone say nothing of training convolutions: they train as fast as the extraction ran.
    head = _record(store, info, HEAD_ONLY, extract_s=2.0, rows=_head_rows(4, 0.02), overhead_s=1.0)
    speed = measure([head.record], FALLBACK)
    assert speed.train_gflops == pytest.approx(speed.extract_gflops)
    assert speed.run_overhead_s == pytest.approx(1.0) != RUN_OVERHEAD_S


def test_machine_speed_follows_the_runs_folder(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr("tlcore.estimate.machine_gflops", lambda: 100.0)
    info = scan(tiny_dataset)
    root = tmp_path / "runs"
    store = RunStore(root)
    assert machine_speed(root) == FALLBACK  # no runs yet

    _record(store, info, HEAD_ONLY, extract_s=2.0, rows=_head_rows(4, 0.02), overhead_s=1.0)
    first = machine_speed(root)
    assert first.runs == 1 and first.run_overhead_s == pytest.approx(1.0)

    running = store.create(HEAD_ONLY, info)  # not finished: not counted
    assert machine_speed(root) is first
    running.finish(COMPLETED, seconds=30.0, extract_seconds=2.0, train_seconds=0.08, features=[])
    # A machine twice as loaded: its next run's overhead is measured, and the estimates follow.
    assert machine_speed(root).runs == 2
    assert machine_speed(root).run_overhead_s > first.run_overhead_s


def test_a_run_on_another_host_does_not_measure_this_one(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr("tlcore.estimate.machine_gflops", lambda: 100.0)
    info = scan(tiny_dataset)
    root = tmp_path / "runs"
    run = _record(RunStore(root), info, HEAD_ONLY, extract_s=2.0, rows=_head_rows(4, 0.02), overhead_s=1.0)
    run.update(host="another-machine")
    assert machine_speed(root) == FALLBACK


def test_a_mixed_bfloat16_run_is_estimated_at_twice_float32s_compute_speed():
    """Overheads stay; the arithmetic runs PRECISION_SPEEDUP times as fast (measured 2.6 with AMX)."""
    from tlcore.estimate import PRECISION_SPEEDUP

    speed = Speed(extract_gflops=100.0, train_gflops=50.0, epoch_overhead_s={CACHED: 0.0, END_TO_END: 0.0})
    config = TrainConfig(image_size=96, freeze_at=0, epochs=3, early_stopping_patience=None)
    plain = estimate(config, 90, 50, speed)
    fast = estimate(config.replace(precision="mixed_bfloat16"), 90, 50, speed)
    assert PRECISION_SPEEDUP["mixed_bfloat16"] == 2.0
    assert fast.epoch_seconds == pytest.approx(plain.epoch_seconds / 2)
    assert plain.total_seconds - fast.total_seconds == pytest.approx(3 * plain.epoch_seconds / 2)


def test_the_start_up_measurement_waits_for_the_app_to_settle_and_takes_the_best_of_five(monkeypatch):
    """An app's first script run shares the cores: a product timed beside it read 3.5 times slow."""
    from tlcore import estimate as estimates

    calls: list[int] = []

    def product(repeats: int = 1) -> float:
        calls.append(repeats)
        return 100.0

    monkeypatch.setattr(estimates, "_speed", [])
    monkeypatch.setattr(estimates, "matmul_gflops", product)
    thread = estimates.measure_in_background(delay_s=0.3)
    assert calls == []  # not while the app starts
    thread.join(10)
    assert calls == [estimates.MATMUL_REPEATS] == [5]
    assert estimates.machine_gflops() == 100.0 * estimates.MATMUL_TO_VGG16 and calls == [5]  # measured once
