"""Command line: python -m tlcore (or tllab) COMMAND ...: scan, layers, train, code, sweep, probe, featuremaps,
changes, cache, lr-find, predict, export, transfer-curve. This module is the entry point: it parses, runs the command
and turns what it raises into a one-line error and an exit code (`tlcore.cli.errors`; the --help epilog
lists them: 0 ok, 1 bad data or an unwritable runs folder, 2 bad arguments, 3 the Ray cluster cannot run
the job, 130 interrupted)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tlcore.backbones import WeightsError
from tlcore.backend import ClusterError
from tlcore.cli.artifacts import cmd_cache, cmd_code, cmd_export, cmd_predict
from tlcore.cli.curve import cmd_transfer_curve
from tlcore.cli.errors import EXIT_CLUSTER, EXIT_DATA, EXIT_INTERRUPTED, EXIT_USAGE, UsageError, print_error
from tlcore.cli.inspection import cmd_changes, cmd_featuremaps, cmd_layers, cmd_probe, cmd_scan
from tlcore.cli.parser import build_parser
from tlcore.cli.training import cmd_lr_find, cmd_sweep, cmd_train
from tlcore.data_problems import DatasetError
from tlcore.devices import PrecisionUnsupported
from tlcore.imageio import ImageProblem
from tlcore.quiet import quiet_tensorflow
from tlcore.runs import RunFolderError
from tlcore.weight_changes import ChangesUnavailable

__all__ = ["EXIT_CLUSTER", "EXIT_DATA", "EXIT_INTERRUPTED", "EXIT_USAGE", "build_parser", "main"]

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "scan": cmd_scan,
    "layers": cmd_layers,
    "train": cmd_train,
    "sweep": cmd_sweep,
    "probe": cmd_probe,
    "featuremaps": cmd_featuremaps,
    "changes": cmd_changes,
    "cache": cmd_cache,
    "lr-find": cmd_lr_find,
    "predict": cmd_predict,
    "code": cmd_code,
    "export": cmd_export,
    "transfer-curve": cmd_transfer_curve,
}


def _tolerant_output() -> None:
    """Print any file name instead of crashing on it.

    A name that is not UTF-8 reaches Python as lone surrogates, and a name
    like "猫.png" cannot be written to an ASCII terminal: strict streams then
    raise mid-report. Escapes (\\udce9, \\u732b) say which file it is.
    """
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    quiet_tensorflow()  # before any command imports it
    _tolerant_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, PrecisionUnsupported) as err:
        print_error(str(err))
        return EXIT_USAGE
    except (DatasetError, WeightsError, ImageProblem, FileNotFoundError, RunFolderError, ChangesUnavailable) as err:
        print_error(str(err))
        return EXIT_DATA
    except ClusterError as err:
        print_error(str(err))
        return EXIT_CLUSTER
    except KeyboardInterrupt:  # Ctrl-C outside training (scanning, loading): nothing learned to keep
        print_error("interrupted")
        return EXIT_INTERRUPTED
