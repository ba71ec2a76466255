"""`python -m tlcore layers` prints VGG16's layer table without TensorFlow, as its help says."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_the_layer_table_needs_no_tensorflow():
    check = (
        "import json, sys\n"
        "from tlcore.cli import main\n"
        "main(['layers', '--freeze-at', '10', '--image-size', '64', '--json'])\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    table = json.loads(done.stdout)
    assert (table["trainable_params"], table["frozen_params"]) == (13_112_066, 1_735_488)  # blocks 1-3 frozen
    names = [row["name"] for row in table["layers"]]
    assert names[:3] == ["image", "preprocess", "block1_conv1"] and names[-1] == "predictions"
    assert [row["trainable"] for row in table["layers"] if row["name"] in ("block3_pool", "block4_conv1")] == [
        False,
        True,
    ]
