"""From clicks to code (tlcore.codegen, `python -m tlcore code`): a standalone Keras script for the lab's settings.

The scripts are parsed for what they import and the constants they embed; two
are run for real on tiny data in a subprocess, from a folder of their own, and
the model each saves is compared with the lab's own `build_for` layer by layer.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import TINY_CONFIG, make_dataset_folder
from tlcore.backbone_facts import VGG16_LAYERS
from tlcore.cli import main
from tlcore.codegen import training_script
from tlcore.config import AugmentConfig, FineTuneConfig, HeadConfig, TrainConfig
from tlcore.data import scan
from tlcore.run_folder import MODEL_FILE
from tlcore.runs import RunStore
from tlcore.script_folder import DataFolder
from tlcore.uploads import EXTRACTION_PREFIX

WEIGHTS_FILE = "/somewhere/vgg16_imagenet_notop.weights.h5"
ALLOWED_IMPORTS = {"keras", "tensorflow", "numpy"} | set(sys.stdlib_module_names)
SPLITS = DataFolder("/data/pets", ("cats", "dogs"), train_folder="train", validation_folder="validation")
FOLDERS = DataFolder("/data/pets", ("cats", "dogs"))
# Every branch of the template at least once: each option on, each pooling, output, optimizer and weights.
VARIANTS = {
    "default": TrainConfig(weights=WEIGHTS_FILE),
    "everything on": TrainConfig(
        weights="imagenet",
        freeze_at=16,
        fine_tune=FineTuneConfig(12, 2, 1e-5),
        augment=AugmentConfig(enabled=True),
        balance_classes=True,
        early_stopping_patience=2,
        reduce_lr_on_plateau=True,
        head=HeadConfig(pooling="max", dense=(64, 32), output="sigmoid"),
        optimizer="sgd",
    ),
    "flatten, no hidden layer": TrainConfig(
        weights="none", freeze_at=0, optimizer="rmsprop", head=HeadConfig(pooling="flatten", dense=(), dropout=0.3)
    ),
    "a few augmentations, plateau alone": TrainConfig(
        augment=AugmentConfig(enabled=True, flip=False, rotation=0.0, zoom=0.2, translation=0.0, contrast=0.0),
        reduce_lr_on_plateau=True,
        head=HeadConfig(dropout=0.0),
    ),
}


def _imports(tree: ast.Module) -> set[str]:
    """The top-level package of every import in the script."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    return names


def _constants(script: str) -> dict[str, object]:
    """The script's top-level NAME = literal assignments; DATA_DIR = Path("...") as its string."""
    values: dict[str, object] = {}
    for node in ast.parse(script).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "Path":
                value = value.args[0]
            with contextlib.suppress(ValueError):  # not a literal (train_ds = ..., model = ...)
                values[node.targets[0].id] = ast.literal_eval(value)
    return values


@pytest.mark.parametrize("layout", [SPLITS, FOLDERS], ids=["split folders", "class folders"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_compiles_and_imports_only_keras_tensorflow_numpy_and_the_standard_library(variant, layout):
    script = training_script(VARIANTS[variant], layout)
    compile(script, "train.py", "exec")
    tree = ast.parse(script)
    assert _imports(tree) <= ALLOWED_IMPORTS
    assert "keras" in _imports(tree)
    assert "tlcore" not in script.replace("Transfer Learning Lab", "")


@pytest.mark.parametrize(
    ("weights", "written"), [(WEIGHTS_FILE, WEIGHTS_FILE), ("imagenet", "imagenet"), ("none", None)]
)
def test_the_data_folder_weights_and_settings_are_written_at_the_top(weights, written):
    config = TrainConfig(weights=weights, image_size=96, batch_size=16, epochs=7, learning_rate=3e-4, freeze_at=14)
    values = _constants(training_script(config, SPLITS))
    assert values["DATA_DIR"] == "/data/pets"
    assert values["WEIGHTS"] == written
    assert values["CLASS_NAMES"] == ["cats", "dogs"]
    assert (values["IMAGE_SIZE"], values["BATCH_SIZE"], values["EPOCHS"]) == (96, 16, 7)
    assert (values["LEARNING_RATE"], values["FREEZE_AT"], values["SEED"]) == (3e-4, 14, config.seed)
    assert values["MODEL_FILE"] == MODEL_FILE
    assert "FINE_TUNE_AT" not in values and "VALIDATION_SPLIT" not in values


def test_a_second_phase_and_a_drawn_split_add_their_settings():
    config = VARIANTS["everything on"].replace(validation_split=0.25)
    values = _constants(training_script(config, FOLDERS))
    assert (values["FINE_TUNE_AT"], values["FINE_TUNE_EPOCHS"], values["FINE_TUNE_LEARNING_RATE"]) == (12, 2, 1e-5)
    assert (values["VALIDATION_SPLIT"], values["PATIENCE"]) == (0.25, 2)


def test_the_split_folders_are_the_ones_the_lab_found(tmp_path):
    root = make_dataset_folder(tmp_path / "data", n_train=2, n_val=1, split_names=("training-data", "testing-data"))
    script = training_script(TINY_CONFIG, DataFolder.from_info(scan(root)))
    assert 'DATA_DIR / "training-data"' in script and 'DATA_DIR / "testing-data"' in script
    assert "validation_split" not in script.split('"""')[2]  # the code reads both folders, draws nothing
    assert "The same split as the lab: training-data/ trains, testing-data/ validates" in _flat(_header(script))


def test_class_folders_get_a_seeded_split_and_the_header_says_it_differs_from_the_labs(tmp_path):
    root = make_dataset_folder(tmp_path / "data", n_train=2, n_val=1, split_names=None)
    script = training_script(TINY_CONFIG, DataFolder.from_info(scan(root)))
    code = script.split('"""')[2]
    assert 'subset="both"' in code and "validation_split=VALIDATION_SPLIT" in code and "seed=SEED" in code
    header = _flat(_header(script))
    assert "A different validation split" in header
    assert "holds out 20% of each class of the class folders (seed 1337)" in header


def test_the_header_says_what_the_script_does_not_do(tmp_path):
    header = _flat(_header(training_script(TrainConfig(), SPLITS)))
    assert "does not skip unreadable images" in header
    assert "No feature caching" in header and "by far at freeze point 18" in header
    assert ".webp" in header  # files the lab reads and Keras does not
    assert "not the lab's numbers" in header
    # With augmentation the lab recomputes the frozen layers too: no caching to miss.
    augmented = _flat(_header(training_script(TrainConfig(augment=AugmentConfig(enabled=True)), SPLITS)))
    assert "No feature caching" not in augmented


def test_an_uploaded_zip_a_missing_folder_and_skipped_files_are_said(tmp_path):
    upload = DataFolder(f"/tmp/{EXTRACTION_PREFIX}abcd1234/pets", ("cats", "dogs"))
    script = training_script(TINY_CONFIG, upload)
    assert "a temporary copy that goes when your session ends" in _flat(_header(script))
    # DATA_DIR survives the session: the folder the .zip makes beside the script, never the lab's temporary copy.
    assert '\nDATA_DIR = Path(__file__).resolve().parent / "pets"\n' in script and EXTRACTION_PREFIX not in script
    assert "# Unzip your .zip beside this script: DATA_DIR is the pets/ folder it makes." in script
    loose = training_script(TINY_CONFIG, DataFolder(f"/tmp/{EXTRACTION_PREFIX}abcd1234", ("cats", "dogs")))
    assert 'parent / "dataset"' in loose and EXTRACTION_PREFIX not in loose
    gone = DataFolder("/nowhere/pets", ("cats", "dogs"), found=False)
    assert "DATA_DIR was not found when this script was written" in _flat(_header(training_script(TINY_CONFIG, gone)))
    # A file name that would end a docstring or start an escape stays inside the header.
    odd = DataFolder("/data/pets", ("cats", "dogs"), skipped=2, skipped_example='a"""b\\N.jpg: not an image')
    script = training_script(TINY_CONFIG, odd)
    compile(script, "train.py", "exec")
    docstring = ast.get_docstring(ast.parse(script))
    assert docstring is not None
    assert "The lab left out 2 file(s) in this folder" in _flat(docstring)
    assert 'a"""b\\N.jpg' in docstring


def test_a_run_that_trained_on_a_folder_now_gone(tmp_path):
    root = make_dataset_folder(tmp_path / "data", n_train=2, n_val=1, split_names=("train", "val"))
    run = RunStore(tmp_path / "runs").create(TINY_CONFIG, scan(root))
    assert DataFolder.from_run(run.record) == DataFolder(
        str(root),
        ("cats", "dogs"),
        train_folder="train",
        validation_folder="val",
        train_images=4,  # the counts the run recorded: what the script's training length follows
        validation_per_class=(1, 1),
    )
    for path in sorted(root.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    root.rmdir()
    gone = DataFolder.from_run(run.record)
    assert (gone.found, gone.train_folder, gone.validation_folder) == (False, "", "")


def test_the_script_trains_as_long_as_the_lab_would_on_the_folders_counts():
    small = DataFolder("/d", ("cats", "dogs"), train_images=32, validation_per_class=(4, 4))
    script = training_script(TrainConfig(weights="none"), small)
    # 32 images in batches of 8 make 4 steps an epoch; the head takes at least 100 steps: 25 epochs. With 4
    # validation images a class early stopping is off, and the script says why.
    assert "\nBATCH_SIZE = 8  #" in script and "\nEPOCHS = 25\n" in script and "PATIENCE" not in script
    comment = " ".join(line[2:] for line in script.splitlines() if line.startswith("# "))
    assert "for 32 training images: batches of 8 instead of 32" in comment
    assert "25 epochs instead of 5 for the head, so it takes at least 100 steps" in comment
    assert "early stopping is off: a class has 4 validation image(s)" in comment
    # Enough data: the settings as they are, early stopping on.
    large = DataFolder("/d", ("cats", "dogs"), train_images=4000, validation_per_class=(500, 500))
    script = training_script(TrainConfig(weights="none"), large)
    assert "\nBATCH_SIZE = 32  #" in script and "\nEPOCHS = 5\n" in script and "\nPATIENCE = 5  #" in script
    # An exact length (min_steps=0) or unknown counts: the settings as set.
    exact = training_script(TrainConfig(weights="none", min_steps=0), small)
    assert "\nBATCH_SIZE = 32  #" in exact and "\nEPOCHS = 5\n" in exact
    assert "\nEPOCHS = 5\n" in training_script(TrainConfig(weights="none"), DataFolder("/d", ("a", "b")))


def test_settings_that_cannot_train_on_the_folder_are_refused():
    with pytest.raises(ValueError, match="sigmoid output needs exactly 2 classes"):
        training_script(TrainConfig(head=HeadConfig(output="sigmoid")), DataFolder("/d", ("a", "b", "c")))
    with pytest.raises(ValueError, match="at least 2 classes"):
        training_script(TrainConfig(), DataFolder("/d", ("a",)))


def _run_parts(script: str, names: set[str]) -> dict[str, object]:
    """Run only the script's imports and the top-level assignments and functions named: their namespace."""
    keep: list[ast.stmt] = [
        node
        for node in ast.parse(script).body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        or (isinstance(node, ast.Assign) and {getattr(t, "id", "") for t in node.targets} & names)
        or (isinstance(node, ast.FunctionDef) and node.name in names)
    ]
    namespace: dict[str, object] = {}
    exec(compile(ast.Module(keep, type_ignores=[]), "train.py", "exec"), namespace)
    return namespace


def test_the_scripts_augmentation_and_callbacks_are_the_labs():
    # Written out in the template, built by tlcore.tf.training in the lab: the same layers, seeds and settings.
    from tlcore.tf.augment import build_augmenter
    from tlcore.tf.callbacks import option_callbacks

    config = VARIANTS["everything on"].replace(
        augment=AugmentConfig(enabled=True, rotation=0.2, translation=0.15), seed=5
    )
    parts = _run_parts(training_script(config, SPLITS), {"SEED", "PATIENCE", "augment", "callbacks"})

    def layers(model) -> list[tuple[str, dict]]:
        return [(type(x).__name__, {k: v for k, v in x.get_config().items() if k != "name"}) for x in model.layers]

    assert layers(parts["augment"]) == layers(build_augmenter(config.augment, config.seed))
    assert len(layers(parts["augment"])) == 5  # flip, rotation, zoom, translation, contrast
    settings = ("monitor", "patience", "min_delta", "restore_best_weights", "factor", "min_lr")

    def described(callbacks) -> list[tuple[str, dict]]:
        return [(type(c).__name__, {k: v for k, v in vars(c).items() if k in settings}) for c in callbacks]

    lab, _ = option_callbacks(config, 3e-4, config.early_stopping_patience)
    callbacks = parts["callbacks"]
    assert callable(callbacks)
    assert described(callbacks(3e-4)) == described(lab)
    assert [type(c).__name__ for c in lab] == ["EarlyStopping", "ReduceLROnPlateau"]


def _header(script: str) -> str:
    return ast.get_docstring(ast.parse(script)) or ""


def _flat(text: str | None) -> str:
    """Wrapped text as one line, to find a phrase whatever the line breaks."""
    return " ".join((text or "").split())


# --- the CLI ----------------------------------------------------------------------------


def test_the_code_command_prints_the_script_with_the_train_commands_options(capsys, shared_tiny_dataset):
    code = main(["code", "--data", str(shared_tiny_dataset), "--weights", "none", "--freeze-at", "10", "--dense", "8"])
    out = capsys.readouterr().out
    assert code == 0
    values = _constants(out)
    assert (values["FREEZE_AT"], values["WEIGHTS"], values["DATA_DIR"]) == (10, None, str(shared_tiny_dataset))
    assert 'keras.layers.Dense(8, activation="relu", name="head_dense_1")' in out
    assert "the settings given to `python -m tlcore code`" in out


def test_code_with_a_run_uses_that_runs_config_and_folder(capsys, shared_tiny_dataset, tmp_path):
    config = TINY_CONFIG.replace(freeze_at=6, fine_tune=FineTuneConfig(3, 1, 1e-4), seed=7)
    run = RunStore(tmp_path / "runs").create(config, scan(shared_tiny_dataset))
    assert main(["code", "--config", str(run.run_dir)]) == 0
    out = capsys.readouterr().out
    values = _constants(out)
    assert (values["FREEZE_AT"], values["FINE_TUNE_AT"], values["SEED"]) == (6, 3, 7)
    assert values["DATA_DIR"] == str(shared_tiny_dataset)
    assert f"run {run.run_id}" in out
    # An option given beside --config overrides the run's value, as for train.
    assert main(["code", "--config", str(run.run_dir / "run.json"), "--epochs", "4"]) == 0
    assert _constants(capsys.readouterr().out)["EPOCHS"] == 4


def test_code_without_a_folder_or_with_bad_settings_is_a_usage_error(capsys, shared_tiny_dataset):
    assert main(["code"]) == 2
    assert "code needs --data DIR" in capsys.readouterr().err
    assert main(["code", "--data", str(shared_tiny_dataset), "--freeze-at", "19"]) == 2
    assert "freeze_at must be between 0 and 18" in capsys.readouterr().err


# --- running a script for real ------------------------------------------------------------


def _run_script(script: str, cwd: Path) -> str:
    """Run a generated script as a learner would (`python train.py` in a folder of its own); its output."""
    (cwd / "train.py").write_text(script)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}  # nothing of the lab importable
    done = subprocess.run([sys.executable, "train.py"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _saved_layers(path: Path) -> tuple[list[tuple[str, str, tuple]], list[bool], int]:
    """A saved model's layers as (name, class written in its config, output shape), each one's trainable
    flag, and its trainable parameter count. The script's own preprocessing class is read as the lab's."""
    import keras

    from tlcore.tf.layers import CaffePreprocess
    from tlcore.tf.model import param_counts

    classes = [
        layer["class_name"] for layer in json.loads(zipfile.ZipFile(path).read("config.json"))["config"]["layers"]
    ]
    model = keras.models.load_model(path, custom_objects={"train_py>CaffePreprocess": CaffePreprocess}, compile=False)
    layers = [(layer.name, kind, tuple(layer.output.shape)) for layer, kind in zip(model.layers, classes)]
    return layers, [layer.trainable for layer in model.layers], param_counts(model)[0]


def _lab_layers(config: TrainConfig, freeze_at: int) -> tuple[list[tuple[str, str, tuple]], list[bool], int]:
    from tlcore.tf.model import param_counts, set_freeze_point
    from tlcore.tf.training import build_for

    model = build_for(config, 2)
    set_freeze_point(model, freeze_at)
    layers = [(layer.name, type(layer).__name__, tuple(layer.output.shape)) for layer in model.layers]
    return layers, [layer.trainable for layer in model.layers], param_counts(model)[0]


def _trainable_counts_printed(out: str) -> list[int]:
    """The trainable counts the script prints: model.summary's (phase 1), then phase 2's line."""
    found = re.findall(r"Trainable params: ([\d,]+)|Phase 2: ([\d,]+) trainable parameters", out)
    return [int((summary or phase2).replace(",", "")) for summary, phase2 in found]


def test_a_generated_script_trains_and_saves_the_labs_model(tmp_path):
    data = make_dataset_folder(tmp_path / "data", n_train=4, n_val=2, size=32)
    config = TINY_CONFIG  # random weights, 32 px, one epoch, avg -> dense 8 -> softmax
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = _run_script(training_script(config, DataFolder.from_info(scan(data))), work)

    assert re.search(r"Validation accuracy: [01]\.\d{3}", out)
    layers, trainable, count = _saved_layers(work / MODEL_FILE)  # saved where it ran, not beside the data
    lab_layers, lab_trainable, lab_count = _lab_layers(config, VGG16_LAYERS)
    assert layers == lab_layers
    assert layers[1][:2] == ("preprocess", "CaffePreprocess") and layers[-1][0] == "predictions"
    assert (trainable, count) == (lab_trainable, lab_count)
    assert _trainable_counts_printed(out) == [lab_count]
    # The lab opens the script's model (its preprocessing read as the lab's own layer) and it predicts.
    from tlcore.tf.inference import predict
    from tlcore.tf.layers import CaffePreprocess
    from tlcore.tf.model import load_model

    reopened = load_model(work / MODEL_FILE)
    assert isinstance(reopened.get_layer("preprocess"), CaffePreprocess)
    (prediction,) = predict(reopened, [next((data / "validation" / "cats").iterdir())], ["cats", "dogs"])
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_two_phases_from_the_middle_of_a_block_end_with_the_labs_trainable_layers(tmp_path):
    # Class folders (a drawn split), a sigmoid output, every option on: phase 1 trains from block5_conv3,
    # phase 2 from block4_conv3, both in the middle of a block.
    data = make_dataset_folder(tmp_path / "data", n_train=5, n_val=1, size=32, split_names=None)
    config = TINY_CONFIG.replace(
        freeze_at=16,
        fine_tune=FineTuneConfig(freeze_at=12, epochs=1, learning_rate=1e-4),
        head=HeadConfig(dense=(8,), dropout=0.2, output="sigmoid"),
        augment=AugmentConfig(enabled=True),
        balance_classes=True,
        early_stopping_patience=1,
        reduce_lr_on_plateau=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = _run_script(training_script(config, DataFolder.from_info(scan(data))), work)

    layers, trainable, count = _saved_layers(work / MODEL_FILE)
    lab_layers, lab_trainable, lab_count = _lab_layers(config, config.fine_tune.freeze_at)
    assert layers == lab_layers
    assert (trainable, count) == (lab_trainable, lab_count)
    assert _trainable_counts_printed(out) == [_lab_layers(config, 16)[2], lab_count]
    assert "class weights:" in out
