"""`python -m tlcore changes RUN_DIR [--json]`, run as a user runs it (in a subprocess)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.test_cli import assert_one_line_error, run_cli
from tlcore.backbone_facts import VGG16_CONVS
from tlcore.cli.tables import change_bar
from tlcore.run_folder import RUN_FILE


@pytest.fixture
def run_dir(runs_at_10_and_14):
    """A finished run that trained block 5 and the head (freeze point 14) from random weights."""
    return runs_at_10_and_14[1]


def test_changes_prints_a_line_per_layer_frozen_ones_at_zero(run_dir):
    proc = run_cli("changes", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    header, columns, *layers, summary = proc.stdout.splitlines()
    assert header == f"run {run_dir.name}: started from weights none; deepest freeze point 14"
    assert columns.split()[:4] == ["layer", "block", "status", "||W-W0||/||W0||"]
    assert [line.split()[0] for line in layers] == [layer.name for layer in VGG16_CONVS] + [
        "head_norm",
        "head_dense_1",
        "predictions",
    ]
    for line in layers[:10]:  # blocks 1-4
        assert line.split()[2:] == ["frozen", "0"]
    for line in layers[10:]:  # block 5 and the head: a change and its bar
        _name, _block, status, change, bar = line.split()
        assert status == "trained" and float(change) > 0 and bar == change_bar(float(change))
    assert summary.startswith("3 VGG16 conv layer(s) trained, 10 stayed frozen (unchanged)")


def test_changes_json_is_one_object_with_a_layers_list(run_dir):
    proc = run_cli("changes", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["run_dir"], result["run_id"]) == (str(run_dir), run_dir.name)
    assert (result["weights"], result["trained_from"], result["conv_layers_trained"]) == ("none", 14, 3)
    assert result["head_only"] is False and result["seconds"] > 0
    layers = result["layers"]
    assert [layer["name"] for layer in layers][-3:] == ["head_norm", "head_dense_1", "predictions"]
    assert [layer["trained"] for layer in layers] == [False] * 10 + [True] * 6
    assert all(layer["relative_change"] == 0.0 and layer["change_norm"] == 0.0 for layer in layers[:10])
    assert all(layer["relative_change"] > 0 for layer in layers[10:])
    assert all(layer["start_norm"] > 0 for layer in layers)
    assert layers[0] == {**layers[0], "part": "backbone", "block": "block1", "params": 1792}


def test_an_old_run_or_a_folder_that_is_no_run_is_one_error_line_and_exit_1(run_dir, tmp_path):
    old = tmp_path / run_dir.name
    shutil.copytree(run_dir, old)
    record = json.loads((old / RUN_FILE).read_text())
    del record["start"]
    (old / RUN_FILE).write_text(json.dumps(record))
    assert_one_line_error(run_cli("changes", str(old)), 1, "saved before the lab recorded its starting weights")
    assert_one_line_error(run_cli("changes", str(tmp_path), "--json"), 1, "Not a run folder")


def test_the_text_bar_is_log_scale():
    assert [change_bar(v) for v in (None, 0.0, 1e-6)] == ["", "", "#"]
    assert len(change_bar(1e-4)) == 4 and len(change_bar(1e-2)) == 12 and len(change_bar(1.0)) == 20


def test_changes_cka_adds_each_conv_layers_cka_frozen_ones_at_1(run_dir):
    proc = run_cli("changes", str(run_dir), "--cka", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    layers = result["layers"]
    assert all(layer["cka"] == 1.0 for layer in layers[:10])  # blocks 1-4 froze: 1 by construction
    trained = [layer["cka"] for layer in layers[10:13]]  # block 5 trained for 2 epochs from random weights
    assert all(0.0 < value <= 1.0 + 1e-9 for value in trained) and min(trained) < 1.0 - 1e-6
    assert [layer["cka"] for layer in layers[13:]] == [None] * 3  # the head started random: nothing to compare
    assert result["cka_images"] == 8 and result["cka_estimator"].startswith("linear CKA, biased HSIC")
    assert "The first 10 conv layers stayed frozen" in result["cka_summary"]

    text = run_cli("changes", str(run_dir), "--cka")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[1].split()[:5] == ["layer", "block", "status", "||W-W0||/||W0||", "CKA"]
    assert lines[2].split()[2:] == ["frozen", "0", "1.000"]
    assert lines[-1].startswith("CKA: linear CKA") and "validation images" in lines[-1]
