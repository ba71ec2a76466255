"""The feature store (tlcore.feature_store): keys, reuse by later runs, eviction, damage, concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TINY_CONFIG, make_dataset_folder
from tlcore.backbones import get_backbone
from tlcore.cli import main
from tlcore.config import FineTuneConfig, HeadConfig
from tlcore.data import scan
from tlcore.feature_store import MB, FeatureKey, FeatureStore, max_bytes_from_env
from tlcore.progress import StepProgress
from tlcore.run_folder import load_record
from tlcore.runs import RunStore

KEY = FeatureKey(dataset="abc", image_size=32, backbone="vgg16", weights="none", freeze_at=18, precision="float32")


def _features(n: int, fill: float, width: int = 512) -> np.ndarray:
    return np.full((n, width), fill, dtype=np.float32)


def test_what_is_put_comes_back_and_every_part_of_the_key_matters(tmp_path):
    store = FeatureStore(tmp_path / "store")
    store.put(KEY, _features(4, 1.0), _features(2, 2.0), created=1_700_000_000.0)
    back = store.get(KEY)
    np.testing.assert_array_equal(back.train, _features(4, 1.0))
    np.testing.assert_array_equal(back.validation, _features(2, 2.0))
    assert back.created == 1_700_000_000.0  # when they were computed, as the caller said
    for change in (
        {"dataset": "abd"},
        {"image_size": 64},
        {"weights": "sha256:00"},
        {"freeze_at": 14},
        {"precision": "mixed_bfloat16"},
        {"backbone": "resnet50"},
    ):
        assert store.get(replace(KEY, **change)) is None, change


def test_a_changed_file_size_or_weights_file_gives_another_key(tmp_path, monkeypatch):
    from tlcore.tf.cached_route import feature_key
    from tlcore.tf.pipeline import prepare_data

    folder = make_dataset_folder(tmp_path / "data", n_train=3, n_val=2)
    first = feature_key(TINY_CONFIG, prepare_data(scan(folder), 32), 18)
    image = next((folder / "train" / "cats").iterdir())
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # touched
    touched = feature_key(TINY_CONFIG, prepare_data(scan(folder), 32), 18)
    assert touched.dataset != first.dataset
    image.write_bytes(image.read_bytes() + b"\0")  # one byte longer
    assert feature_key(TINY_CONFIG, prepare_data(scan(folder), 32), 18).dataset not in (first.dataset, touched.dataset)
    data = prepare_data(scan(folder), 32)
    assert feature_key(TINY_CONFIG, data, 18).weights == f"random-seed-{TINY_CONFIG.seed}"
    assert feature_key(replace(TINY_CONFIG, seed=7), data, 18).weights == "random-seed-7"
    from tests.weights_files import write_filled, write_keras3

    zeros, filled = write_keras3(tmp_path / "a.weights.h5"), write_filled(tmp_path / "b.weights.h5")
    identities = {feature_key(replace(TINY_CONFIG, weights=str(w)), data, 18).weights for w in (zeros, filled)}
    assert len(identities) == 2 and all(i.startswith("sha256:") for i in identities)


def test_least_recently_used_entries_go_first_past_the_cap(tmp_path):
    store = FeatureStore(tmp_path / "store", max_bytes=int(2.5 * MB))
    one_mb = 512  # rows of 512 float32: 1 MiB per split pair below
    keys = [replace(KEY, freeze_at=k) for k in (3, 6, 10)]
    store.put(keys[0], _features(one_mb, 0.0), _features(0, 0.0))
    store.put(keys[1], _features(one_mb, 1.0), _features(0, 0.0))
    old = time.time() - 100
    os.utime(store.path_of(keys[0]), (old, old))
    os.utime(store.path_of(keys[1]), (old + 10, old + 10))
    assert store.get(keys[0]) is not None  # used now: keys[1] is the least recently used
    store.put(keys[2], _features(one_mb, 2.0), _features(0, 0.0))
    assert store.get(keys[1]) is None
    assert store.get(keys[0]) is not None and store.get(keys[2]) is not None
    assert store.total_bytes() <= store.max_bytes
    # An entry larger than the whole cap is still kept (it is the one just written), alone.
    small = FeatureStore(tmp_path / "small", max_bytes=MB // 2)
    small.put(KEY, _features(one_mb, 3.0), _features(0, 0.0))
    assert small.get(KEY) is not None


def test_a_damaged_entry_is_reported_once_removed_and_missed(tmp_path, caplog):
    store = FeatureStore(tmp_path / "store")
    path = store.put(KEY, _features(4, 1.0), _features(2, 2.0))
    path.write_bytes(path.read_bytes()[:100])  # a partial file, as a crash mid-copy would leave
    assert store.get(KEY) is None
    assert not path.exists()
    assert len(store.problems) == 1 and str(path) in store.problems[0] and "damaged" in store.problems[0]
    path.write_bytes(b"not a zip at all")
    assert store.get(KEY) is None
    assert len(store.problems) == 1 + 1  # another damage, another message; the same one is not repeated
    other = replace(KEY, freeze_at=3)
    store.put(other, _features(1, 0.0), _features(1, 0.0))
    store.path_of(KEY).write_bytes(store.path_of(other).read_bytes())  # whole, but another key's features
    assert store.get(KEY) is None and "holds other features" in store.problems[-1]


def _put_many(root: str, fill: float, barrier) -> None:
    store = FeatureStore(root)
    barrier.wait()
    for _ in range(5):
        store.put(KEY, _features(2048, fill), _features(512, fill))


def test_two_processes_writing_the_same_key_leave_one_whole_entry(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    writers = [context.Process(target=_put_many, args=(str(tmp_path), fill, barrier)) for fill in (1.0, 2.0)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    back = FeatureStore(tmp_path).get(KEY)
    fill = float(back.train[0, 0])
    assert fill in (1.0, 2.0)
    np.testing.assert_array_equal(back.train, _features(2048, fill))  # one writer's, whole
    np.testing.assert_array_equal(back.validation, _features(512, fill))
    assert sorted(p.name for p in tmp_path.iterdir()) == [FeatureStore(tmp_path).path_of(KEY).name]  # no leftovers


def test_the_cap_comes_from_the_environment():
    assert max_bytes_from_env({}) == 2048 * MB
    assert max_bytes_from_env({"TLLAB_CACHE_MAX_MB": "300"}) == 300 * MB
    for bad in ("lots", "-1", "1.5"):
        with pytest.raises(ValueError, match="TLLAB_CACHE_MAX_MB must be a whole number of megabytes"):
            max_bytes_from_env({"TLLAB_CACHE_MAX_MB": bad})


def test_the_default_store_lives_in_the_runs_folder_unless_told_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("TLLAB_CACHE_DIR", raising=False)
    assert FeatureStore.default(tmp_path / "runs").root == tmp_path / "runs" / ".features"
    monkeypatch.setenv("TLLAB_CACHE_DIR", str(tmp_path / "cache"))
    assert FeatureStore.default(tmp_path / "runs").root == tmp_path / "cache"


# --- reuse by runs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory):
    """Two runs on the same data and freeze point, the second with another head, trained once for the module:
    (records, results, progress events, runs dir, run folder names). Tests that change the runs dir take
    `two_runs`, a copy."""
    from tlcore.tf.training import prepare_data, train_and_record

    root = tmp_path_factory.mktemp("two-runs")
    info = scan(make_dataset_folder(root / "data", n_train=6, n_val=3))
    runs = RunStore(root / "runs")
    data = prepare_data(info, 32)
    events: list[list[object]] = [[], []]
    first, run1 = train_and_record(TINY_CONFIG, info, runs, data=data, progress=events[0].append)
    second, run2 = train_and_record(
        TINY_CONFIG.replace(head=HeadConfig(dense=(16,), dropout=0.3)), info, runs, data=data, progress=events[1].append
    )
    records = (load_record(run1.run_dir), load_record(run2.run_dir))
    return records, (first, second), events, root / "runs", (run1.run_dir.name, run2.run_dir.name)


@pytest.fixture
def two_runs(trained_pair, tmp_path):
    """`trained_pair` with a runs dir (runs and feature store) of this test's own to change."""
    _, results, events, shared_runs, names = trained_pair
    runs_dir = shutil.copytree(shared_runs, tmp_path / "runs")
    return tuple(load_record(runs_dir / name) for name in names), results, events, runs_dir


def test_the_second_run_reuses_the_first_runs_features_and_says_so(trained_pair):
    from tlcore.progress import FeaturesReused, StepProgress

    (record1, record2), (first, second), events, *_ = trained_pair
    assert record1.features == [
        {"phase": 1, "freeze_at": 18, "reused": False, "created": record1.features[0]["created"]}
    ]
    assert record2.features == [
        {"phase": 1, "freeze_at": 18, "reused": True, "created": record1.features[0]["created"]}
    ]
    assert first.extract_seconds > 0 and second.extract_seconds == 0
    assert any(isinstance(e, StepProgress) and e.stage == "extract" for e in events[0])
    assert not any(isinstance(e, StepProgress) and e.stage == "extract" for e in events[1])
    assert [e for e in events[1] if isinstance(e, FeaturesReused)] == [
        FeaturesReused(1, 18, record1.features[0]["created"])
    ]


def test_reused_features_train_exactly_as_freshly_extracted_ones(two_runs):
    from tlcore.tf.training import train_and_record

    (record1, _), (fresh, _), _, runs_dir = two_runs  # the first run extracted its features afresh
    reused, _ = train_and_record(TINY_CONFIG, scan(Path(record1.dataset.root)), RunStore(runs_dir))
    assert reused.features[0]["reused"] and not fresh.features[0]["reused"]
    for a, b in zip(fresh.history, reused.history):
        assert a.loss == pytest.approx(b.loss, rel=1e-6) and a.val_accuracy == b.val_accuracy


def test_a_damaged_entry_is_rebuilt_by_the_next_run(two_runs):
    from tlcore.tf.training import train_and_record

    (record1, _), _, _, runs_dir = two_runs
    (entry,) = FeatureStore.default(runs_dir).entries()
    entry.path.write_bytes(entry.path.read_bytes()[:64])
    info = scan(Path(record1.dataset.root))
    third, _ = train_and_record(TINY_CONFIG, info, RunStore(runs_dir))
    assert third.features[0]["reused"] is False and third.status == "completed"
    problem = third.features[0]["problem"]
    assert isinstance(problem, str)
    assert "is damaged" in problem and str(entry.path) in problem
    fourth, _ = train_and_record(TINY_CONFIG, info, RunStore(runs_dir))
    assert fourth.features[0]["reused"] is True


def test_the_cache_command_lists_and_clears_the_store(two_runs, capsys):
    *_, runs_dir = two_runs
    assert main(["cache", "--runs-dir", str(runs_dir), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["root"] == str(runs_dir / ".features") and len(listing["entries"]) == 1
    assert listing["entries"][0]["key"]["freeze_at"] == 18 and listing["total_bytes"] > 0
    assert main(["cache", "--runs-dir", str(runs_dir)]) == 0
    text = capsys.readouterr().out
    assert "1 entry" in text and "32 px, freeze point 18, float32" in text
    assert main(["cache", "--runs-dir", str(runs_dir), "--clear"]) == 0
    assert "cleared 1 entry" in capsys.readouterr().out
    assert FeatureStore.default(runs_dir).entries() == []


def test_the_runs_page_shows_the_store_and_clears_it(runs_dir):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    store = FeatureStore.default(runs_dir)
    store.put(KEY, _features(256, 1.0), _features(64, 1.0))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/runs.py").run()
    assert not at.exception
    assert any(f"`{store.root}`: 1 entries, 0.6 MB of 2048 MB." in c.value for c in at.caption)
    at.button(key="clear_feature_store").click().run()
    assert any("Cleared 1 entries (0.6 MB)." in s.value for s in at.success)
    assert store.entries() == [] and at.button(key="clear_feature_store").disabled


# --- one pass for a sweep ------------------------------------------------------------------------


def test_a_sweeps_features_from_one_pass_equal_each_points_own_extraction(tmp_path):
    from tlcore.sweep import plan
    from tlcore.tf.build import build_for
    from tlcore.tf.cached_route import cut, extract_features, feature_key
    from tlcore.tf.pipeline import prepare_data
    from tlcore.tf.sweep import extract_sweep_features

    data = prepare_data(scan(make_dataset_folder(tmp_path / "data", n_train=4, n_val=2)), 32)
    planned = plan(TINY_CONFIG, [18, 14, 10, 6, 3, 0], scratch=True)
    store = FeatureStore(tmp_path / "store")
    events: list[StepProgress] = []

    def record(event: object) -> None:
        assert isinstance(event, StepProgress)  # the one kind of event a feature pass reports
        events.append(event)

    assert extract_sweep_features(planned, data, store, record) == [3, 6, 10, 14, 18]
    assert [e.done for e in events][-1] == 8 + 4  # one pass over every image, not one per point
    for k in (18, 10, 3):
        config = TINY_CONFIG.replace(freeze_at=k)
        prefix, _ = cut(build_for(config, 2), k, get_backbone(config.backbone))
        stored = store.get(feature_key(config, data, k))
        train, validation = extract_features(prefix, data.train), extract_features(prefix, data.validation)
        assert stored is not None and train is not None and validation is not None  # None: not stored, or stopped
        np.testing.assert_allclose(stored.train, train, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stored.validation, validation, rtol=1e-5, atol=1e-6)
    # Stored already: nothing to do; and a budget too small for two boundaries falls back to each point.
    assert extract_sweep_features(planned, data, store, record) == []
    other = FeatureStore(tmp_path / "other")
    assert extract_sweep_features(planned, data, other, record, budget_bytes=10_000) == []
    assert other.entries() == []


def test_a_sweep_reads_every_cached_point_from_the_one_pass(tmp_path):
    from tlcore.tf.sweep import run_sweep

    info = scan(make_dataset_folder(tmp_path / "data", n_train=4, n_val=2))
    store = RunStore(tmp_path / "runs")
    result = run_sweep(TINY_CONFIG, info, points=[18, 10, 0], scratch=False, store=store)
    assert result.shared_points == [10, 18] and result.summary()["shared_points"] == [10, 18]
    records = {s.record.config.freeze_at: s.record for s in store.list()}
    assert records[18].features is not None and records[10].features is not None
    assert records[18].features[0]["reused"] and records[10].features[0]["reused"]
    assert records[0].features is None or records[0].features == []  # end to end: nothing to cache
    assert all(p.extract_seconds == 0 for p in result.points)


def test_the_estimate_leaves_out_extraction_when_the_features_are_stored():
    from tlcore.estimate import estimate

    point = TINY_CONFIG.freeze_at
    fresh, stored = (estimate(TINY_CONFIG, 100, 20, 100.0, stored=s) for s in ((), {point}))
    assert fresh.extract_seconds > 0 and stored.extract_seconds == 0
    assert stored.total_seconds == pytest.approx(fresh.total_seconds - fresh.extract_seconds)
    assert "already in the feature store" in stored.describe() and "once" in fresh.describe()
    # End to end there is nothing stored to use.
    assert not estimate(TINY_CONFIG.replace(freeze_at=0), 100, 20, 100.0, stored={0}).stored
    # A second phase's stored features save its extraction too.
    two = TINY_CONFIG.replace(fine_tune=FineTuneConfig(freeze_at=14, epochs=1))
    first_only, both = (estimate(two, 100, 20, 100.0, stored=s) for s in ({point}, {point, 14}))
    assert both.total_seconds < first_only.total_seconds
    second_extract = estimate(two.replace(freeze_at=14, fine_tune=None), 100, 20, 100.0).extract_seconds
    assert first_only.total_seconds - both.total_seconds == pytest.approx(second_extract)
