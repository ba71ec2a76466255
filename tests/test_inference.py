"""Predictions, Grad-CAM and evaluation."""

from __future__ import annotations

import io
import struct
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tlcore.config import HeadConfig
from tlcore.imageio import ImageProblem
from tlcore.tf.gradcam import gradcam, upsample_heatmap
from tlcore.tf.inference import ImageInput, evaluate, explain, predict, probabilities, to_pixels
from tlcore.tf.model import build_model, load_model
from tlcore.tf.pipeline import ImageSet

CLASSES = ["cats", "dogs", "owls"]


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_model(3, image_size=64, weights="none", head=HeadConfig(dense=(16,), dropout=0.0))


def _image(seed: int = 0, size: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_predictions_sum_to_one_for_every_kind_of_input(model, tmp_path):
    array = _image()
    path = tmp_path / "x.png"
    Image.fromarray(array).save(path)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    inputs = [str(path), path, buffer.getvalue(), io.BytesIO(buffer.getvalue()), Image.fromarray(array), array]
    predictions = predict(model, inputs, CLASSES)
    assert len(predictions) == len(inputs)
    for p in predictions:
        assert list(p.probabilities) == CLASSES
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.top_class == max(p.probabilities, key=p.probabilities.__getitem__)
        assert [name for name, _ in p.top_k(2)] == sorted(CLASSES, key=p.probabilities.__getitem__, reverse=True)[:2]
    # Every input form of the same image gives the same answer.
    first = np.array(list(predictions[0].probabilities.values()))
    for p in predictions[1:]:
        np.testing.assert_allclose(list(p.probabilities.values()), first, atol=1e-5)


def test_grayscale_and_rgba_inputs_are_converted(model):
    gray = Image.fromarray(_image()[..., 0], "L")
    rgba = Image.fromarray(np.dstack([_image(), np.full((50, 50), 0, np.uint8)]), "RGBA")
    assert to_pixels(gray, 64).shape == (64, 64, 3)
    assert (to_pixels(rgba, 64) == 255).all()  # fully transparent -> white
    for p in predict(model, [gray, rgba], CLASSES):
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_non_image_upload_is_a_clear_error(model):
    with pytest.raises(ImageProblem, match="not an image"):
        predict(model, [b"<html>not a picture</html>"], CLASSES)


def _encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header (with a valid checksum) claims width x height pixels."""
    data = bytearray(_encoded(Image.new("RGB", (8, 8), (90, 90, 90))))
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts after signature, length and type
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# tlcore.imageio silences this warning at import; pytest restores the filters for each test.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_image_headers_are_refused_before_decoding_and_named(model):
    sources = [
        ("bomb.png", png_claiming(100_000, 100_000)),
        ("big.png", png_claiming(12_000, 10_000)),
        ("ok.png", _encoded(Image.fromarray(_image()))),
    ]
    explanations, problems = explain(model, None, sources, CLASSES)
    assert [e.name for e in explanations] == ["ok.png"]
    assert dict(problems) == {
        "bomb.png": "too large (over 100 megapixels; decompression-bomb guard)",  # Pillow's own guard, at open
        "big.png": "too large (12000x10000 = 120.0 megapixels; limit 100)",  # ours, before any pixel is decoded
    }
    _, problems = explain(model, None, [("big.png", png_claiming(400, 300))], CLASSES, max_pixels=100_000)
    assert problems == [("big.png", "too large (400x300 = 0.1 megapixels; limit 0.1)")]


def test_a_large_allowed_photo_is_resized_and_predicted(model):
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8)).resize((3000, 2000))
    data = _encoded(photo, "JPEG", quality=80)
    assert to_pixels(data, 64).shape == (64, 64, 3)
    (explanation,), problems = explain(model, None, [("photo.jpg", data)], CLASSES)
    assert problems == [] and explanation.display.shape == (224, 224, 3)
    assert sum(explanation.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_web_pages_and_empty_uploads_are_named_with_the_reason(model):
    sources: list[tuple[str, ImageInput]] = [
        ("page.png", b"<!DOCTYPE html><html><body>404</body></html>"),
        ("empty.png", b""),
        ("empty-stream.jpg", io.BytesIO(b"")),
        ("cut.png", _encoded(Image.fromarray(_image()))[:40]),
    ]
    explanations, problems = explain(model, None, sources, CLASSES)
    assert explanations == []
    reasons = dict(problems)
    assert reasons["page.png"].startswith("not an image")
    assert reasons["empty.png"] == reasons["empty-stream.jpg"] == "empty file (0 bytes)"
    assert reasons["cut.png"].startswith("truncated or corrupt")


def test_16_bit_png_and_cmyk_jpeg_are_converted_and_predicted(model):
    deep = np.zeros((40, 40), dtype=np.uint16)
    deep[:, 20:] = 65535
    cmyk = Image.new("CMYK", (40, 40), (255, 0, 0, 0))  # pure cyan ink
    sources = [("deep.png", _encoded(Image.fromarray(deep))), ("cmyk.jpg", _encoded(cmyk, "JPEG", quality=95))]
    assert Image.open(io.BytesIO(sources[0][1])).mode.startswith("I")  # really 16-bit on disk
    assert Image.open(io.BytesIO(sources[1][1])).mode == "CMYK"
    explanations, problems = explain(model, None, sources, CLASSES)
    assert problems == [] and [e.name for e in explanations] == ["deep.png", "cmyk.jpg"]
    gray = to_pixels(sources[0][1], 40)
    assert (gray[:, :18] == 0).all() and (gray[:, 22:] == 255).all()  # 16-bit range scaled to 8 bits
    np.testing.assert_allclose(to_pixels(sources[1][1], 40).reshape(-1, 3).mean(axis=0), (0, 255, 255), atol=8)
    for e in explanations:
        assert sum(e.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_sigmoid_head_reports_two_probabilities():
    m = build_model(2, image_size=32, weights="none", head=HeadConfig(output="sigmoid", dense=()))
    probs = probabilities(m, np.zeros((3, 32, 32, 3)))
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def _independent_gradcam(
    model: keras.Model, pixels: np.ndarray, class_index: int, layer_name: str, of_probability: bool = False
) -> np.ndarray:
    """Grad-CAM by applying the model's layers one by one under a tape, the output layer's logits by hand.

    The score is the class's logit (a sigmoid head's negative class: the negated logit), or with
    of_probability its probability, as tlcore computed Grad-CAM before.
    """
    x = tf.convert_to_tensor(pixels[None].astype("float32"))
    *body, output_layer = model.layers[1:]
    with tf.GradientTape() as tape:
        activations = None
        for layer in body:
            x = layer(x, training=False)
            if layer.name == layer_name:
                activations = x
                tape.watch(activations)
        logits = tf.matmul(x, output_layer.kernel) + output_layer.bias
        if logits.shape[-1] == 1:  # sigmoid: class 1's logit is z, class 0's is -z
            logit = logits[:, 0] if class_index == 1 else -logits[:, 0]
            score = tf.sigmoid(logit) if of_probability else logit
        else:
            score = tf.nn.softmax(logits)[:, class_index] if of_probability else logits[:, class_index]
    assert activations is not None  # layer_name is one of the body's layers
    grads = tape.gradient(score, activations)[0].numpy()
    acts = activations[0].numpy()
    cam = np.maximum((acts * grads.mean(axis=(0, 1))).sum(axis=-1), 0)
    return cam / cam.max() if cam.max() > 0 else cam


def test_gradcam_matches_an_independent_computation_after_reload(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = load_model(str(path))
    pixels = _image(3, 64).astype("float32")
    for m in (model, reloaded):
        heatmap, cls = gradcam(m, pixels, class_index=1)
        assert cls == 1 and heatmap.shape == (4, 4)  # 64 px -> block5_conv3 is 4x4
        assert heatmap.dtype == np.float32 and heatmap.min() >= 0.0 and heatmap.max() <= 1.0
        expected = _independent_gradcam(m, pixels, 1, "block5_conv3")
        np.testing.assert_allclose(heatmap, expected, atol=1e-4)
    np.testing.assert_allclose(gradcam(reloaded, pixels, 1)[0], gradcam(model, pixels, 1)[0], atol=1e-5)
    # No class given: the predicted one is explained.
    _, predicted = gradcam(model, pixels)
    assert predicted == int(np.argmax(model.predict_on_batch(pixels[None])))
    up = upsample_heatmap(heatmap, 64)
    assert up.shape == (64, 64) and up.min() >= 0.0 and up.max() <= 1.0


def test_a_sigmoid_heads_maps_match_an_independent_computation_the_negative_class_negating_the_score(tmp_path):
    keras.utils.set_random_seed(1)
    sigmoid = build_model(2, image_size=64, weights="none", head=HeadConfig(dense=(16,), dropout=0.0, output="sigmoid"))
    sigmoid.save(tmp_path / "s.keras")
    reloaded = load_model(str(tmp_path / "s.keras"))
    pixels = _image(5, 64).astype("float32")
    for m in (sigmoid, reloaded):
        maps = {}
        for class_index in (0, 1):
            maps[class_index], cls = gradcam(m, pixels, class_index=class_index)
            assert cls == class_index
            np.testing.assert_allclose(
                maps[class_index], _independent_gradcam(m, pixels, class_index, "block5_conv3"), atol=1e-4
            )
        # Negating the score flips every channel's weight: the two maps are not the same map.
        assert maps[0].max() > 0 or maps[1].max() > 0
        assert not np.allclose(maps[0], maps[1], atol=1e-3)
    # No class given: class 1 when the logit is >= 0, as for p >= 0.5.
    p = float(sigmoid.predict_on_batch(pixels[None])[0, 0])
    assert gradcam(sigmoid, pixels)[1] == int(p >= 0.5)


def test_a_saturated_head_keeps_its_map_where_the_probabilitys_gradient_vanishes(model):
    """The output bias shifts every logit of a class alike: the gradient of a logit does not see it,
    while the probability saturates to 1.0 in float32 and its gradient is exactly zero."""
    pixels = _image(3, 64).astype("float32")
    before = gradcam(model, pixels, class_index=1)[0]
    confident = keras.models.clone_model(model)
    confident.set_weights(model.get_weights())
    output_layer = confident.layers[-1]
    output_layer.bias.assign(output_layer.bias.numpy() + np.array([0.0, 200.0, 0.0], dtype="float32"))
    assert probabilities(confident, pixels[None])[0, 1] > 0.999
    heatmap, _ = gradcam(confident, pixels, class_index=1)
    assert heatmap.max() == pytest.approx(1.0)  # not blank
    np.testing.assert_allclose(heatmap, before, atol=1e-4)
    assert not _independent_gradcam(confident, pixels, 1, "block5_conv3", of_probability=True).any()


def _patch_images(n: int, size: int, seed: int):
    """Class 1 has a bright green square somewhere; class 0 is noise only."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 120, (n, size, size, 3)).astype(np.uint8)
    labels = np.arange(n) % 2
    boxes: list[tuple[int, int] | None] = []
    for i in range(n):
        if labels[i] == 1:
            r, c = rng.integers(0, size - 16, 2)
            images[i, r : r + 16, c : c + 16] = (40, 230, 40)
            boxes.append((r, c))
        else:
            boxes.append(None)
    return images, labels, boxes


def test_gradcam_peak_falls_inside_the_patch_the_model_learned(tmp_path):
    keras.utils.set_random_seed(0)
    size = 64
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    patch_model = keras.Model(inputs, outputs)
    patch_model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels, _ = _patch_images(256, size, seed=1)
    dataset = tf.data.Dataset.from_tensor_slices((images.astype("float32"), labels)).batch(32)
    patch_model.fit(dataset, epochs=8, verbose=0, shuffle=False)

    patch_model.save(tmp_path / "patch.keras")
    reloaded = keras.models.load_model(tmp_path / "patch.keras")

    test_images, test_labels, boxes = _patch_images(40, size, seed=2)
    for which, m in (("fresh", patch_model), ("reloaded", reloaded)):
        hits = total = 0
        for image, label, box in zip(test_images, test_labels, boxes):
            if label != 1:
                continue
            heatmap, _ = gradcam(m, image, class_index=1, layer_name="last_conv")
            peak = np.unravel_index(np.argmax(upsample_heatmap(heatmap, size)), (size, size))
            r, c = box
            hits += int(r - 2 <= peak[0] < r + 18 and c - 2 <= peak[1] < c + 18)
            total += 1
        assert total == 20
        print(f"Grad-CAM peak inside the patch ({which}): {hits}/{total}")
        assert hits >= 0.8 * total, f"Grad-CAM peak inside the patch ({which}) for only {hits}/{total} images"


def test_evaluate_confusion_matrix_and_top_losses(model, tmp_path):
    images = np.stack([_image(i, 64) for i in range(7)])
    labels = np.array([0, 0, 1, 1, 2, 2, 2], dtype=np.int32)
    paths = [tmp_path / f"{i}.png" for i in range(7)]
    result = evaluate(model, ImageSet(paths, labels, 64, images), CLASSES, batch_size=3)
    assert result.confusion.shape == (3, 3) and result.confusion.sum() == 7
    assert list(result.confusion.sum(axis=1)) == [2, 2, 3]
    predicted = model.predict_on_batch(images.astype("float32")).argmax(axis=1)
    assert result.accuracy == pytest.approx(float((predicted == labels).mean()))
    per_class = result.per_class_accuracy()
    assert per_class["owls"] == pytest.approx(float((predicted[4:] == 2).mean()))
    top = result.top_losses(3)
    assert len(top) == 3 and [t["loss"] for t in top] == sorted((t["loss"] for t in top), reverse=True)
    worst = int(np.argmax(result.losses))
    assert top[0]["path"] == paths[worst] and top[0]["true"] == CLASSES[labels[worst]]
    # A confusion cell's images: exactly that true and predicted class, highest loss first; every image in one.
    cells = [(t, p) for t in CLASSES for p in CLASSES]
    assert sum(len(result.cell(t, p)) for t, p in cells) == 7
    for t, p in cells:
        items = result.cell(t, p)
        assert len(items) == result.confusion[CLASSES.index(t), CLASSES.index(p)]
        assert all(item["true"] == t and item["predicted"] == p for item in items)
        assert [item["loss"] for item in items] == sorted((item["loss"] for item in items), reverse=True)
