"""The command line's exit codes and its one-line error (`error: ...` on stderr)."""

from __future__ import annotations

import signal
import sys

EXIT_DATA, EXIT_USAGE, EXIT_CLUSTER = 1, 2, 3
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, what a shell reports for a command ended by Ctrl-C


class UsageError(Exception):
    """Arguments that cannot work together or with the data: exit 2 with the message."""


def print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
