"""Generators for tiny image datasets used by the tests."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tlcore.config import HeadConfig, TrainConfig
from tlcore.history import EpochRow

CLASS_COLOURS = [(210, 60, 50), (50, 80, 210), (60, 190, 70), (220, 200, 40)]
# Exactly the epochs and batch size set (min_steps=0) and no early stopping, so tests count epochs and batches.
EXACT_LENGTH: dict = {"min_steps": 0, "early_stopping_patience": None}
# The smallest real run: random weights, 32 px, a tiny head, one epoch (seconds on a CPU).
TINY_CONFIG = TrainConfig(
    weights="none", image_size=32, batch_size=8, epochs=1, head=HeadConfig(dense=(8,), dropout=0.0), **EXACT_LENGTH
)


def make_image(colour, size=40, seed=0, fmt="PNG", mode="RGB") -> Image.Image:
    """A noisy image dominated by one colour, so classes are learnable."""
    rng = np.random.default_rng(seed)
    base = np.array(colour, dtype=np.int16)
    noise = rng.integers(-40, 40, size=(size, size, 3), dtype=np.int16)
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").convert(mode)


def make_dataset_folder(
    root: Path,
    classes=("cats", "dogs"),
    n_train: int = 12,
    n_val: int = 6,
    size: int = 40,
    split_names=("train", "validation"),
) -> Path:
    """root/<split>/<class>/i.png (or root/<class>/ when split_names is None)."""
    for c, name in enumerate(classes):
        colour = CLASS_COLOURS[c % len(CLASS_COLOURS)]
        if split_names is None:
            targets = [(root / name, n_train + n_val)]
        else:
            targets = [(root / split_names[0] / name, n_train), (root / split_names[1] / name, n_val)]
        for folder, count in targets:
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                # Seeded from the path inside root, so the pixels never depend on where root is.
                seed = zlib.crc32(f"{folder.relative_to(root)}|{i}".encode())
                make_image(colour, size, seed=seed).save(folder / f"{name}_{i:03d}.png")
    return root


def vega_specs(at) -> list[dict]:
    """The Vega-Lite specs of the Altair charts an AppTest page shows, in page order (data kept apart)."""
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def chart_title(spec: dict) -> str | None:
    return spec.get("title") if isinstance(spec.get("title"), str) else (spec.get("title") or {}).get("text")


def chart_rows(at) -> list[list[dict]]:
    """The data rows of each Altair chart an AppTest page shows, in page order (all of a chart's datasets)."""
    import pyarrow as pa

    return [
        [
            row
            for dataset in chart.proto.datasets
            for row in pa.ipc.open_stream(dataset.data.data).read_all().to_pylist()
        ]
        for chart in at.get("vega_lite_chart")
    ]


def shown_predictions(at) -> list[dict]:
    """What the Inference page shows for each image: its name, the predicted class (its metric) and the
    probability of every class (read from its bar chart's data), in page order."""
    bars = [
        {row["class"]: row["probability"] for row in rows}
        for rows in chart_rows(at)
        if rows and {"class", "probability"} <= set(rows[0])
    ]
    names = [m.value.strip("*") for m in at.markdown if m.value.startswith("**") and m.value.endswith("**")]
    predicted = [m.value for m in at.metric if m.label == "Prediction"]
    return [{"name": n, "top_class": t, "probabilities": b} for n, t, b in zip(names, predicted, bars)]


def history_row(**changes: object) -> dict:
    """One history row of a finished first-phase epoch, as training reports it; `changes` override fields."""
    return {
        "phase": 1,
        "epoch": 1,
        "freeze_at": 18,
        "learning_rate": 1e-3,
        "path": "cached",
        "loss": 0.7,
        "accuracy": 0.5,
        "val_loss": 0.69,
        "val_accuracy": 0.5,
        "seconds": 0.1,
        "batches": 2,
        "partial": False,
        **changes,
    }


def epoch_row(**changes: object) -> EpochRow:
    """`history_row` as training emits it: an EpochRow."""
    return EpochRow.of(history_row(**changes))


def long_cli_train_args(data: Path, runs_dir: Path) -> list[str]:
    """`python -m tlcore train` arguments for a 50-epoch end-to-end run on 32 px images: longer than any
    test, which ends it itself (Ctrl-C, SIGKILL) once epoch 1's line shows."""
    return [
        "train",
        "--data",
        str(data),
        "--weights",
        "none",
        "--image-size",
        "32",
        "--epochs",
        "50",
        "--batch-size",
        "4",
        "--freeze-at",
        "0",
        "--dense",
        "8",
        "--runs-dir",
        str(runs_dir),
    ]


def tiny_length() -> dict[str, object]:
    """The widget state of TINY_CONFIG's length: exactly the epochs and batch size set, no early stopping."""
    from dashboard.state import K

    return {K.min_steps: 0, K.early_stopping: False}


def open_on_tiny_folder(page: str, folder: Path, timeout: float = 120, **state: object):
    """A new session of the app at pages/<page>.py, on `folder` with tiny settings (32 px, random weights, a dense
    layer of 8, batches of 8, exactly the epochs set: TINY_LENGTH) and then `state`; app.py runs first, as in a
    browser: it initialises the session state every page relies on."""
    from streamlit.testing.v1 import AppTest

    from dashboard.state import SOURCE_FOLDER, WEIGHTS_SCRATCH, K

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=timeout)
    tiny = {K.source: SOURCE_FOLDER, K.folder: str(folder), K.weights_choice: WEIGHTS_SCRATCH, K.image_size: 32}
    for key, value in {**tiny, K.batch_size: 8, K.dense: "8", **tiny_length(), **state}.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(f"pages/{page}.py")
    return at.run()


def train_status(at) -> str:
    """The Train page's status line ("Run: running · epoch 3 of 5 ..."), or "" when it shows none."""
    from dashboard.train.live_view import STATUS_PREFIX

    return next((m.value for m in at.markdown if m.value.startswith(STATUS_PREFIX)), "")


def skipped_table(at):
    """The files a page lists as left out, with their reasons (columns "file" and "reason")."""
    return next(t.value for t in at.table if "reason" in t.value.columns).reset_index()
