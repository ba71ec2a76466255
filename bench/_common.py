"""Helpers shared by the benchmarks in bench/ (no TensorFlow import here).

Each benchmark is a module of the `bench` package, run from the repository
root as `python -m bench.NAME`: the root is then on the import path, so
`bench`, `tlcore` and `dashboard` import with no path patching.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from tlcore.backbones import WEIGHTS_ENV
from tlcore.devices import read_cpu

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO_ROOT / "sample_data"
BENCH_DATE = "2026-11-23"

T = TypeVar("T")

if TYPE_CHECKING:
    from tlcore.tf.pipeline import ImageSet


def setup() -> None:
    """Quiet TensorFlow's C++ logging; call before importing TF."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def default_weights() -> str:
    """The weights the app would start from (TLLAB_WEIGHTS: the offline ImageNet file), else random weights
    (the same speed; a benchmark cannot download ImageNet's)."""
    return os.environ.get(WEIGHTS_ENV) or "none"


def weights_file() -> Path:
    """The ImageNet weights file, found as the app finds it (TLLAB_WEIGHTS); exits saying how when missing."""
    path = Path(os.environ.get(WEIGHTS_ENV, ""))
    if not os.environ.get(WEIGHTS_ENV) or not path.is_file():
        raise SystemExit(
            f"This benchmark needs the ImageNet weights file: set {WEIGHTS_ENV} to it "
            "(offline machines: ../shared/weights/, see its README)."
        )
    return path


def note(message: str) -> None:
    """Progress for the human watching: stderr, so stdout stays one JSON object."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))


def median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def cpu_info() -> dict[str, Any]:
    """What the figures depend on: core count, model name, the clock the kernel reports and the vector features."""
    cpu = read_cpu()  # one reader of /proc/cpuinfo: the lab's device report uses it too
    return {
        "cpu_count": os.cpu_count(),
        "affinity": cpu.cores,
        "model_name": cpu.model_name,
        "family_model": cpu.family_model,
        "cpu_mhz": cpu.mhz,
        "vector_flags": list(cpu.vector_flags),
        "bfloat16": cpu.bfloat16,  # AVX-512 BF16 or AMX: mixed_bfloat16 runs natively
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: above the core count means other work shared the CPU."""
    return [round(x, 2) for x in os.getloadavg()]


class Stopwatch:
    """Wall time and this process's CPU time over a block.

    cpu_share = CPU seconds / (wall seconds * cores): well under 1 on a
    compute-bound pass means other processes took part of the CPU.
    """

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu

    @property
    def cpu_share(self) -> float:
        return self.cpu / (self.wall * (os.cpu_count() or 1))


def library_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__}


def run_facts(load_before: list[float]) -> dict[str, Any]:
    """What every result ends with: the CPU, the library versions and the load average before and after."""
    return {
        "cpu": cpu_info(),
        "versions": library_versions(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def repeated_image_set(n: int, image_size: int, data_dir: Path = SAMPLE_DATA) -> ImageSet:
    """The sample training images, decoded once at image_size and repeated to n, in memory."""
    import numpy as np

    from tlcore.data import TRAIN, scan
    from tlcore.tf.pipeline import ImageSet, load_split

    base = load_split(scan(data_dir), TRAIN, image_size)
    if base.images is None:
        raise RuntimeError(f"{data_dir} did not fit the in-memory image budget")
    index = np.resize(np.arange(len(base)), n)  # cycles 0..len-1 until n
    return ImageSet(
        paths=[base.paths[i] for i in index],
        labels=base.labels[index].copy(),
        image_size=image_size,
        images=np.ascontiguousarray(base.images[index]),
    )


def wait_for(
    condition: Callable[[], T | Literal[False] | None], deadline_s: float, what: str, poll_s: float = 0.25
) -> T:
    """condition()'s first truthy value, polled every poll_s; TimeoutError naming `what` past the deadline.

    Typed without None and False: `wait_for(lambda: store.get(run_id), ...)` gives the record, not an Optional.

    The one wait-until of the benchmarks and the tests (which import it from here).
    """
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError(f"timed out after {deadline_s:.0f} s waiting for {what}")


@contextlib.contextmanager
def code_at(commit: str) -> Iterator[Path]:
    """This repository's code as it was at `commit`, in a temporary git worktree (removed afterwards).

    For side-by-side figures: run the same measurement with PYTHONPATH set to this folder
    (`run_worker`) and to REPO_ROOT, in one benchmark run on one machine.
    """
    folder = Path(tempfile.mkdtemp(prefix="tllab-at-")) / commit[:12]
    subprocess.run(
        ["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", str(folder), commit],
        check=True,
        capture_output=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(folder)],
            check=False,
            capture_output=True,
        )


def run_worker(code_root: Path, script: Path, args: list[str], timeout_s: float = 3600) -> dict[str, Any]:
    """Run `script` (a file of bench/, by path) with `code_root` first on the import path; its stdout's JSON.

    The script's own folder is not what gets imported: tlcore comes from `code_root`, so the same
    measurement runs against another version of the code.
    """
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    done = subprocess.run(
        [sys.executable, str(script), *args], env=env, cwd=code_root, capture_output=True, text=True, timeout=timeout_s
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} at {code_root} failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def git_commit(ref: str = "HEAD") -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", ref], check=True, capture_output=True, text=True
    ).stdout.strip()


def browser_bench_folder(path: str | Path) -> Path:
    """Where a browser benchmark puts its screenshots (made here); it exits first without the weights file.

    The browser benchmarks time the pages on real ImageNet features, which random weights would not show.
    """
    weights_file()
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
