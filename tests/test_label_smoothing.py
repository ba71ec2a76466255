"""Label smoothing, the option issue 22 adds to show a setting declared once: its field in tlcore/config.py,
its loss in tlcore/tf/build.py, its lines in the script template, and nothing else to write."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.state import DEFAULTS, config_to_state, state_to_config
from tests.conftest import ROOT
from tests.helpers import make_dataset_folder
from tlcore.cli import build_parser
from tlcore.cli.options import config_from_args
from tlcore.codegen import training_script
from tlcore.config import SETTING_NAMES, HeadConfig, TrainConfig
from tlcore.data import scan
from tlcore.script_folder import DataFolder


def test_the_field_validates_records_and_reads_older_runs_as_off():
    assert TrainConfig().label_smoothing == 0.0
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\). Received: label_smoothing=1.0"):
        TrainConfig(label_smoothing=1.0)
    config = TrainConfig(label_smoothing=0.1)
    assert json.loads(config.to_json())["label_smoothing"] == 0.1  # run.json
    assert TrainConfig.from_json(config.to_json()) == config
    older = json.loads(TrainConfig().to_json())
    del older["label_smoothing"]
    assert TrainConfig.from_dict(older).label_smoothing == 0.0
    assert SETTING_NAMES["label_smoothing"] == "label smoothing"  # the Runs page's list of differences
    assert TrainConfig().differences(config) == [("label_smoothing", 0.0, 0.1)]


def test_the_command_line_has_its_flag():
    parser = build_parser()
    args = parser.parse_args(["train", "--data", "d", "--label-smoothing", "0.1"])
    assert config_from_args(args).label_smoothing == 0.1
    assert config_from_args(parser.parse_args(["train", "--data", "d"])).label_smoothing == 0.0


def test_the_model_page_has_its_widget_and_the_config_follows():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page("pages/model.py").run()
    widget = at.number_input(key="label_smoothing")
    assert widget.label == "Label smoothing"
    widget.set_value(0.1).run()
    assert not at.exception, at.exception
    assert state_to_config(at.session_state).label_smoothing == pytest.approx(0.1)
    state = {**DEFAULTS, **config_to_state(TrainConfig(weights="none", label_smoothing=0.2))}
    assert state_to_config(state).label_smoothing == 0.2


def test_the_loss_smooths_the_targets():
    from tlcore.tf.build import SmoothedSparseCrossentropy, build_for, compile_for

    probabilities = np.array([[0.9, 0.1]], dtype=np.float32)
    loss = float(SmoothedSparseCrossentropy(0.1)(np.array([0]), probabilities))
    # targets 0.95 / 0.05: 0.1 moved off the true class and spread over both classes
    assert loss == pytest.approx(-(0.95 * math.log(0.9) + 0.05 * math.log(0.1)), rel=1e-5)
    plain = TrainConfig(weights="none", image_size=32, freeze_at=18, head=HeadConfig(dense=(4,)))
    model = build_for(plain.replace(label_smoothing=0.1), 2)
    compile_for(model, plain.replace(label_smoothing=0.1), 1e-3)
    assert isinstance(model.loss, SmoothedSparseCrossentropy) and model.loss.label_smoothing == 0.1
    compile_for(model, plain.replace(head=HeadConfig(dense=(4,), output="sigmoid"), label_smoothing=0.2), 1e-3)
    assert model.loss.get_config()["label_smoothing"] == 0.2


def test_the_script_smooths_as_the_lab_does(tmp_path):
    info = scan(make_dataset_folder(tmp_path / "data", n_train=2, n_val=1))
    data = DataFolder.from_info(info)
    script = training_script(TrainConfig(label_smoothing=0.1), data)
    assert "LABEL_SMOOTHING = 0.1" in script and "loss=smoothed_crossentropy" in script
    compile(script, "train.py", "exec")
    binary = training_script(TrainConfig(label_smoothing=0.1, head=HeadConfig(output="sigmoid")), data)
    assert "BinaryCrossentropy(label_smoothing=LABEL_SMOOTHING)" in binary
    compile(binary, "train.py", "exec")
    assert "LABEL_SMOOTHING" not in training_script(TrainConfig(), data)


def test_a_run_trains_with_it_and_its_model_loads(tmp_path):
    from tests.helpers import TINY_CONFIG
    from tlcore.runs import RunStore
    from tlcore.tf.model import load_run_model
    from tlcore.tf.training import train_and_record

    info = scan(make_dataset_folder(tmp_path / "data", n_train=4, n_val=2))
    result, run = train_and_record(
        TINY_CONFIG.replace(epochs=1, label_smoothing=0.1), info, RunStore(tmp_path / "runs")
    )
    assert result.status == "completed" and math.isfinite(result.history[-1].loss)
    assert run.record.config.label_smoothing == 0.1
    assert load_run_model(run.run_dir).predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0).shape == (1, 2)
