"""`--config` files the CLI cannot use end with a message naming the file and why (exit 2), never a traceback."""

from __future__ import annotations

import json

import pytest

from tlcore.cli import main
from tlcore.config import TrainConfig

GOOD = TrainConfig().to_dict()
GOOD_HEAD = GOOD["head"]
assert isinstance(GOOD_HEAD, dict)  # a nested config is a JSON object


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "holds a JSON list, not a run.json object"),
        (json.dumps({"config": {**GOOD, "head": {**GOOD_HEAD, "bogus": 1}}}), "Unknown head keys: ['bogus']"),
        (json.dumps({"config": {**GOOD, "augment": [True]}}), "augment must be a JSON object, not list"),
        (json.dumps({"config": {**GOOD, "fine_tune": {"freeze_at": 14, "when": 2}}}), "Unknown fine_tune keys"),
        (json.dumps({"config": "fast"}), "config must be a JSON object, not str"),
        (json.dumps({**GOOD, "colour": "red"}), "Unknown config keys: ['colour']"),
    ],
)
def test_a_config_file_that_cannot_be_used_says_why(tmp_path, capsys, content, said):
    path = tmp_path / "run.json"
    path.write_text(content)
    for command in ("train", "code"):
        assert main([command, "--config", str(path), "--data", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert said in err and str(path) in err and "Traceback" not in err


def test_a_config_with_every_nested_key_known_still_reads():
    assert TrainConfig.from_dict(json.loads(json.dumps(GOOD))) == TrainConfig()
