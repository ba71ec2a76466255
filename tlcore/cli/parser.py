"""The command line's parser: every command and option with its help text (the TrainConfig options are
`tlcore.cli.options`'), and the epilog of exit codes that --help shows."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.cli.options import WEIGHTS_HELP, add_config_options, add_length_options, int_list
from tlcore.config import TrainConfig
from tlcore.devices import PRECISIONS
from tlcore.exports import FORMATS
from tlcore.featuremaps import DEFAULT_TOP
from tlcore.imageio import DEFAULT_MAX_PIXELS
from tlcore.lr_finder import DEFAULT_MAX_SECONDS, DEFAULT_MAX_STEPS
from tlcore.sweep import DEFAULT_POINTS
from tlcore.transfer_curve import DEFAULT_EPOCHS as CURVE_EPOCHS
from tlcore.transfer_curve import DEFAULT_IMAGE_SIZE as CURVE_IMAGE_SIZE
from tlcore.transfer_curve import DEFAULT_POINTS as CURVE_POINTS
from tlcore.transfer_curve import DEFAULT_REPEATS, FASTEST

EPILOG = """exit codes:
  0    ok
  1    bad data: a missing folder, an unusable dataset or weights, a runs folder that cannot be written,
       a run whose changes cannot be measured
  2    bad arguments
  3    the Ray cluster (TLLAB_RAY_ADDRESS) cannot run the job: Ray missing, unreachable, gone mid-run,
       a run store the workers do not share, a worker lost
  130  interrupted (Ctrl-C); train and sweep keep what was learned

With --json, stdout holds JSON only; logs and progress go to stderr."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the epilog's layout and shows each option's default, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or isinstance(action, argparse._VersionAction):
            return action.help
        return super()._get_help_string(action)


def prog() -> str:
    """The program's name in usage lines: tllab when called so, else python -m tlcore."""
    return "tllab" if Path(sys.argv[0]).name == "tllab" else "python -m tlcore"


def build_parser() -> argparse.ArgumentParser:
    """Every command and option, each with its help text; defaults come from TrainConfig, said once."""
    from tlcore import __version__

    d = TrainConfig()  # the defaults a train option falls back to, shown in its help
    parser = argparse.ArgumentParser(
        prog=prog(),
        description="Transfer Learning Lab engine: scan image folders, "
        "train VGG16 + a head at a freeze point, sweep freeze points, predict.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, epilog=EPILOG, formatter_class=HelpFormatter)

    p = command("scan", "report on an image folder: classes, images per split, files skipped and why")
    p.add_argument("data", help="dataset folder (class folders, optionally inside train/ and validation/)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="skip images above this many pixels (a guard against decompression bombs)",
    )

    p = command("layers", "the VGG16 layer table at a freeze point (no TensorFlow needed)")
    p.add_argument("--image-size", type=int, default=d.image_size, help="square input size in pixels")
    p.add_argument("--freeze-at", type=int, default=VGG16_LAYERS, help=f"VGG16 layers frozen, 0..{VGG16_LAYERS}")
    p.add_argument("--json", action="store_true", help="print the table as JSON")

    p = command("train", "train a model and save it as a run")
    p.add_argument("--data", help="dataset folder (required)")
    add_config_options(p)
    p.add_argument("--runs-dir", help="runs folder (default: $TLLAB_RUNS_DIR or ./runs)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")

    p = command(
        "code",
        "print a standalone Keras script (no tlcore in it) that trains what the train command would: "
        "python -m tlcore code --data DIR > train.py",
    )
    p.add_argument(
        "--data", help="dataset folder the script reads (default with --config RUN_DIR: the folder that run used)"
    )
    add_config_options(p)

    p = command("sweep", "train the same head at several freeze points, plus from scratch")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--image-size", type=int, default=96, help="square input size in pixels")
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs at every point")
    p.add_argument(
        "--points",
        type=int_list,
        default=DEFAULT_POINTS,
        help=f"freeze points, run in this order (default {','.join(map(str, DEFAULT_POINTS))}: "
        "VGG16's block boundaries)",
    )
    p.add_argument(
        "--no-scratch",
        action="store_true",
        help="leave out the baseline trained from random weights with every layer learning",
    )
    p.add_argument("--weights", help=WEIGHTS_HELP)
    p.add_argument(
        "--learning-rate",
        type=float,
        help=f"the same for every point (default: {d.learning_rate:g}, at most 1e-4 where conv layers train)",
    )
    p.add_argument(
        "--balance-classes",
        action="store_true",
        help="weight each class inversely to its training images at every point",
    )
    add_length_options(p)
    p.add_argument("--runs-dir", help="runs folder (default: $TLLAB_RUNS_DIR or ./runs)")
    p.add_argument("--json", action="store_true", help="one JSON object per point per line, then a summary line")

    p = command(
        "probe",
        "where transferable knowledge lives: a linear probe on pooled VGG16 features at each block "
        "boundary, ImageNet weights against random ones",
    )
    p.add_argument("--data", required=True, help="dataset folder (probes fit on train/, score on validation/)")
    p.add_argument(
        "--weights",
        help="the pretrained side: imagenet | PATH | none (no pretrained side) (default: $TLLAB_WEIGHTS or imagenet)",
    )
    p.add_argument("--image-size", type=int, default=d.image_size, help="square input size in pixels")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the random weights")
    p.add_argument("--json", action="store_true", help="print one JSON object with a boundaries list")

    p = command("predict", "class probabilities for images, from a saved run's model")
    p.add_argument("--run", required=True, help="a run folder with model.keras")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to print per image")
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")

    p = command(
        "transfer-curve",
        "Yosinski et al. 2014's transfer curve on your images: at each freeze point, ImageNet layers kept, the "
        "layers above re-initialised, kept then fine-tuned, and random layers frozen",
    )
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--weights", help=WEIGHTS_HELP)
    p.add_argument("--image-size", type=int, default=CURVE_IMAGE_SIZE, help="square input size in pixels")
    p.add_argument("--epochs", type=int, default=CURVE_EPOCHS, help="epochs of every run (no early stopping)")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="runs of each condition, each its own seed")
    p.add_argument(
        "--points",
        type=int_list,
        default=CURVE_POINTS,
        help=f"freeze points (default {','.join(map(str, CURVE_POINTS))}; 18: the head alone)",
    )
    p.add_argument(
        "--precision",
        choices=(FASTEST, *PRECISIONS),
        default=FASTEST,
        help="numeric precision of every run (default fastest: mixed_bfloat16 on a CPU with bfloat16 instructions "
        "or an Ampere GPU, else float32)",
    )
    p.add_argument(
        "--runs-dir", help="runs folder; the curve and its runs go to its curves/ (default: $TLLAB_RUNS_DIR or ./runs)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with a boundaries list")

    p = command(
        "export",
        "a run's model for use elsewhere, checked at once on the run's validation images against its .keras model",
    )
    p.add_argument("run", metavar="RUN", help="a finished run folder with model.keras")
    p.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="savedmodel: TensorFlow SavedModel; tflite: LiteRT float32; tflite-int8: LiteRT with int8 weights",
    )
    p.add_argument("--out", help="the export's folder (default: RUN/exports/FORMAT)")
    p.add_argument("--json", action="store_true", help="print one JSON object (the export's card)")

    p = command(
        "featuremaps",
        "what one VGG16 layer sees in an image: its most active feature maps, ImageNet and random weights side by side",
    )
    p.add_argument("--image", required=True, help="an image file")
    p.add_argument("--out", required=True, help="the PNG to write: the image and each weighting's maps, labelled")
    p.add_argument("--layer", help="a VGG16 layer name (default: the last frozen layer at --freeze-at)")
    p.add_argument(
        "--freeze-at", type=int, default=d.freeze_at, help=f"the freeze point whose layer is shown, 0..{VGG16_LAYERS}"
    )
    p.add_argument(
        "--weights",
        help="imagenet | PATH: the pretrained side, shown next to random weights "
        "(default: $TLLAB_WEIGHTS or imagenet; none: the random side alone unless those are usable)",
    )
    p.add_argument("--image-size", type=int, default=d.image_size, help="square input size in pixels")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, help="maps to show, most active first")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the random weights")
    p.add_argument(
        "--json", action="store_true", help="print the layer, its shape and each side's top channels as JSON"
    )

    p = command("cache", "the feature store: frozen features kept on disk for later runs and sweeps")
    p.add_argument("--clear", action="store_true", help="remove every entry")
    p.add_argument(
        "--runs-dir", help="runs folder whose store to use (default: $TLLAB_CACHE_DIR, else ./runs/.features)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = command(
        "changes",
        "what fine-tuning changed: how far each layer's weights moved from where a run started "
        "(||W - W0|| / ||W0|| per VGG16 conv layer and head Dense layer)",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder with model.keras")
    p.add_argument(
        "--cka",
        action="store_true",
        help="also how alike each conv layer's activations are before and after (linear CKA, 1: unchanged), on "
        "the run's validation images",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with a layers list")
    _add_lr_find(command)
    return parser


def _add_lr_find(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """The lr-find command: the train command's own options (shared, not declared again), and its caps."""
    p = command(
        "lr-find",
        "find a learning rate: a range test (Smith 2017, as fastai's lr_find) on the settings the train "
        "options describe, the rate rising from 1e-7 to 1 over a few dozen training steps",
    )
    p.description = (
        f"{p.description}. The train command's options describe the settings: a phase-1 sweep reads neither "
        "the learning rates nor the epochs; a phase-2 sweep trains phase 1 as they say first. Nothing is saved."
    )
    p.add_argument("--data", help="dataset folder (required)")
    add_config_options(p)  # the train command's own settings; no --runs-dir: a sweep saves no run
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument(
        "--phase",
        type=int,
        choices=(1, 2),
        default=1,
        help="the phase to sweep; 2 (needs --fine-tune-at, or a config or preset with a second phase) trains "
        "phase 1 first, as training would, then sweeps with the layers above the phase-2 freeze point trainable",
    )
    p.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS, help="at most this many sweep steps")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_MAX_SECONDS,
        help="at most this many seconds of sweep steps (decoding, features and phase 1 come before)",
    )
