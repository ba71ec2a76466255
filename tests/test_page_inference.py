"""Inference page (AppTest): a real tiny run, validation picks, uploads, evaluation."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard.state import SOURCE_FOLDER, K
from tests.conftest import ROOT
from tests.helpers import TINY_CONFIG, make_dataset_folder, make_image, shown_predictions, vega_specs
from tests.test_inference import png_claiming
from tlcore.data import scan
from tlcore.modelfile import LABELS_ENTRY
from tlcore.run_folder import MODEL_FILE, RUN_FILE
from tlcore.runs import RunStore
from tlcore.uploads import UPLOAD_DIR_ENV

N_VAL = 4  # per class
TINY = TINY_CONFIG.replace(epochs=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(dataset folder, runs folder, run folder) of one real tiny run, with TLLAB_RUNS_DIR pointing at it."""
    from tlcore.tf.training import train_and_record

    tmp = tmp_path_factory.mktemp("inference-page")
    folder = make_dataset_folder(tmp / "data", n_train=8, n_val=N_VAL)
    runs_dir = tmp / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TLLAB_RUNS_DIR", str(runs_dir))
        _, run = train_and_record(TINY, scan(folder), RunStore(runs_dir))
        yield folder, runs_dir, run.run_dir


def _app(folder: Path, run_dir: Path | None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[K.source] = SOURCE_FOLDER
    at.session_state[K.folder] = str(folder)
    if run_dir is not None:
        at.session_state[K.last_run_dir] = str(run_dir)
    return at.switch_page("pages/inference.py").run()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _upload_stem(data: bytes) -> str:
    import hashlib

    return f"tllab-upload-{hashlib.sha256(data).hexdigest()[:16]}"


def _texts(at: AppTest) -> str:
    return " ".join(e.value for e in [*at.markdown, *at.caption, *at.info, *at.error, *at.warning])


def test_the_just_trained_model_is_chosen_and_a_validation_image_gets_probabilities(trained):
    folder, _, run_dir = trained
    at = _app(folder, run_dir)
    assert not at.exception
    assert at.title[0].value == "Inference"
    assert at.selectbox(key="inference_model").value == str(run_dir.resolve())
    assert "just trained" in at.selectbox(key="inference_model").format_func(str(run_dir.resolve()))
    assert shown_predictions(at) == []

    pick = at.selectbox(key="inference_pick")
    assert len(pick.options) == 2 * N_VAL and pick.options[0] == "cats/cats_000.png"
    at = pick.select_index(N_VAL).run()  # the first dog
    assert not at.exception
    (result,) = shown_predictions(at)
    assert result["name"] == "dogs/dogs_000.png"
    assert list(result["probabilities"]) == ["cats", "dogs"]
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["top_class"] == max(result["probabilities"], key=result["probabilities"].get)
    assert at.metric[0].value == result["top_class"]
    assert [c for img in at.image for c in img.captions][1].startswith("where it looked for")
    colour_bar, bars = vega_specs(at)  # under the Grad-CAM overlay, then the probabilities
    assert colour_bar["encoding"]["x"]["axis"]["labelExpr"] == "datum.value < 0.5 ? 'low' : 'high'"
    assert colour_bar["encoding"]["color"]["scale"] is None  # jet's own colours, as in the overlay
    assert bars["mark"]["type"] == "bar" and bars["encoding"]["x"]["scale"] == {"domain": [0, 1]}


def test_evaluation_counts_every_validation_image_and_survives_reruns(trained):
    folder, _, run_dir = trained
    at = _app(folder, run_dir)
    at = at.button(key="inference_evaluate").click().run()
    assert not at.exception, at.exception[0].value
    assert not [b for b in at.button if b.key == "inference_evaluate"]  # done: the button gives way to the results
    _key, evaluation = at.session_state["inference_eval"]
    assert evaluation.confusion.sum() == 2 * N_VAL
    per_class = at.dataframe[0].value
    assert list(per_class["class"]) == ["cats", "dogs"] and per_class["images"].sum() == 2 * N_VAL
    assert at.metric[0].label == "Validation accuracy"
    # The top-loss gallery (8 of 8 images: all), each beside its maps for the predicted and the true class.
    captions = [c for image in at.image for c in image.captions]
    assert len([c for c in captions if c[:7] in ("✗ true:", "✓ true:")]) == 2 * N_VAL
    assert len(at.image) == 2 * N_VAL + sum(
        overlay is not None
        for hard in at.session_state["inference_top_loss_cams"][1]
        for overlay in hard.overlays.values()
    )
    (matrix,) = vega_specs(at)  # the confusion matrix: an Altair heatmap with the counts in its cells
    assert [layer["mark"]["type"] for layer in matrix["layer"]] == ["rect", "text"]

    # A rerun (any widget) shows the cached evaluation without the button being pressed again.
    at = at.run()
    assert not at.exception
    assert at.session_state["inference_eval"][1] is evaluation
    assert at.metric[0].label == "Validation accuracy"


def test_evaluating_on_a_split_the_run_did_not_hold_out_is_flagged(trained, tmp_path):
    folder, _, run_dir = trained
    other = make_dataset_folder(tmp_path / "other", n_train=8, n_val=N_VAL + 1)  # same classes, other files
    at = _app(folder, run_dir)
    assert "not the one this run held out" not in _texts(at)
    at.session_state[K.folder] = str(other)
    at = at.run()
    assert not at.exception
    assert "not the one this run held out" in _texts(at)
    at = at.button(key="inference_evaluate").click().run()
    assert at.session_state["inference_eval"][1].confusion.sum() == 2 * (N_VAL + 1)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # see tests/test_inference.py
def test_uploads_are_converted_and_a_bad_file_is_named_while_the_others_still_show(trained):
    folder, _, run_dir = trained
    at = _app(folder, run_dir)
    gray = make_image((200, 60, 50), size=50, mode="L")
    rgba = make_image((50, 80, 210), size=50, mode="RGBA")
    deep = Image.fromarray(np.full((50, 50), 40_000, dtype=np.uint16))
    cmyk = io.BytesIO()
    make_image((60, 190, 70), size=50).convert("CMYK").save(cmyk, format="JPEG")
    at.file_uploader(key="inference_images").set_value(
        [
            ("red.png", _png(make_image((210, 60, 50), size=50)), "image/png"),
            ("notes.png", b"<html>not a picture</html>", "image/png"),
            ("gray.png", _png(gray), "image/png"),
            ("empty.png", b"", "image/png"),
            ("rgba.png", _png(rgba), "image/png"),
            ("bomb.png", png_claiming(100_000, 100_000), "image/png"),
            ("deep.png", _png(deep), "image/png"),
            ("cmyk.jpg", cmyk.getvalue(), "image/jpeg"),
        ]
    )
    at = at.run()
    assert not at.exception
    names = ["red.png", "gray.png", "rgba.png", "deep.png", "cmyk.jpg"]
    assert [r["name"] for r in shown_predictions(at)] == names
    for r in shown_predictions(at):
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert [m.value for m in at.metric] == [r["top_class"] for r in shown_predictions(at)]
    errors = [e.value for e in at.main.error]
    assert errors == [
        "**notes.png** cannot be used: not an image (content is not JPEG, PNG, BMP, GIF, WebP or TIFF)",
        "**empty.png** cannot be used: empty file (0 bytes)",
        "**bomb.png** cannot be used: too large (over 100 megapixels; decompression-bomb guard)",
    ]


@pytest.fixture
def upload_dir(tmp_path, monkeypatch) -> Path:
    """Uploaded models are saved here, not in the system temp folder (~60 MB each)."""
    monkeypatch.setenv(UPLOAD_DIR_ENV, str(tmp_path / "uploads"))
    return tmp_path / "uploads"


def _without_labels(model_bytes: bytes) -> bytes:
    """The same model as a .keras file saved before the lab wrote class names into it."""
    source, out = zipfile.ZipFile(io.BytesIO(model_bytes)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            if info.filename != LABELS_ENTRY:
                archive.writestr(info, source.read(info))
    return out.getvalue()


def _upload_model(at: AppTest, model_bytes: bytes) -> AppTest:
    at = at.selectbox(key="inference_model").set_value("upload").run()
    assert not at.exception
    at.file_uploader(key="inference_model_upload").set_value(
        ("exported.keras", model_bytes, "application/octet-stream")
    )
    at = at.run()
    at.file_uploader(key="inference_images").set_value([("x.png", _png(make_image((50, 80, 210))), "image/png")])
    return at.run()


def test_a_downloaded_model_uploaded_back_names_its_classes(trained, upload_dir):
    folder, _, run_dir = trained
    at = _upload_model(_app(folder, None), (run_dir / MODEL_FILE).read_bytes())  # what Download model gives
    assert not at.exception
    assert list(shown_predictions(at)[0]["probabilities"]) == ["cats", "dogs"]
    assert not [t for t in at.text_input if t.key and t.key.startswith("inference_names_")]  # nothing to type


def test_an_older_uploaded_model_gets_class_names_from_run_json_or_generic_ones(trained, upload_dir):
    folder, _, run_dir = trained
    model_bytes = _without_labels((run_dir / MODEL_FILE).read_bytes())
    at = _upload_model(_app(folder, None), model_bytes)
    assert at.text_input(key=f"inference_names_{_upload_stem(model_bytes)}").value == "class 0, class 1"
    assert not at.exception
    (result,) = shown_predictions(at)
    assert list(result["probabilities"]) == ["class 0", "class 1"]
    assert "choose in the sidebar the dataset" in _texts(at)  # generic names do not match cats/dogs

    at.file_uploader(key="inference_record_upload").set_value(("notes.json", b"[1, 2]", "application/json"))
    at = at.run()
    assert not at.exception
    assert any("notes.json is not a run.json" in w.value for w in at.warning)
    assert list(shown_predictions(at)[0]["probabilities"]) == ["class 0", "class 1"]

    at.file_uploader(key="inference_record_upload").set_value(
        ("run.json", (run_dir / RUN_FILE).read_bytes(), "application/json")
    )
    at = at.run()
    assert not at.exception
    assert list(shown_predictions(at)[0]["probabilities"]) == ["cats", "dogs"]
    assert at.selectbox(key="inference_pick").options  # the dataset now matches: validation picks are offered
    assert [p.name for p in upload_dir.iterdir()] == [f"{_upload_stem(model_bytes)}.keras"]  # saved once


def test_an_uploaded_models_copy_goes_when_its_session_has_ended(trained, upload_dir):
    from dashboard import housekeeping

    folder, _, run_dir = trained
    model_bytes = (run_dir / MODEL_FILE).read_bytes()
    _upload_model(_app(folder, None), model_bytes)
    copy = upload_dir / f"{_upload_stem(model_bytes)}.keras"
    assert copy.is_file() and copy in housekeeping.tracker().folders()
    removed = housekeeping.tracker().sweep(lambda session: False, lambda owner: False)  # every session ended
    assert copy in removed and not copy.exists()


def test_a_chosen_run_deleted_meanwhile_falls_back_to_another(trained, tmp_path, monkeypatch):
    folder, _, run_dir = trained
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs / "20200101-000000-bbbbbb")
    monkeypatch.setenv("TLLAB_RUNS_DIR", str(runs))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[K.source] = SOURCE_FOLDER
    at.session_state[K.folder] = str(folder)
    # What a session holds after its chosen run was deleted (Runs page, another tab, a shell).
    at.session_state["inference_model"] = str(runs / "20200101-000000-aaaaaa")
    at = at.switch_page("pages/inference.py").run()
    assert not at.exception
    assert at.selectbox(key="inference_model").value == str((runs / "20200101-000000-bbbbbb").resolve())


def test_a_file_that_is_not_a_model_is_a_clear_error(trained, upload_dir):
    folder, _, _ = trained
    at = _app(folder, None)
    at = at.selectbox(key="inference_model").set_value("upload").run()
    at.file_uploader(key="inference_model_upload").set_value(("fake.keras", b"not a zip", "application/octet-stream"))
    at = at.run()
    assert not at.exception
    assert "cannot be loaded" in at.main.error[0].value
    assert not list(upload_dir.iterdir())  # the useless copy is not kept


def test_without_any_model_the_page_points_to_training(tmp_path, monkeypatch, trained):
    folder, _, _ = trained
    monkeypatch.setenv("TLLAB_RUNS_DIR", str(tmp_path / "empty-runs"))
    at = _app(folder, None)
    assert not at.exception
    assert "No trained model yet" in at.main.info[0].value
    assert any(link.proto.page.endswith("train.py") or "Train" in link.label for link in at.page_link)
