"""`python -m tlcore lr-find --data DIR [train options] [--phase 1|2] [--max-steps N] [--json]`, run as a user
runs it (in a subprocess)."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from tests.helpers import make_dataset_folder
from tests.test_cli import assert_one_line_error, run_cli

TINY_ARGS = ["--weights", "none", "--image-size", "32", "--batch-size", "8", "--dense", "8", "--dropout", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset_folder(tmp_path_factory.mktemp("cli-lr") / "data", n_train=16, n_val=4)


def test_lr_find_prints_the_route_the_curve_the_suggestion_and_the_marked_rates(data):
    proc = run_cli("lr-find", "--data", str(data), *TINY_ARGS, "--max-steps", "30")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("phase 1 at freeze_at=18, path=cached: ")
    assert " of 30 planned steps in " in lines[0]
    assert lines[1].split() == ["rate", "smoothed", "loss"]
    assert lines[2].split()[0] == "1e-7" and lines[2].split()[-1].startswith("#")
    assert any(line.startswith("suggested rate (valley): ") for line in lines)
    assert [line.split(":")[0] for line in lines[-2:]] == ["1e-4", "1e-3"]
    assert "sweep: phase 1, freeze_at=18, path=cached" in proc.stderr


def test_lr_find_json_for_phase_2_and_its_step_cap(data):
    args = ["--fine-tune-at", "14", "--epochs", "1", "--phase", "2", "--json"]
    proc = run_cli("lr-find", "--data", str(data), *TINY_ARGS, *args)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()  # JSON only on stdout
    out = json.loads(line)
    assert (out["phase"], out["freeze_at"], out["route"]) == (2, 14, "cached")
    assert out["planned_steps"] <= 100 and 2 <= out["steps"] == len(out["curve"])
    assert [m["rate"] for m in out["marked"]] == [1e-4, 1e-3]
    assert out["suggestion_method"] == "valley"
    rates = [point["rate"] for point in out["curve"]]
    assert rates == sorted(rates) and rates[0] == pytest.approx(1e-7)
    # phase 1 trained first, as training would (its epochs as its plan stretches them for the data)
    assert re.search(r"^epoch 1/\d+: loss ", proc.stderr, re.MULTILINE)


def test_phase_2_without_a_second_phase_is_one_error_line_and_exit_2(data):
    proc = run_cli("lr-find", "--data", str(data), *TINY_ARGS, "--phase", "2")
    assert_one_line_error(proc, 2, "no second phase")


def test_lr_find_takes_every_train_option_but_the_runs_folder():
    from tlcore.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    train = {a.dest for a in commands["train"]._actions}
    lr_find = {a.dest for a in commands["lr-find"]._actions}
    assert lr_find == (train - {"runs_dir"}) | {"phase", "max_steps", "max_seconds"}
