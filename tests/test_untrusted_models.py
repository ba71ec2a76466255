"""Model files from uploads or run folders: anything that could run code is refused, and nothing in it runs.

The Lambda models below leave a marker file when their function is called, so
"never executed" is observed, not assumed. Models are tiny (a Dense on 4
numbers, or 8x8 images), so the whole file takes seconds.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard.state import SOURCE_FOLDER, K
from tests.conftest import ROOT
from tests.helpers import make_dataset_folder, shown_predictions
from tlcore.config import TrainConfig
from tlcore.data import scan
from tlcore.modelfile import ModelLoadError, check_model_file
from tlcore.records import COMPLETED
from tlcore.run_folder import MODEL_FILE
from tlcore.runs import RunStore
from tlcore.tf.inference import check_image_classifier
from tlcore.tf.model import load_model, load_run_model
from tlcore.uploads import UPLOAD_DIR_ENV

_CALLS: list[str] = []  # appended to by `_named_side_effect` when Keras calls it


def _named_side_effect(x):
    _CALLS.append("called")
    return x


def _image_model(middle: keras.layers.Layer | None = None) -> keras.Model:
    """8x8 RGB images -> 2 softmax classes, optionally through `middle`."""
    inputs = keras.Input((8, 8, 3))
    x = middle(inputs) if middle is not None else inputs
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="predictions")(x))


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "lambda-ran.txt"


@pytest.fixture
def lambda_model(tmp_path, marker) -> Path:
    """A .keras image classifier with a Lambda layer whose (serialized) bytecode writes `marker` when called."""
    path = str(marker)
    # A closure, not a default argument: Keras serializes both, but restores only closures correctly.
    # The layer's body must be one expression: its file is opened without a with (hence SIM115's noqa).
    side_effect = keras.layers.Lambda(lambda x: (open(path, "a").write("ran\n"), x)[1], name="side_effect")  # noqa: SIM115
    model = _image_model(side_effect)
    marker.unlink()  # building the model called it once
    file = tmp_path / "lambda.keras"
    model.save(file)
    return file


def _rewrite_config(source: Path, target: Path, edit) -> Path:
    """A copy of a .keras file whose config.json went through `edit(config)`."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(name, data)
    return target


@pytest.fixture(scope="module")
def plain_model_file(tmp_path_factory) -> Path:
    file = tmp_path_factory.mktemp("plain") / "plain.keras"
    _image_model().save(file)
    return file


def _layers(config: dict) -> list[dict]:
    return config["config"]["layers"]


# --- the marker is a real detector -----------------------------------------------------------


def test_loading_the_lambda_model_unsafely_would_run_its_code(lambda_model, marker):
    # Why the marker proves anything: without safe mode, Keras rebuilds the graph and calls the lambda.
    keras.models.load_model(lambda_model, safe_mode=False, compile=False)
    assert marker.read_text() == "ran\n"


# --- refused by tlcore.tf.model.load_model ------------------------------------------------------


def test_a_lambda_layer_is_refused_and_never_run(lambda_model, marker):
    with pytest.raises(ModelLoadError, match=r"a Lambda layer 'side_effect' \(arbitrary Python code\); refused for"):
        load_model(lambda_model)
    assert not marker.exists()
    # Keras' own safe mode refuses it too, had our check missed it.
    with pytest.raises(ValueError, match="arbitrary code execution"):
        keras.models.load_model(lambda_model, safe_mode=True, compile=False)
    assert not marker.exists()


def test_a_lambda_layer_calling_a_named_function_is_refused(tmp_path):
    file = tmp_path / "named.keras"
    _image_model(keras.layers.Lambda(_named_side_effect, name="innocent")).save(file)
    _CALLS.clear()
    with pytest.raises(ModelLoadError, match="a Lambda layer 'innocent'"):
        load_model(file)
    assert _CALLS == []


def test_a_config_pointing_at_os_system_is_refused(plain_model_file, tmp_path):
    def as_layer(config):  # a "layer" whose class is os.system
        layer = _layers(config)[1]
        layer.update(module="os", class_name="system", registered_name=None)

    def as_activation(config):  # Dense(activation=os.system)
        _layers(config)[-1]["config"]["activation"] = {
            "module": "os",
            "class_name": "function",
            "config": "system",
            "registered_name": "function",
        }

    file = _rewrite_config(plain_model_file, tmp_path / "layer.keras", as_layer)
    with pytest.raises(ModelLoadError, match="names 'system' from Python module 'os', which is neither Keras nor"):
        load_model(file)
    file = _rewrite_config(plain_model_file, tmp_path / "activation.keras", as_activation)
    with pytest.raises(ModelLoadError, match=r"the Python function os\.system \(code outside Keras' layers\)"):
        load_model(file)


def test_a_lambda_rewritten_to_call_os_system_is_refused(lambda_model, tmp_path, marker):
    def to_os_system(config):
        _layers(config)[1]["config"]["function"] = {
            "module": "os",
            "class_name": "function",
            "config": "system",
            "registered_name": "function",
        }

    with pytest.raises(ModelLoadError, match="Lambda layer"):
        load_model(_rewrite_config(lambda_model, tmp_path / "os.keras", to_os_system))
    assert not marker.exists()


def test_a_tfsm_layer_and_custom_modules_are_refused(plain_model_file, tmp_path):
    def to_tfsm(config):
        _layers(config)[1].update(module="keras.layers", class_name="TFSMLayer")

    def to_custom(config):
        _layers(config)[1].update(module="evil_package.layers", class_name="Backdoor", registered_name="evil>Backdoor")

    with pytest.raises(ModelLoadError, match="a TFSMLayer 'pool'"):
        load_model(_rewrite_config(plain_model_file, tmp_path / "tfsm.keras", to_tfsm))
    with pytest.raises(ModelLoadError, match=r"'Backdoor' from Python module 'evil_package.layers'"):
        load_model(_rewrite_config(plain_model_file, tmp_path / "custom.keras", to_custom))


def test_an_unknown_keras_class_is_a_clear_error(plain_model_file, tmp_path):
    def to_unknown(config):
        _layers(config)[1]["class_name"] = "NoSuchLayer"

    with pytest.raises(ModelLoadError, match=r"Keras cannot load this model: .*NoSuchLayer"):
        load_model(_rewrite_config(plain_model_file, tmp_path / "unknown.keras", to_unknown))


def test_files_that_are_not_keras_zips_are_refused(plain_model_file, tmp_path):
    cases = {
        "text.keras": (b"not a zip", "not a .keras model file"),
        "empty.keras": (b"", "not a .keras model file"),
        "legacy.keras": (b"\x89HDF\r\n\x1a\n" + b"\0" * 100, "legacy HDF5"),
        "truncated.keras": (plain_model_file.read_bytes()[:2000], "not a .keras model file"),
        "zip-signature.keras": (b"PK\x03\x04" + b"\0" * 100, "not a .keras model file"),
    }
    for name, (data, expected) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ModelLoadError, match=expected):
            load_model(tmp_path / name)
    with pytest.raises(ModelLoadError, match="No model file at"):
        load_model(tmp_path)  # a folder: Keras would read a saved-model directory
    with pytest.raises(ModelLoadError, match="No model file at"):
        load_model("hf://someone/model")  # Keras would download it


def _zip_with(source: Path, target: Path, replace: dict[str, bytes | None]) -> Path:
    """A copy of a .keras zip with entries replaced, added, or dropped (None)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for name in zin.namelist():
            if name not in replace:
                zout.writestr(name, zin.read(name))
        for name, data in replace.items():
            if data is not None:
                zout.writestr(name, data)
    return target


def test_keras_zips_with_unexpected_contents_are_refused(plain_model_file, tmp_path):
    extra = _zip_with(plain_model_file, tmp_path / "assets.keras", {"assets/../../evil.txt": b"x"})
    with pytest.raises(ModelLoadError, match=r"holds 'assets/\.\./\.\./evil\.txt'; a model saved by Keras holds only"):
        load_model(extra)
    no_config = _zip_with(plain_model_file, tmp_path / "noconfig.keras", {"config.json": None})
    with pytest.raises(ModelLoadError, match=r"not a Keras model: a zip archive of 2 file.s. with no config.json"):
        load_model(no_config)
    # A zip of something else renamed .keras: a short answer, a few of its names, never the whole list.
    names = {f"photos/img_{i:03d}.jpg": b"x" for i in range(200)}
    renamed = tmp_path / "holiday.keras"
    with zipfile.ZipFile(renamed, "w") as archive:
        for name, data in names.items():
            archive.writestr(name, data)
    with pytest.raises(ModelLoadError) as refused:
        load_model(renamed)
    message = str(refused.value)
    assert "200 file(s), 'photos/img_000.jpg', 'photos/img_001.jpg', 'photos/img_002.jpg' and 197 more" in message
    assert len(message) < 300
    bad_json = _zip_with(plain_model_file, tmp_path / "badjson.keras", {"config.json": b"{not json"})
    with pytest.raises(ModelLoadError, match=r"config.json is not valid JSON"):
        load_model(bad_json)
    deep = _zip_with(plain_model_file, tmp_path / "deep.keras", {"config.json": b"[" * 100_000 + b"]" * 100_000})
    with pytest.raises(ModelLoadError, match="nested too deeply"):
        load_model(deep)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_a_keras_zip_declaring_a_huge_entry_is_refused_before_reading_it(plain_model_file, tmp_path):
    data = bytearray(plain_model_file.read_bytes())
    record = data.find(b"PK\x01\x02")
    while record >= 0:  # each of the 3 central-directory records declares almost 4 GiB
        struct.pack_into("<I", data, record + 24, 0xFFFFFFFE)
        record = data.find(b"PK\x01\x02", record + 4)
    (tmp_path / "bomb.keras").write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="expands to more than 4 GiB"):
        check_model_file(tmp_path / "bomb.keras")


def test_corrupt_weights_are_a_clear_error(plain_model_file, tmp_path):
    data = bytearray(plain_model_file.read_bytes())
    weights = data.find(b"model.weights.h5") + len("model.weights.h5") + 50  # inside the entry's data
    data[weights : weights + 64] = bytes(64)
    (tmp_path / "corrupt.keras").write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="Keras cannot load this model"):
        load_model(tmp_path / "corrupt.keras")


def test_a_model_built_by_this_app_still_loads(tmp_path):
    from tlcore.config import HeadConfig
    from tlcore.tf.model import build_model

    model = build_model(2, image_size=32, weights="none", head=HeadConfig(dense=(4,), dropout=0.1))
    model.save(tmp_path / "app.keras")
    reloaded = load_model(tmp_path / "app.keras")
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(reloaded.predict_on_batch(pixels), model.predict_on_batch(pixels), atol=1e-5)
    check_image_classifier(reloaded)


def test_a_model_that_does_not_classify_images_is_named_as_such(tmp_path):
    inputs = keras.Input((4,))
    with pytest.raises(ModelLoadError, match=r"does not take square RGB images: its input shape is \(None, 4\)"):
        check_image_classifier(keras.Model(inputs, keras.layers.Dense(2)(inputs)))
    inputs = keras.Input((8, 8, 3))
    with pytest.raises(ModelLoadError, match=r"does not output class scores: its output shape is \(None, 8, 8, 3\)"):
        check_image_classifier(keras.Model(inputs, keras.layers.Identity()(inputs)))


# --- run folders and the Inference page ------------------------------------------------------


@pytest.fixture
def lambda_run(tmp_path, lambda_model, monkeypatch) -> tuple[Path, Path]:
    """(dataset folder, run folder) of a finished run whose model.keras was swapped for the Lambda model."""
    folder = make_dataset_folder(tmp_path / "data", n_train=2, n_val=1, size=8)
    runs = tmp_path / "runs"
    monkeypatch.setenv("TLLAB_RUNS_DIR", str(runs))
    run = RunStore(runs).create(TrainConfig(weights="none", image_size=32, epochs=1), scan(folder))
    run.finish(COMPLETED)
    shutil.copy(lambda_model, run.run_dir / MODEL_FILE)
    return folder, run.run_dir


def test_a_run_folder_with_a_lambda_model_is_refused(lambda_run, marker):
    _, run_dir = lambda_run
    with pytest.raises(ModelLoadError, match="Lambda layer"):
        load_run_model(run_dir)
    assert not marker.exists()


def _inference_page(folder: Path, tmp_path: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv(UPLOAD_DIR_ENV, str(tmp_path / "uploads"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state[K.source] = SOURCE_FOLDER
    at.session_state[K.folder] = str(folder)
    return at.switch_page("pages/inference.py").run()


def test_the_inference_page_refuses_a_run_with_a_lambda_model(lambda_run, marker, tmp_path, monkeypatch):
    folder, run_dir = lambda_run
    at = _inference_page(folder, tmp_path, monkeypatch)
    assert not at.exception
    assert at.selectbox(key="inference_model").value == str(run_dir.resolve())
    assert not at.main.error  # nothing loads a model before an image asks for it
    at = at.file_uploader(key="inference_images").set_value([("cat.png", _png(), "image/png")]).run()
    (error,) = at.main.error
    assert "cannot be loaded" in error.value and "Lambda layer" in error.value
    assert not marker.exists()


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload_model(at: AppTest, name: str, data: bytes) -> AppTest:
    at = at.selectbox(key="inference_model").set_value("upload").run()
    return at.file_uploader(key="inference_model_upload").set_value((name, data, "application/octet-stream")).run()


@pytest.fixture
def no_runs(tmp_path, monkeypatch) -> Path:
    folder = make_dataset_folder(tmp_path / "data", n_train=2, n_val=1, size=8)
    monkeypatch.setenv("TLLAB_RUNS_DIR", str(tmp_path / "no-runs"))
    return folder


def test_the_inference_page_refuses_an_uploaded_lambda_model(no_runs, lambda_model, marker, tmp_path, monkeypatch):
    at = _upload_model(_inference_page(no_runs, tmp_path, monkeypatch), "friendly.keras", lambda_model.read_bytes())
    assert not at.exception
    (error,) = at.main.error
    assert "cannot be loaded" in error.value and "Lambda layer" in error.value and "refused for safety" in error.value
    assert not marker.exists()
    assert not list((tmp_path / "uploads").iterdir())  # the refused copy is not kept


def test_the_inference_page_refuses_uploads_that_are_not_image_classifiers(
    no_runs, plain_model_file, tmp_path, monkeypatch
):
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs)).save(tmp_path / "tabular.keras")
    cases = [
        ("tabular.keras", (tmp_path / "tabular.keras").read_bytes(), "does not take square RGB images"),
        ("truncated.keras", plain_model_file.read_bytes()[:3000], "not a .keras model file"),
    ]
    for name, data, expected in cases:
        at = _upload_model(_inference_page(no_runs, tmp_path, monkeypatch), name, data)
        assert not at.exception
        (error,) = at.main.error
        assert "cannot be loaded" in error.value and expected in error.value, error.value
    # A good upload still works after refused ones.
    at = _upload_model(_inference_page(no_runs, tmp_path, monkeypatch), "plain.keras", plain_model_file.read_bytes())
    at.file_uploader(key="inference_images").set_value([("red.png", _png(), "image/png")])
    at = at.run()
    assert not at.exception and not at.main.error
    (result,) = shown_predictions(at)
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
