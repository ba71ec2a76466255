"""Job functions the Ray tests send to workers (importable there: the tests put the repository on PYTHONPATH)."""

from __future__ import annotations

import tempfile

from tlcore.backend import ProbeWriter, write_storage_probe
from tlcore.progress import ProgressFn, StopFlag


def write_probe_on_a_disk_of_its_own(root: str, token: str, *, report: ProgressFn, stop: StopFlag) -> ProbeWriter:
    """A worker whose node does not share the run store: its `root` is somewhere else (here: a private folder)."""
    elsewhere = tempfile.mkdtemp(prefix="not-shared-")
    return write_storage_probe(f"{elsewhere}/{root.lstrip('/')}", token, report=report, stop=stop)
