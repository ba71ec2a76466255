"""The engine's layout is its TensorFlow boundary: tlcore/tf/ holds the Keras side, the rest never loads it."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import tlcore
from tests.conftest import ROOT


def test_every_tensorflow_free_module_imports_without_tensorflow():
    # Found from the package itself, so a module added later is checked too (__main__ would run the CLI).
    modules = sorted(
        m.name
        for m in pkgutil.walk_packages(tlcore.__path__, "tlcore.")
        if not m.name.startswith("tlcore.tf.") and m.name not in ("tlcore.tf", "tlcore.__main__")
    )
    assert {"tlcore.cli", "tlcore.jobs", "tlcore.runs", "tlcore.sweep", "tlcore.estimate"} <= set(modules)
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in ('tensorflow', 'keras', 'tlcore.tf') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_the_command_line_starts_without_the_heavy_libraries():
    # Every `python -m tlcore` command (a scan, --version, a refusal) pays for what tlcore.cli imports:
    # scikit-learn and matplotlib are loaded where a command uses them, not at start.
    code = (
        "import json, sys\n"
        "import tlcore.cli\n"
        "print(json.dumps(sorted(m for m in ('sklearn', 'matplotlib', 'tensorflow') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []
