"""The command line, run as a user runs it: `python -m tlcore ...` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE_DATA
from tests.helpers import long_cli_train_args, make_dataset_folder
from tlcore.quiet import is_tensorflow_log_line
from tlcore.runs import RunStore


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "TLLAB_WEIGHTS"}
    full_env.update({"TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "tlcore", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_scan_json_on_the_sample_data():
    proc = run_cli("scan", str(SAMPLE_DATA), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["classes"] == ["animals", "vehicles"]
    assert report["counts"] == {"train": {"animals": 45, "vehicles": 45}, "validation": {"animals": 25, "vehicles": 25}}
    assert report["skipped"] == [] and isinstance(report["ignored"], int)


def test_scan_reports_skipped_files(tiny_dataset):
    (tiny_dataset / "train" / "cats" / "broken.jpg").write_text("<html>oops</html>")
    proc = run_cli("scan", str(tiny_dataset), "--json")
    report = json.loads(proc.stdout)
    assert report["counts"]["train"]["cats"] == 12
    assert [Path(s["path"]).name for s in report["skipped"]] == ["broken.jpg"]
    assert "not an image" in report["skipped"][0]["reason"]
    human = run_cli("scan", str(tiny_dataset))
    assert "broken.jpg: not an image" in human.stdout


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_scan_prints_any_file_name_on_a_strict_terminal(tiny_dataset, encoding):
    # PYTHONIOENCODING makes stdout strict: a name that is not UTF-8 (or not
    # ASCII, on an ASCII terminal) must come out escaped, not as a traceback.
    cats = tiny_dataset / "train" / "cats"
    (cats / os.fsdecode(b"caf\xe9.jpg")).write_bytes(b"<html></html>")
    (cats / "猫.jpg").write_bytes(b"<html></html>")
    proc = run_cli("scan", str(tiny_dataset), env={"PYTHONIOENCODING": encoding})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "caf\\udce9.jpg: file or folder name is not valid UTF-8" in proc.stdout
    assert ("猫.jpg" if encoding == "utf-8" else "\\u732b.jpg") + ": not an image" in proc.stdout


def test_scan_errors_are_one_line_and_exit_1(tmp_path):
    assert_one_line_error(run_cli("scan", str(tmp_path / "nope")), 1, "Dataset folder not found")
    (tmp_path / "only" / "cats").mkdir(parents=True)
    from tests.helpers import make_image

    make_image((200, 0, 0)).save(tmp_path / "only" / "cats" / "a.png")
    assert_one_line_error(run_cli("scan", str(tmp_path / "only")), 1, "Only one class", "at least 2")


def test_bad_arguments_exit_2(tiny_dataset):
    assert run_cli("train").returncode == 2
    assert_one_line_error(
        run_cli("train", "--data", str(tiny_dataset), "--freeze-at", "30", "--weights", "none"), 2, "freeze_at=30"
    )
    assert run_cli("train", "--data", str(tiny_dataset), "--epochs", "many").returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_unusable_weights_exit_1(tiny_dataset, tmp_path):
    bad = tmp_path / "weights.h5"
    bad.write_text("not weights")
    proc = run_cli(
        "train",
        "--data",
        str(tiny_dataset),
        "--weights",
        str(bad),
        "--image-size",
        "32",
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    assert_one_line_error(proc, 1, "not a readable HDF5")


def test_what_the_arguments_and_files_refuse_is_refused_before_tensorflow_loads(tiny_dataset, tmp_path):
    # A typo should cost the user well under a second, not TensorFlow's start (seconds): a weights file that
    # is no weights, a runs folder that cannot be made, a bad sweep point, a model file that is no model, a
    # run that is still training.
    from tests.helpers import TINY_CONFIG
    from tlcore.data import scan

    bad = tmp_path / "weights.h5"
    bad.write_text("not weights")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run = RunStore(tmp_path / "made").create(TINY_CONFIG, scan(tiny_dataset))  # "running": this process lives
    (run.run_dir / "model.keras").write_text("not a model")
    image = next((tiny_dataset / "validation" / "cats").iterdir())
    data = ["--data", str(tiny_dataset), "--image-size", "32"]
    refused = [
        ["train", *data, "--weights", str(bad), "--runs-dir", str(tmp_path / "runs")],
        ["train", *data, "--weights", "none", "--runs-dir", str(blocker / "runs")],
        ["sweep", *data, "--weights", str(bad), "--runs-dir", str(tmp_path / "runs")],
        ["sweep", *data, "--weights", "none", "--runs-dir", str(blocker / "runs")],
        ["sweep", *data, "--weights", "none", "--points", "0,30"],
        ["predict", "--run", str(run.run_dir), str(image)],
        ["changes", str(run.run_dir)],
    ]
    code = (
        "import json, sys\n"
        "from tlcore.cli import main\n"
        f"codes = [main(args) for args in {refused!r}]\n"
        "print(json.dumps([codes, 'tensorflow' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [[1, 1, 1, 1, 2, 1, 1], False]
    assert done.stderr.count("not a readable HDF5") == 2 and done.stderr.count("Not a directory") == 2
    assert "not a .keras model file" in done.stderr and f"Run {run.run_id} is still training" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_imagenet_offline_exit_1_with_the_ways_out(tiny_dataset, tmp_path, monkeypatch, capsys):
    # In-process, where the test suite blocks the network: no cached weights,
    # no way to download them, so it must fail fast and say what to do.
    from tlcore.cli import main

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    code = main(
        [
            "train",
            "--data",
            str(tiny_dataset),
            "--weights",
            "imagenet",
            "--image-size",
            "32",
            "--runs-dir",
            str(tmp_path / "runs"),
        ]
    )
    out = capsys.readouterr()
    assert_one_line_error(
        subprocess.CompletedProcess([], code, out.out, out.err),
        1,
        "ImageNet weights could not be downloaded",
        "--weights none",
    )


def test_train_json_then_predict_then_rerun_config(tiny_dataset, tmp_path):
    runs = tmp_path / "runs"
    proc = run_cli(
        "train",
        "--data",
        str(tiny_dataset),
        "--weights",
        "none",
        "--image-size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--dense",
        "8",
        "--runs-dir",
        str(runs),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1  # stdout holds JSON only; progress went to stderr
    summary = json.loads(lines[0])
    assert summary["status"] == "completed" and summary["path"] == "cached"
    assert (summary["route"], summary["routes"]) == (summary["path"], summary["paths"])  # the route's own name
    assert 0.0 <= summary["val_accuracy"] <= 1.0 and summary["seconds"] > 0
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == runs and (run_dir / "model.keras").is_file()
    totals = {int(t) for t in re.findall(r"^epoch \d+/(\d+): loss ", proc.stderr, re.MULTILINE)}
    assert len(totals) == 1 and totals.pop() >= summary["epochs_done"] >= 2  # counts to the plan: never "4/2"
    # stderr is no terminal here: one plain line per epoch, no bar redrawn with carriage returns.
    assert "\r" not in proc.stderr
    assert len(re.findall(r"^epoch \d+/\d+: loss ", proc.stderr, re.MULTILINE)) == summary["epochs_done"]

    images = sorted((tiny_dataset / "validation" / "dogs").glob("*.png"))[:2]
    pred = run_cli("predict", "--run", str(run_dir), *map(str, images), "--json")
    assert pred.returncode == 0, pred.stderr
    results = json.loads(pred.stdout)
    assert [r["image"] for r in results] == list(map(str, images))
    for r in results:
        assert set(r["probabilities"]) == {"cats", "dogs"}
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)

    bad = tmp_path / "bad.jpg"
    bad.write_text("text")
    assert_one_line_error(run_cli("predict", "--run", str(run_dir), str(bad)), 1, "bad.jpg", "not an image")

    tampered = tmp_path / "tampered"
    shutil.copytree(run_dir, tampered)
    (tampered / "model.keras").write_text("not a model")
    assert_one_line_error(
        run_cli("predict", "--run", str(tampered), str(images[0])), 1, str(tampered), "not a .keras model file"
    )

    again = run_cli(
        "train",
        "--data",
        str(tiny_dataset),
        "--config",
        str(run_dir),
        "--epochs",
        "1",
        "--runs-dir",
        str(runs),
        "--json",
    )
    assert again.returncode == 0, again.stderr
    rerun = json.loads((Path(json.loads(again.stdout)["run_dir"]) / "run.json").read_text())["config"]
    original = json.loads((run_dir / "run.json").read_text())["config"]
    assert rerun == {**original, "epochs": 1}


def test_layers_table():
    proc = run_cli("layers", "--image-size", "32", "--freeze-at", "14", "--json")
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)
    names = [row["name"] for row in table["layers"]]
    assert names[2] == "block1_conv1" and names[19] == "block5_pool"
    assert table["frozen_params"] == 7_635_264  # blocks 1-4 of VGG16
    assert table["trainable_params"] == 14_714_688 - 7_635_264 + 2 * 512 + 512 * 256 + 256 + 256 * 2 + 2


def test_no_tensorflow_log_lines_on_stderr():
    # As a user runs it: TF_CPP_MIN_LOG_LEVEL unset (the test suite sets it for itself).
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TLLAB_WEIGHTS")}
    proc = subprocess.run(
        [sys.executable, "-m", "tlcore", "layers", "--image-size", "32"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no oneDNN notice, no CUDA probing, no absl preamble
    assert "block5_pool" in proc.stdout


def test_a_user_who_sets_the_log_level_gets_tensorflows_lines():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tlcore.quiet import quiet_tensorflow; quiet_tensorflow(); "
            "import os, tensorflow; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


def test_tensorflow_log_lines_are_told_apart_from_other_output():
    assert is_tensorflow_log_line("I0000 00:00:1796081998.721753    5582 port.cc:153] oneDNN custom operations are on.")
    assert is_tensorflow_log_line(
        "E0000 00:00:1796082003.005775    5582 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error"
    )
    assert is_tensorflow_log_line(
        "2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] "
        "Could not find cuda drivers on your machine, GPU will not be used."
    )
    assert is_tensorflow_log_line(
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
    )
    assert not is_tensorflow_log_line("error: Dataset folder not found: /x")
    assert not is_tensorflow_log_line("Traceback (most recent call last):")
    assert not is_tensorflow_log_line("epoch 2/5 [####....] 3/6 loss 0.6931")


def test_an_unwritable_runs_folder_is_one_error_line_and_exit_1(tiny_dataset, tmp_path):
    # Tests run as root, whom chmod does not stop: a folder under a regular file can never be made.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_cli(
        "train",
        "--data",
        str(tiny_dataset),
        "--weights",
        "none",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--runs-dir",
        str(blocker / "runs"),
    )
    assert_one_line_error(proc, 1, f"The runs folder {blocker / 'runs'} cannot take a new run", "Not a directory")
    assert blocker.read_text() == "not a folder"


def _interrupt_in_epoch_two(args: list[str], epochs: int) -> tuple[subprocess.Popen, str]:
    """Run the CLI, press Ctrl-C (SIGINT) once epoch 1's line was written (epoch 2 is under way); returns it
    ended and its stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TLLAB_WEIGHTS")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tlcore", *args],
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(64), "")), daemon=True)
    reader.start()
    in_epoch_two = re.compile(rf"^epoch 1/{epochs}: loss .*\n", re.MULTILINE)  # no terminal: a line per epoch
    try:
        deadline = time.monotonic() + 180
        while not in_epoch_two.search("".join(seen)):
            assert proc.poll() is None, "".join(seen)[-2000:]
            assert time.monotonic() < deadline, "epoch 1 did not end within 180 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    finally:
        proc.kill()
        proc.wait(30)
    reader.join(10)
    return proc, "".join(seen)


def test_ctrl_c_during_train_exits_130_keeping_the_model(tmp_path):
    data = make_dataset_folder(tmp_path / "data", n_train=24, n_val=4, size=32)
    runs_dir = tmp_path / "runs"
    proc, stderr = _interrupt_in_epoch_two([*long_cli_train_args(data, runs_dir), "--json"], 50)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert not [line for line in stderr.splitlines() if is_tensorflow_log_line(line)]
    summary = json.loads(proc.stdout.read())
    assert summary["status"] == "stopped" and summary["model_saved"]
    (run,) = RunStore(runs_dir).list()
    assert run.status == "stopped"
    assert 1 <= run.epochs_done < 50
    assert (run.run_dir / "model.keras").is_file()


def test_ctrl_c_during_a_sweep_exits_130_keeping_the_point(tmp_path):
    data = make_dataset_folder(tmp_path / "data", n_train=24, n_val=4, size=32)
    runs_dir = tmp_path / "runs"
    proc, stderr = _interrupt_in_epoch_two(
        [
            "sweep",
            "--data",
            str(data),
            "--weights",
            "none",
            "--image-size",
            "32",
            "--epochs",
            "50",
            "--points",
            "0,18",
            "--runs-dir",
            str(runs_dir),
        ],
        50,
    )
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert ": stopped" in proc.stdout.read()
    (run,) = RunStore(runs_dir).list()  # the second point never started
    assert run.status == "stopped" and (run.run_dir / "model.keras").is_file()


def test_every_option_has_help_and_the_exit_codes_are_in_the_epilog(capsys):
    import argparse

    from tlcore.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == {
        "scan",
        "layers",
        "train",
        "code",
        "sweep",
        "probe",
        "featuremaps",
        "changes",
        "cache",
        "lr-find",
        "predict",
        "export",
        "transfer-curve",
    }
    missing = [f"{name} {action.dest}" for name, sub in commands.items() for action in sub._actions if not action.help]
    assert missing == []
    text = commands["train"].format_help()
    assert "(default 18)" in text and "(default 5)" in text and "130  interrupted" in text
    # code takes train's own options (one definition): the same option names, bar train's --runs-dir and --json
    options = {name: {a.dest for a in commands[name]._actions} for name in ("train", "code")}
    assert options["train"] - options["code"] == {"runs_dir", "json"} and options["code"] <= options["train"]
    assert "(default: 100000000)" in commands["scan"].format_help()


def test_version_and_the_tllab_command():
    from importlib.metadata import entry_points

    import tlcore

    done = subprocess.run([sys.executable, "-m", "tlcore", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"python -m tlcore {tlcore.__version__}"
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "tllab"]
    assert script.value == "tlcore.cli:main"  # the same entry point as python -m tlcore
