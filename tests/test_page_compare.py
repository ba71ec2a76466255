"""Inference page (AppTest): runs side by side on one image, a run of other classes refused, Grad-CAM for a class
picked by the learner, the line on what softmax cannot say, the hardest images' maps, and the camera."""

from __future__ import annotations

import io

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.inference.compare import IMAGE_KEY, RUNS_KEY
from dashboard.inference.evaluation import TOP_LOSS_KEY
from dashboard.inference.predictions import CAMERA_KEY, CAMERA_NAME, CAMERA_ON_KEY, EXPLAINED_KEY, PICK_KEY
from dashboard.state import SOURCE_FOLDER, K
from dashboard.tables import describe_run
from tests.conftest import ROOT
from tests.helpers import TINY_CONFIG, make_dataset_folder, make_image, shown_predictions
from tlcore.data import scan
from tlcore.neighbours import NEIGHBOURS_FILE
from tlcore.run_folder import load_record
from tlcore.runs import RunStore
from tlcore.uploads import UPLOAD_DIR_ENV

N_VAL = 3  # per class


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(dataset folder, runs folder, {name: run folder}): cats/dogs at 32 and 48 px, and owls/bats at 32 px."""
    from tlcore.tf.training import train_and_record

    tmp = tmp_path_factory.mktemp("compare-page")
    folder = make_dataset_folder(tmp / "data", n_train=6, n_val=N_VAL)
    other = make_dataset_folder(tmp / "other", classes=("bats", "owls"), n_train=4, n_val=1)
    store = RunStore(tmp / "runs")
    made = {}
    for name, config, data in [
        ("small", TINY_CONFIG, folder),
        ("larger", TINY_CONFIG.replace(image_size=48), folder),
        ("owls", TINY_CONFIG, other),
    ]:
        made[name] = train_and_record(config, scan(data), store)[1].run_dir.resolve()
    return folder, tmp / "runs", made


@pytest.fixture
def app(runs, tmp_path, monkeypatch):
    """The Inference page on the cats/dogs data, its runs folder, uploads going to a folder of this test."""
    folder, runs_dir, _ = runs
    monkeypatch.setenv("TLLAB_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv(UPLOAD_DIR_ENV, str(tmp_path / "uploads"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[K.source] = SOURCE_FOLDER
    at.session_state[K.folder] = str(folder)
    at.session_state["inference_model"] = str(runs[2]["small"])
    at.switch_page("pages/inference.py").run()
    assert not at.exception, at.exception
    return at


def _pick_first_dog(at: AppTest) -> AppTest:
    at.selectbox(key=PICK_KEY).select_index(N_VAL).run()  # the first dog
    assert not at.exception, at.exception
    return at


def _captions(at: AppTest) -> list[str]:
    return [c for image in at.image for c in image.captions]


def _texts(at: AppTest) -> str:
    return " ".join(e.value for e in [*at.markdown, *at.caption, *at.info, *at.error, *at.warning])


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    make_image(colour, size=64).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_two_runs_side_by_side_each_with_its_overlay_and_prediction(app, runs):
    made = runs[2]
    at = _pick_first_dog(app)
    assert at.multiselect(key=RUNS_KEY).value == [str(made["small"])]  # the chosen model, waiting for another
    assert "Pick two or three runs of cats, dogs" in _texts(at)
    at.multiselect(key=RUNS_KEY).select(str(made["larger"])).run()
    assert not at.exception, at.exception
    assert at.selectbox(key=IMAGE_KEY).value == "dogs/dogs_000.png"
    # One column per run: its setting and size as a heading, its run line, the overlay and what it predicts.
    headings = [m.value for m in at.markdown if m.value.startswith("##### ")]
    assert headings == ["##### random, freeze 18 · 32 px", "##### random, freeze 18 · 48 px"]
    for path in (made["small"], made["larger"]):
        assert describe_run(load_record(path)) in [c.value for c in at.caption]
    compared = [m for m in at.metric if m.label == "Predicts"]
    assert len(compared) == 2 and all(m.value in ("cats", "dogs") for m in compared)
    # The first run's column predicts what the section above shows for the same model and image.
    (above,) = shown_predictions(at)
    assert compared[0].value == above["top_class"]
    assert _captions(at).count(f"where it looked for “{compared[1].value}”") >= 1
    overlays = [c for c in _captions(at) if c.startswith("where it looked for")]
    assert len(overlays) == 3  # the image above, then each run's own


def test_a_run_of_other_classes_is_refused_with_the_reason(app, runs):
    made = runs[2]
    at = _pick_first_dog(app)
    owls = str(made["owls"])
    at.multiselect(key=RUNS_KEY).select(owls).select(str(made["larger"])).run()
    assert not at.exception, at.exception
    (warning,) = [w.value for w in at.warning if "cannot be compared" in w.value]
    assert warning == (
        f"**{describe_run(load_record(made['owls']))}** cannot be compared here: it tells apart bats, owls, "
        "not cats, dogs."
    )
    assert len([m for m in at.metric if m.label == "Predicts"]) == 2  # the two cats/dogs runs still show


def test_the_class_picker_explains_the_class_that_was_not_predicted(app):
    at = _pick_first_dog(app)
    (result,) = shown_predictions(at)
    other = next(c for c in ("cats", "dogs") if c != result["top_class"])
    assert at.radio(key=EXPLAINED_KEY).options == ["the predicted class", "“cats”", "“dogs”"]
    assert f"where it looked for “{result['top_class']}”" in _captions(at)
    at.radio(key=EXPLAINED_KEY).set_value(other).run()
    assert not at.exception, at.exception
    assert shown_predictions(at)[0]["top_class"] == result["top_class"]  # the prediction does not change
    probability = result["probabilities"][other]
    shown = [c for c in _captions(at) if c.startswith("where it looked for")]
    assert shown == [f"where it looked for “{other}” ({probability:.0%}, not its pick)"] or not shown  # blank: said
    if not shown:
        assert any(f"“{other}”" in i.value for i in at.info)


def test_the_softmax_line_is_where_predictions_are_shown(app):
    assert "must choose among the classes it knows" not in _texts(app)  # no prediction yet
    at = _pick_first_dog(app)
    (line,) = [c.value for c in at.caption if "must choose among the classes it knows" in c.value]
    assert "cats, dogs always add up to 100 % (softmax)" in line and "dessert" in line


def test_the_hardest_images_show_maps_for_the_predicted_and_the_true_class(app):
    at = app.button(key="inference_evaluate").click().run()
    assert not at.exception, at.exception
    key, hard = at.session_state[TOP_LOSS_KEY]
    assert key == at.session_state["inference_eval"][0] and len(hard) == 2 * N_VAL
    captions = _captions(at)
    assert len([c for c in captions if c[:7] in ("✗ true:", "✓ true:")]) == 2 * N_VAL
    expected = []
    for h in hard:
        item = h.item
        for name, overlay in h.overlays.items():
            roles = [r for r, c in (("predicted", item["predicted"]), ("true", item["true"])) if c == name]
            text = f"“{name}” ({' and '.join(roles)})"
            expected.append(
                f"where it looked for {text}" if overlay is not None else f"No region raised the score of {text}."
            )
    assert expected and [c for c in captions if c.startswith("where it looked for")] == [
        e for e in expected if e.startswith("where")
    ]
    assert [c.value for c in at.caption if c.value.startswith("No region raised")] == [
        e for e in expected if e.startswith("No region")
    ]
    assert any("(predicted)" in e or "(predicted and true)" in e for e in expected)


def test_a_camera_snapshot_is_predicted_and_explained_and_nothing_is_stored(app, runs, tmp_path):
    _, runs_dir, _ = runs

    def stored() -> list:  # less the runs' kept training-image vectors: made from training images, not photos
        return sorted(p for p in runs_dir.rglob("*") if p.name != NEIGHBOURS_FILE)

    before = stored()
    at = app
    assert not at.camera_input  # behind its toggle: the browser is not asked for the camera on every visit
    assert "the camera only on localhost or over HTTPS" in _texts(at)  # said where it is offered
    assert "only on localhost or over HTTPS" in at.toggle(key=CAMERA_ON_KEY).help
    at.toggle(key=CAMERA_ON_KEY).set_value(True).run()
    assert not at.exception, at.exception
    assert "localhost or over HTTPS" in _texts(at)
    at.camera_input(key=CAMERA_KEY).set_value(("photo.jpg", _jpeg((50, 80, 210)), "image/jpeg")).run()
    assert not at.exception, at.exception
    (result,) = shown_predictions(at)
    assert result["name"] == CAMERA_NAME and sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert any(c.startswith("where it looked for") for c in _captions(at))
    # Nothing written: not in the runs folder, not where uploaded models go.
    assert stored() == before
    assert not (tmp_path / "uploads").exists()
    # The camera off: its photo is gone from the page.
    at.toggle(key=CAMERA_ON_KEY).set_value(False).run()
    assert shown_predictions(at) == [] and not at.camera_input


def test_a_snapshot_that_is_not_an_image_is_named(app):
    at = app
    at.toggle(key=CAMERA_ON_KEY).set_value(True).run()
    at.camera_input(key=CAMERA_KEY).set_value(("photo.jpg", b"not a jpeg", "image/jpeg")).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.main.error if e.value.startswith(f"**{CAMERA_NAME}**")]
