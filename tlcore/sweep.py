"""Freeze sweep: the same head trained at a series of freeze points, plus a from-scratch baseline.

A sweep answers "how much of the pretrained network should stay frozen?" by
trying several freeze points k on the same data with the same head, and
putting next to them the same model trained from random weights with every
layer learning (no transfer at all).

Work is shared where it can be: the images are decoded once per sweep and
every point trains on the same decoded arrays; within a point, train()
computes the frozen prefix's features once (the cached path) and each epoch
trains only the layers above k. Each point is an ordinary run in the run
store, tagged {"sweep": id, "point": label}, so the runs table lists,
compares and reloads it like any other run.

Stop: the point running when the flag is seen ends as a stopped run (what it
learned so far is kept), the points already finished stay as they are, and
the points not started are skipped.

TensorFlow is imported only when a sweep runs: a UI can plan a sweep and
read its results without it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Sequence

from tlcore.backbones import NO_WEIGHTS, get_backbone, load_backbone, normalize_weights
from tlcore.backbone_facts import VGG16_BLOCK_BOUNDARIES, VGG16_LAYERS
from tlcore.config import TrainConfig
from tlcore.records import History
from tlcore.runs import COMPLETED, STOPPED, Run, RunStore

if TYPE_CHECKING:
    from tlcore.data import DatasetInfo
    from tlcore.training import PreparedData, ProgressFn, StopFlag

DEFAULT_POINTS: tuple[int, ...] = VGG16_BLOCK_BOUNDARIES[::-1]  # VGG16's block boundaries, head only first
DEFAULT_IMAGE_SIZE, DEFAULT_EPOCHS = 96, 5
SCRATCH = "scratch"


def point_label(freeze_at: int) -> str:
    """How a pretrained point is named in tags, tables and progress: "k=14"."""
    return f"k={freeze_at}"


def new_sweep_id() -> str:
    """A sortable, unique id: "20240501-140312-3f9a"."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def sweep_config(
    weights: str = "imagenet", image_size: int = DEFAULT_IMAGE_SIZE, epochs: int = DEFAULT_EPOCHS, **changes: Any
) -> TrainConfig:
    """The default base of a sweep: 96 px, 5 epochs, the default head, no fine-tuning."""
    return TrainConfig(weights=weights, image_size=image_size, epochs=epochs, fine_tune=None, **changes)


# --- events and results ------------------------------------------------------------


@dataclass(frozen=True)
class SweepPointStart:
    """A point begins; the training events that follow belong to it."""

    index: int  # 1-based
    total: int
    label: str
    freeze_at: int
    weights: str


@dataclass
class SweepPoint:
    """One finished (or stopped) point of a sweep.

    `epoch_seconds` is the mean over the point's complete epochs (a stopped
    partial epoch is left out unless it is the only one); feature extraction
    is not in it but in `extract_seconds`. `seconds` is the point's whole wall
    time: building the model, extraction, training, saving.
    """

    label: str
    freeze_at: int
    weights: str
    trainable_params: int
    frozen_params: int
    epoch_seconds: float | None
    extract_seconds: float
    best_val_accuracy: float | None
    final_val_accuracy: float | None
    best_val_loss: float | None
    final_val_loss: float | None
    path: str  # cached | end_to_end ("" when it stopped before training)
    run_dir: str
    status: str  # completed | stopped | failed
    epochs_done: int = 0
    seconds: float = 0.0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepResult:
    sweep_id: str
    status: str  # completed | stopped
    points: list[SweepPoint] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # labels of the points never started
    seconds: float = 0.0
    decode_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The sweep in one JSON-ready object (the CLI's last line)."""
        return {
            "sweep": self.sweep_id,
            "points": len(self.points),
            "seconds": round(self.seconds, 3),
            "status": self.status,
            "decode_seconds": round(self.decode_seconds, 3),
            "skipped": list(self.skipped),
        }


# --- planning and running ----------------------------------------------------------


def plan(base_config: TrainConfig, points: Sequence[int], scratch: bool = True) -> list[tuple[str, TrainConfig]]:
    """(label, config) of every point in order; the scratch baseline last.

    Raises:
        ValueError: a point outside 0..18, a repeated point, or nothing to run.
    """
    points = [int(k) for k in points]
    bad = [k for k in points if not 0 <= k <= VGG16_LAYERS]
    if bad:
        raise ValueError(f"Sweep points must be between 0 and {VGG16_LAYERS}. Received: points={points}")
    if len(set(points)) != len(points):
        raise ValueError(f"Sweep points must not repeat. Received: points={points}")
    if not points and not scratch:
        raise ValueError("A sweep needs at least one freeze point or the scratch baseline. Received: points=[]")
    base = base_config.replace(fine_tune=None)
    planned = [(point_label(k), base.replace(freeze_at=k, learning_rate=point_learning_rate(base, k))) for k in points]
    if scratch:
        planned.append((SCRATCH, base.replace(weights=NO_WEIGHTS, freeze_at=0, learning_rate=point_learning_rate(base, 0))))
    return planned


def point_learning_rate(base_config: TrainConfig, freeze_at: int) -> float:
    """The base rate for the head alone; at most 1e-4 once conv layers train.

    Measured on the sample data (96 px, Adam, 5 epochs): at 1e-3 every point
    with conv layers training fell to chance, pretrained or not; at 1e-4 the
    pretrained points reached 0.76-0.82, while the head alone needs 1e-3
    (0.98, against 0.64 at 1e-4). Each run records the rate it used.
    """
    from tlcore.advisor import FINE_TUNE_MAX_LEARNING_RATE

    if freeze_at >= VGG16_LAYERS:
        return base_config.learning_rate
    return min(base_config.learning_rate, FINE_TUNE_MAX_LEARNING_RATE)


def check_weights(config: TrainConfig) -> None:
    """Fail before decoding anything when the weights cannot be had (offline, bad file).

    The convolution weights do not depend on the image size, so a 32 px base is enough.
    """
    if normalize_weights(config.weights) != NO_WEIGHTS:
        load_backbone(get_backbone(config.backbone), 32, config.weights)


def run_sweep(
    base_config: TrainConfig,
    info: DatasetInfo,
    points: Sequence[int] = DEFAULT_POINTS,
    scratch: bool = True,
    store: RunStore | None = None,
    progress: ProgressFn | None = None,
    stop: StopFlag | None = None,
    data: PreparedData | None = None,
    sweep_id: str | None = None,
    on_point: Callable[[SweepPoint], None] | None = None,
    on_run_created: Callable[[Run], None] | None = None,
) -> SweepResult:
    """Train base_config at each freeze point (and from scratch), one tagged run per point.

    Args:
        base_config: everything but the freeze point (its fine_tune is ignored).
        points: freeze points k, run in this order.
        scratch: add the baseline: random weights, k = 0 (every layer learns).
        data: images already decoded at base_config.image_size; decoded here otherwise.
        progress: gets SweepPointStart before each point, then that point's
            training events (tlcore.training), and the decode progress once.
        on_point: called with each point as it finishes (stopped ones included).

    Raises:
        ValueError: bad points, or `data` decoded at another image size.
        WeightsError: the weights cannot be loaded (before anything is decoded).
    """
    from tlcore.training import prepare_data

    started = time.perf_counter()
    planned = plan(base_config, points, scratch)
    store = store or RunStore()
    report = progress or (lambda _event: None)
    result = SweepResult(sweep_id=sweep_id or new_sweep_id(), status=COMPLETED)

    if any(normalize_weights(config.weights) != NO_WEIGHTS for _, config in planned):
        check_weights(base_config)
    if data is None:
        t0 = time.perf_counter()
        data = prepare_data(info, base_config.image_size, report)
        result.decode_seconds = time.perf_counter() - t0
    elif data.train.image_size != base_config.image_size:
        raise ValueError(
            f"The decoded images are {data.train.image_size} px but the sweep trains at "
            f"{base_config.image_size} px. Received: image_size={base_config.image_size}"
        )

    for index, (label, config) in enumerate(planned, start=1):
        if stop is not None and stop.is_set():
            result.skipped = [name for name, _ in planned[index - 1 :]]
            result.status = STOPPED
            break
        report(SweepPointStart(index, len(planned), label, config.freeze_at, config.weights))
        point = _run_point(label, config, info, store, data, result.sweep_id, report, stop, on_run_created)
        result.points.append(point)
        if on_point:
            on_point(point)
        if point.status == STOPPED:
            result.skipped = [name for name, _ in planned[index:]]
            result.status = STOPPED
            break

    result.seconds = time.perf_counter() - started
    return result


def _run_point(
    label: str,
    config: TrainConfig,
    info: DatasetInfo,
    store: RunStore,
    data: PreparedData,
    sweep_id: str,
    report: ProgressFn,
    stop: StopFlag | None,
    on_run_created: Callable[[Run], None] | None,
) -> SweepPoint:
    from tlcore.training import PhaseStart, train_and_record

    started = time.perf_counter()
    phase_start: list[PhaseStart] = []

    def on_event(event: object) -> None:
        if isinstance(event, PhaseStart) and event.phase == 1:
            phase_start.append(event)
        report(event)

    result, run = train_and_record(
        config, info, store, progress=on_event, stop=stop,
        tags={"sweep": sweep_id, "point": label}, data=data, on_run_created=on_run_created,
    )
    history = History.of(result.history)
    first = phase_start[0] if phase_start else None
    return SweepPoint(
        label=label,
        freeze_at=config.freeze_at,
        weights=config.weights,
        trainable_params=first.trainable_params if first else 0,
        frozen_params=first.frozen_params if first else 0,
        epoch_seconds=history.mean_epoch_seconds,
        extract_seconds=result.extract_seconds,
        best_val_accuracy=history.best_val_accuracy,
        final_val_accuracy=history.final_val_accuracy,
        best_val_loss=history.best_val_loss,
        final_val_loss=history.final_val_loss,
        path=result.paths[0] if result.paths else "",
        run_dir=str(run.run_dir),
        status=result.status,
        epochs_done=len(history),
        seconds=time.perf_counter() - started,
        reason=result.reason or result.save_error,
    )
