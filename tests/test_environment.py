"""Every TLLAB_* variable is read in tlcore.environment, documented in README and means what it says."""

from __future__ import annotations

import re
from pathlib import Path

from tlcore import environment
from tlcore.environment import VARIABLES, whole_number

ROOT = Path(__file__).resolve().parent.parent
READS = re.compile(r"environ(?:\.get)?\s*[\[(]\s*[\"']TLLAB_|getenv\(\s*[\"']TLLAB_")


def _sources() -> list[Path]:
    return [*ROOT.glob("tlcore/**/*.py"), *ROOT.glob("dashboard/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]


def test_only_the_environment_module_reads_the_variables():
    for path in _sources():
        if path.name != "environment.py":
            assert not READS.search(path.read_text()), f"{path.relative_to(ROOT)} reads a TLLAB_ variable itself"


def test_every_variable_the_code_names_is_declared_and_documented():
    named = set()
    for path in _sources():
        named |= set(re.findall(r"\bTLLAB_[A-Z_]+\b", path.read_text()))
    assert named <= set(VARIABLES), f"not declared in tlcore.environment: {sorted(named - set(VARIABLES))}"
    readme = (ROOT / "README.md").read_text()
    assert [name for name in VARIABLES if name not in readme] == []


def test_limits_read_as_whole_numbers_with_a_floor_and_a_fallback():
    assert whole_number("TLLAB_MAX_JOBS", 1, environ={"TLLAB_MAX_JOBS": " 3 "}) == 3
    assert whole_number("TLLAB_MAX_JOBS", 1, environ={"TLLAB_MAX_JOBS": "0"}) == 1  # at least one
    assert whole_number("TLLAB_MAX_JOBS", 2, environ={"TLLAB_MAX_JOBS": "many"}) == 2  # a typo: the default
    assert whole_number("TLLAB_MAX_JOBS", 2, environ={}) == 2


def test_values_are_read_when_asked(monkeypatch):
    monkeypatch.setenv(environment.RUNS_ENV, "/somewhere/runs")
    from tlcore.runs import default_runs_dir

    assert default_runs_dir() == Path("/somewhere/runs")
    monkeypatch.delenv(environment.RUNS_ENV)
    assert default_runs_dir() == Path("runs")
