"""Runs page (AppTest): the table, interrupted runs, comparing configs, deleting."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.helpers import TINY_CONFIG, chart_rows, chart_title, history_row, make_dataset_folder, vega_specs
from tlcore.config import FineTuneConfig, TrainConfig
from tlcore.data import scan
from tlcore.run_folder import RUN_FILE
from tlcore.runs import RunStore

TINY = TINY_CONFIG.replace(epochs=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(dataset info, run folder) of one real tiny run."""
    from tlcore.tf.training import train_and_record

    tmp = tmp_path_factory.mktemp("runs-page")
    info = scan(make_dataset_folder(tmp / "data", n_train=8, n_val=4))
    _, run = train_and_record(TINY, info, RunStore(tmp / "runs"))
    return info, run.run_dir


@pytest.fixture
def store(trained, runs_dir) -> RunStore:
    """A runs folder of this test's own (TLLAB_RUNS_DIR) holding a copy of the trained run."""
    _, run_dir = trained
    shutil.copytree(run_dir, runs_dir / run_dir.name)
    return RunStore(runs_dir)


def _runs_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    return at.switch_page("pages/runs.py").run()


def _dead_run(store: RunStore, info, config: TrainConfig) -> str:
    """A run whose record says running, left by a process that no longer exists."""
    run = store.create(config, info)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = json.loads((run.run_dir / RUN_FILE).read_text())
    record["pid"] = int(dead.stdout)
    (run.run_dir / RUN_FILE).write_text(json.dumps(record))
    return run.run_id


def test_the_table_lists_a_completed_run_with_its_numbers(store, trained):
    _, run_dir = trained
    at = _runs_page()
    assert not at.exception
    assert at.title[0].value == "Runs"
    table = at.dataframe[0].value
    (row,) = table.to_dict("records")
    assert row["run"] == run_dir.name
    assert row["status"].endswith("completed")
    assert row["weights"] == "none (random)"
    assert (row["freeze"], row["px"], row["epochs"]) == ("18", 32, "2/2")
    assert 0.0 <= row["val acc"] <= row["best val acc"] <= 1.0
    assert row["MB"] > 1 and row["time (s)"] > 0
    assert "note" not in row and "tags" not in row  # empty columns are left out


def test_an_interrupted_run_reads_interrupted(store, trained):
    info, _ = trained
    dead = _dead_run(store, info, TINY.replace(freeze_at=14))
    at = _runs_page()
    assert not at.exception
    rows = {r["run"]: r for r in at.dataframe[0].value.to_dict("records")}
    assert rows[dead]["status"].endswith("interrupted")
    assert rows[dead]["epochs"] == "0/2" and pd.isna(rows[dead]["val acc"])


def test_two_selected_runs_show_curves_and_only_the_settings_that_differ(store, trained):
    info, run_dir = trained
    other = store.create(
        TINY.replace(
            freeze_at=14, epochs=3, weights="/tmp/my.weights.h5", fine_tune=FineTuneConfig(freeze_at=10, epochs=1)
        ),
        info,
    )
    other.add_epoch(history_row(freeze_at=14))
    other.finish("stopped", reason="stopped by the user during epoch 2")
    at = _runs_page()
    rows = {r["run"]: r for r in at.dataframe[0].value.to_dict("records")}
    assert (rows[other.run_id]["weights"], rows[other.run_id]["freeze"]) == ("my.weights.h5", "14→10")
    assert rows[other.run_id]["epochs"] == "1/4"
    assert rows[other.run_id]["note"] == "stopped by the user during epoch 2"

    at = at.multiselect(key="runs_compare").set_value([run_dir.name, other.run_id]).run()
    assert not at.exception
    specs = vega_specs(at)  # validation accuracy and loss curves, Altair as every chart
    assert [chart_title(spec) for spec in specs] == ["Validation accuracy", "Validation loss"]
    assert specs[0]["layer"][0]["encoding"]["y"]["scale"] == {"domain": [0, 1]}
    assert specs[1]["layer"][0]["encoding"]["y"]["scale"] == {"type": "log"}
    assert all(spec["height"] >= 250 for spec in specs) and not at.image  # no matplotlib pictures
    # Run two's fine-tuning phase never ran (stopped in phase 1): no dashed phase rule; no partial epoch
    # recorded. The one rule is the accuracy reached without learning, labelled.
    layers = specs[0]["layer"]
    assert [layer["mark"]["type"] for layer in layers] == ["line", "point", "point", "rule", "text"]
    levels = [row for row in chart_rows(at)[0] if "level" in row]
    assert [row["level"] for row in levels] == [0.5] and "chance" in levels[0]["label"]
    differences = at.dataframe[1].value
    assert sorted(differences.index) == [
        "epochs",
        "fine_tune.epochs",
        "fine_tune.freeze_at",
        "fine_tune.learning_rate",
        "freeze_at",
        "weights",
    ]
    assert differences.loc["freeze_at"].tolist() == ["18", "14"]
    assert differences.loc["fine_tune.freeze_at"].tolist() == ["—", "10"]
    assert list(differences.columns) == [run_dir.name, other.run_id]


def test_deleting_a_run_needs_the_confirmation_and_removes_its_folder(store, trained):
    _, run_dir = trained
    info, _ = trained
    alive = store.create(TINY, info)  # this process is alive: the run reads "running"
    at = _runs_page()
    at = at.multiselect(key="runs_compare").set_value([run_dir.name, alive.run_id]).run()
    at = at.multiselect(key="delete_select").set_value([run_dir.name, alive.run_id]).run()
    assert at.button(key="delete_runs").disabled  # not confirmed yet
    at = at.checkbox(key="delete_confirm").check().run()
    at = at.button(key="delete_runs").click().run()
    assert not at.exception
    assert not (store.root / run_dir.name).exists()
    assert (store.root / alive.run_id).exists()  # a running run is never deleted under its trainer
    assert run_dir.name in at.main.success[0].value and alive.run_id in at.main.warning[0].value
    assert [r["run"] for r in at.dataframe[0].value.to_dict("records")] == [alive.run_id]
    assert at.multiselect(key="delete_select").value == [alive.run_id]
    assert at.checkbox(key="delete_confirm").value is False
    assert at.multiselect(key="runs_compare").value == [alive.run_id]


def test_a_selected_run_deleted_elsewhere_just_drops_out(store, trained):
    _, run_dir = trained
    at = _runs_page()
    at = at.multiselect(key="runs_compare").set_value([run_dir.name]).run()
    assert len(vega_specs(at)) == 2
    store.delete(run_dir.name)  # e.g. from another tab or a shell
    at = at.run()
    assert not at.exception
    assert "No runs yet" in at.main.info[0].value
    store.create(TINY, trained[0])
    at = at.run()
    assert not at.exception and at.multiselect(key="runs_compare").value == []


def test_without_runs_the_page_points_to_training(runs_dir):
    at = _runs_page()
    assert not at.exception
    assert "No runs yet" in at.main.info[0].value
    assert at.get("page_link")


def test_runs_in_progress_are_shown_apart_while_they_train(store, trained):
    info, run_dir = trained
    live = store.create(TINY.replace(epochs=5), info)  # this process records it: it reads "running"
    at = _runs_page()
    assert not at.exception
    assert "Training now" in [h.value for h in at.subheader]
    everything, training_now = at.dataframe[0].value, at.dataframe[1].value
    assert set(everything["run"]) == {run_dir.name, live.run_id}
    (row,) = training_now.to_dict("records")
    assert row["run"] == live.run_id and row["status"].endswith("running") and row["epochs"] == "0/5"

    live.finish("stopped", "test over")
    assert "Training now" not in [h.value for h in _runs_page().subheader]
