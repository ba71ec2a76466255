"""Explanations that compare: Grad-CAM of a batch in one pass, any class explained (not only the predicted one),
one image under several runs at their own sizes, the top-loss images' maps, and runs of other classes refused."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest

from tests.helpers import TINY_CONFIG, make_dataset_folder, make_image
from tlcore.config import HeadConfig
from tlcore.data import scan
from tlcore.imageio import ImageProblem
from tlcore.records import RunRecord
from tlcore.runs import class_mismatch
from tlcore.tf.gradcam import explainer_for, gradcam, gradcam_overlay, gradcams, is_blank
from tlcore.tf.inference import evaluate_split, explain, explain_top_losses, explain_with_each, to_pixels
from tlcore.tf.model import build_model

CLASSES = ["cats", "dogs"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return scan(make_dataset_folder(tmp_path_factory.mktemp("compare") / "data", n_train=8, n_val=4, size=48))


@pytest.fixture(scope="module")
def trained(data) -> keras.Model:
    """A tiny model trained for two epochs (random frozen VGG16, 64 px: a 4x4 map, its head trained)."""
    from tlcore.tf.training import prepare_data, train

    config = TINY_CONFIG.replace(image_size=64, epochs=2)
    result = train(config, prepare_data(data, config.image_size))
    assert result.model is not None and result.class_names == CLASSES
    return result.model


def _png(colour, seed: int = 0, size: int = 48) -> bytes:
    buffer = io.BytesIO()
    make_image(colour, size=size, seed=seed).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_batch_of_maps_equals_each_image_on_its_own(trained):
    explainer = explainer_for(trained)
    pixels = np.stack([to_pixels(_png((210, 60, 50), seed=s), 64) for s in range(3)])
    heatmaps, classes = gradcams(trained, pixels, [0, 1, None], grad_model=explainer)
    assert heatmaps.shape == (3, 4, 4) and heatmaps.dtype == np.float32
    for image, heatmap, asked, got in zip(pixels, heatmaps, [0, 1, None], classes):
        alone, index = gradcam(trained, image, asked, grad_model=explainer)
        assert index == got
        np.testing.assert_allclose(heatmap, alone, atol=1e-5)
    with pytest.raises(ValueError, match="one class per image"):
        gradcams(trained, pixels, [0, 1], grad_model=explainer)


def test_on_a_trained_model_each_class_has_its_own_map_and_explain_shows_the_one_asked_for(trained):
    explainer, source = explainer_for(trained), ("red.png", _png((210, 60, 50), seed=7))
    pixels = to_pixels(source[1], 64)
    cats, _ = gradcam(trained, pixels, 0, grad_model=explainer)
    dogs, _ = gradcam(trained, pixels, 1, grad_model=explainer)
    assert not np.allclose(cats, dogs, atol=1e-3)  # "why not the other class" is another map

    (predicted,), _ = explain(trained, explainer, [source], CLASSES)
    assert predicted.explained_class == predicted.top_class
    other = next(c for c in CLASSES if c != predicted.top_class)
    (why_not,), _ = explain(trained, explainer, [source], CLASSES, explained_class=other)
    # The prediction is the same; only the map is for the other class.
    assert why_not.top_class == predicted.top_class and why_not.probabilities == predicted.probabilities
    assert why_not.explained_class == other
    assert why_not.heatmap is not None and predicted.heatmap is not None
    np.testing.assert_allclose(why_not.heatmap, {"cats": cats, "dogs": dogs}[other], atol=1e-5)
    np.testing.assert_allclose(predicted.heatmap, {"cats": cats, "dogs": dogs}[predicted.top_class], atol=1e-5)
    if not is_blank(why_not.heatmap):
        np.testing.assert_array_equal(why_not.overlay, gradcam_overlay(why_not.display, why_not.heatmap))
    with pytest.raises(ValueError, match="Can only explain one of the classes"):
        explain(trained, explainer, [source], CLASSES, explained_class="owls")


def test_one_image_under_models_of_different_sizes(trained):
    keras.utils.set_random_seed(0)
    small = build_model(2, image_size=32, weights="none", head=HeadConfig(dense=(8,), dropout=0.0))
    models = [(trained, explainer_for(trained)), (small, explainer_for(small)), (small, None)]
    source = ("blue.png", io.BytesIO(_png((50, 80, 210), seed=3)))  # a stream: read once, shown to every model
    results = explain_with_each(models, source, CLASSES, display_size=96, explained_class="dogs")
    assert [r.name for r in results] == ["blue.png"] * 3
    # Each model got the image at its own size: its map has its own grid, and its own probabilities.
    assert [None if r.heatmap is None else r.heatmap.shape for r in results] == [(4, 4), (2, 2), None]
    for (model, explainer), r in zip(models, results):
        (alone,), _ = explain(model, explainer, [("blue.png", _png((50, 80, 210), seed=3))], CLASSES, display_size=96)
        assert r.probabilities == pytest.approx(alone.probabilities, abs=1e-6)
        assert r.display.shape == (96, 96, 3) and r.explained_class == "dogs"
    with pytest.raises(ImageProblem, match="not an image"):
        explain_with_each(models, ("notes.png", b"<html>"), CLASSES)


def test_the_hardest_images_get_maps_for_the_predicted_and_the_true_class(trained, data):
    evaluation = evaluate_split(trained, data, CLASSES)
    explainer = explainer_for(trained)
    hard = explain_top_losses(trained, explainer, evaluation, k=5, display_size=80)
    assert [h.item for h in hard] == evaluation.top_losses(5)
    for h in hard:
        assert h.display is not None
        assert h.problem is None and h.display.shape == (80, 80, 3)
        item = h.item
        expected = [item["predicted"]] if item["true"] == item["predicted"] else [item["predicted"], item["true"]]
        assert list(h.overlays) == expected  # the predicted class first, the true one when it is another
        for name, overlay in h.overlays.items():
            heatmap, _ = gradcam(trained, to_pixels(item["path"], 64), CLASSES.index(name), grad_model=explainer)
            if is_blank(heatmap):
                assert overlay is None
            else:
                np.testing.assert_array_equal(overlay, gradcam_overlay(h.display, heatmap))
    assert all(not h.overlays for h in explain_top_losses(trained, None, evaluation, k=2))  # no explainer: no maps


def test_a_hard_image_deleted_since_the_evaluation_is_said_not_raised(trained, tmp_path):
    info = scan(make_dataset_folder(tmp_path / "data", n_train=2, n_val=2, size=40))
    evaluation = evaluate_split(trained, info, CLASSES)
    gone = evaluation.top_losses(1)[0]["path"]
    gone.unlink()
    hard = explain_top_losses(trained, explainer_for(trained), evaluation, k=4)
    assert [h.display is None for h in hard] == [True, False, False, False]
    assert hard[0].overlays == {} and hard[0].problem == "file not found (broken link or removed)"


def test_a_run_of_other_classes_cannot_be_compared():
    assert class_mismatch(RunRecord(class_names=["cats", "dogs"]), CLASSES) is None
    assert class_mismatch(RunRecord(class_names=["animals", "vehicles"]), CLASSES) == (
        "it tells apart animals, vehicles, not cats, dogs"
    )
    assert (
        class_mismatch(RunRecord(class_names=["dogs", "cats"]), CLASSES) == "it tells apart dogs, cats, not cats, dogs"
    )
    assert class_mismatch(RunRecord(), CLASSES) == "its run.json does not name its classes"
