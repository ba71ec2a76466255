"""No TensorFlow start-up noise on stderr: one call, made by the CLI and by the app before TensorFlow loads.

TensorFlow prints CUDA probing ("failed call to cuInit", "Could not find
cuda drivers") and oneDNN notices on stderr even on a machine where all is
well. TF_CPP_MIN_LOG_LEVEL=3 silences what its C++ side logs once running,
but not the lines it logs through absl while `import tensorflow` loads its
libraries (they are written before the level is read), so the import itself
runs with stderr filtered (`_stderr_without_log_lines`). A user who sets
TF_CPP_MIN_LOG_LEVEL changes nothing here. GPUs stay visible either way.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

TF_LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
# A C++ log line, absl's format ("I0000 00:00:1796081998.72 5582 port.cc:153] ...") or TensorFlow's
# older one ("2025-09-17 14:44:05.157831: I external/.../cudart_stub.cc:32] ..."), and absl's
# notice that logging is not initialised yet.
_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$)"
)


def quiet_tensorflow() -> None:
    """Keep TensorFlow's log lines off stderr from now on (unless the user set TF_CPP_MIN_LOG_LEVEL).

    A user who sets TF_CPP_MIN_LOG_LEVEL has asked for TensorFlow's logs at that level: then
    nothing here changes anything.

    Call before TensorFlow is imported; it does not import it (the commands
    and pages that never need it stay fast). Calling it again does nothing.
    """
    if TF_LOG_LEVEL_ENV in os.environ:
        return
    os.environ[TF_LOG_LEVEL_ENV] = "3"
    # TensorFlow's and absl's Python loggers: retracing notices and the like.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


def is_tensorflow_log_line(line: str) -> bool:
    """Whether a stderr line is one of TensorFlow's (absl / C++) log lines."""
    return bool(_LOG_LINE.match(line))


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, and has it loaded with its start-up log lines filtered out."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: every later import finds the loaded module
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredLoader(spec.loader)
        return spec


class _FilteredLoader(importlib.abc.Loader):
    """Runs the real loader with stderr filtered, then puts the real loader back on the module."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        try:
            with _stderr_without_log_lines():
                self.loader.exec_module(module)
        finally:
            module.__loader__ = self.loader
            if module.__spec__ is not None:
                module.__spec__.loader = self.loader


class _stderr_without_log_lines:
    """File descriptor 2 goes to a temporary file; on exit, its lines other than log lines go to stderr.

    Every line that is not a log line is written back afterwards: nothing else printed meanwhile
    (by another thread, or an import error) is lost.
    """

    def __enter__(self) -> None:
        self.saved = None
        try:
            sys.stderr.flush()
            self.capture = tempfile.TemporaryFile(mode="w+b")
            self.saved = os.dup(2)
            os.dup2(self.capture.fileno(), 2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2 (a daemon): import unfiltered
            self.saved = None

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            return
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.capture.seek(0)
        kept = [
            line
            for line in self.capture.read().splitlines(keepends=True)
            if not is_tensorflow_log_line(line.decode(errors="replace").rstrip("\r\n"))
        ]
        self.capture.close()
        if kept:
            os.write(2, b"".join(kept))
