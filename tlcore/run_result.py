"""A training run's result, one type from `train` to the job's caller: `RunResult` (no TensorFlow needed to read it).

`tlcore.tf.training.train` fills it with the live model; a job hands it back without the model (`without_model`),
so a thread, a cluster's worker or a pickle carry the same type. run.json keeps its fields (tlcore.records.RunRecord).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tlcore.history import History
from tlcore.records import COMPLETED
from tlcore.schedule import Schedule

if TYPE_CHECKING:  # the model is TensorFlow's; this module imports none of it
    import keras

FeatureLine = dict[str, str | int | bool]  # a cached phase's line: phase, freeze_at, reused, created (run.json)


@dataclass
class RunResult:
    """What a run ended with: its status, history and timings, and the model while a caller holds it."""

    class_names: list[str]
    status: str = COMPLETED  # completed | stopped | failed
    reason: str = ""
    history: History = field(default_factory=History)  # every epoch; its kept_epoch: early stopping's choice
    routes: list[str] = field(default_factory=list)  # per phase: cached | end_to_end
    features: list[FeatureLine] = field(default_factory=list)  # per cached phase: reused from the store?
    extract_seconds: float = 0.0
    train_seconds: float = 0.0
    seconds: float = 0.0
    schedule: Schedule | None = None  # how long it trained on this data (batch size, epochs, early stopping)
    run_dir: str = ""  # its folder in the run store; "" for a run `train` made without recording it
    save_error: str = ""  # set when the run store could not save the model (or another part of the run)
    model: keras.Model | None = None  # the trained model; None once handed back by a job (see model_bytes)
    model_bytes: bytes | None = None  # the model, from a job, only when the run store could not save it

    @property
    def kept_epoch(self) -> int | None:
        """The epoch whose weights the model holds when early stopping restored an earlier one; None: the last."""
        return self.history.kept_epoch

    @property
    def final(self) -> dict[str, float]:
        """The kept epoch's metrics, plus the best validation accuracy (see History.final_metrics)."""
        return self.history.final_metrics()

    def without_model(self, model_bytes: bytes | None = None) -> RunResult:
        """This result as a job hands it back: no live model (it holds a TensorFlow graph), perhaps its bytes."""
        return dataclasses.replace(self, model=None, model_bytes=model_bytes)
