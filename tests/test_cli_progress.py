"""The commands' progress (tlcore.cli.progress): plain lines when stderr is no terminal, a rich display when it is."""

from __future__ import annotations

import io
import json
import math

from tests.helpers import epoch_row
from tlcore.cli.progress import CommandProgress, point_json
from tlcore.jobs import SweepPointDone
from tlcore.lr_finder import FinderStart, FinderStep
from tlcore.progress import BatchEnd, EpochEnd, PhaseStart, StepProgress
from tlcore.sweep import SweepPoint, SweepPointStart

PHASE = PhaseStart(1, 18, 2, 1e-3, "cached", "why", 5_146, 14_714_688)


def _epoch(epoch: int, partial: bool = False) -> EpochEnd:
    metrics = {"loss": 0.5, "accuracy": 0.75, "val_loss": 0.25, "val_accuracy": 1.0, "seconds": 0.5}
    return EpochEnd(epoch_row(epoch=epoch, **metrics, partial=partial))


def _point(label: str = "k=18", loss: float = 0.5) -> SweepPoint:
    return SweepPoint(
        label, 18, "none", 132_866, 14_714_688, 0.25, 0.5, 1.0, 1.0, loss, loss, "cached", "/r", "completed"
    )


def test_without_a_terminal_each_epoch_is_one_plain_line_and_batches_write_nothing(capsys):
    with CommandProgress(2) as progress:
        for done in (16, 40):
            progress(StepProgress("decode", done, 40))
        progress(PHASE)
        progress(StepProgress("extract", 24, 40))  # a stage that never says it is done: its line comes next
        for epoch in (1, 2):
            for batch in (1, 2, 3):
                progress(BatchEnd(1, epoch, batch, 3, 0.5))
            progress(_epoch(epoch, partial=epoch == 2))
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "decode   [########################] 40/40",
        "phase 1: freeze_at=18, 2 epoch(s), lr=0.001, path=cached (why); trainable 5,146 / frozen 14,714,688 params",
        "extract  [##############..........] 24/40",
        "epoch 1/2: loss 0.5000 acc 0.750 val_loss 0.2500 val_acc 1.000 (0.5s)",
        "epoch 2/2: loss 0.5000 acc 0.750 val_loss 0.2500 val_acc 1.000 (0.5s) [partial]",
    ]
    assert "\r" not in err and err.endswith("\n")


def test_a_sweep_writes_a_line_per_point_and_under_json_its_json_line_on_stdout(capsys):
    with CommandProgress(1, json_lines=True) as progress:
        progress(SweepPointStart(1, 2, "k=18", 18, "none"))
        progress(_epoch(1))
        progress(SweepPointDone(_point()))
        progress(SweepPointStart(2, 2, "scratch", 0, "none"))
        progress(SweepPointDone(_point("scratch", loss=math.nan)))
    out = capsys.readouterr()
    assert out.err.splitlines() == [
        "[1/2] k=18 (freeze_at=18)",
        "epoch 1/1: loss 0.5000 acc 0.750 val_loss 0.2500 val_acc 1.000 (0.5s)",
        "k=18: completed, cached, trainable 132,866, 0.25 s/epoch, extract 0.5 s, best val acc 1.000",
        "[2/2] scratch (random weights, every layer learns)",
        "scratch: completed, cached, trainable 132,866, 0.25 s/epoch, extract 0.5 s, best val acc 1.000",
    ]
    first, second = (json.loads(line) for line in out.out.splitlines())
    assert first["label"] == "k=18" and second["final_val_loss"] is None  # NaN is not JSON


def test_an_lr_range_test_writes_its_start_and_a_line_per_group_of_steps(capsys):
    with CommandProgress(0) as progress:
        progress(FinderStart(1, 18, "cached", "why", 5_146, 14_714_688))
        for step in (1, 2):
            progress(FinderStep(step, 0, 1e-7, 0.7, None))
        for step in range(1, 8):  # the sweep diverges at step 7 of 10: its line comes when the display ends
            progress(FinderStep(step, 10, 10.0 ** (step - 8), 0.6, 0.6))
    assert capsys.readouterr().err.splitlines() == [
        "sweep: phase 1, freeze_at=18, path=cached (why); trainable 5,146 / frozen 14,714,688",
        "warm-up  [########################] 2/2 lr 1e-7 loss 0.7000",
        "sweep    [################........] 7/10 lr 1e-1 loss 0.6000",
    ]


def test_on_a_terminal_one_rich_display_with_the_lines_above_it(capsys):
    from rich.console import Console

    screen = io.StringIO()
    with CommandProgress(2, console=Console(file=screen, force_terminal=True, width=100)) as progress:
        progress(StepProgress("decode", 40, 40))
        progress(PHASE)
        progress(BatchEnd(1, 1, 2, 3, 0.5))
        progress(_epoch(1))
    shown = screen.getvalue()
    assert "phase 1: freeze_at=18" in shown and "epoch 1/2: loss 0.5000" in shown
    assert "decode" in shown and "2/3" in shown  # the bars, drawn by rich
    assert capsys.readouterr().err == ""  # the display's console took it all


def test_a_sweep_points_json_line_has_its_route_under_path_and_route():
    values = json.loads(point_json(_point()))
    assert values["path"] == values["route"] == "cached"
