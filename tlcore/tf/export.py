"""Export a run's model (SavedModel, TFLite float32 or int8) and check it at once against the run's .keras model.

SavedModel is one serving signature saved by TensorFlow (`_save_serving`); TFLite comes from TensorFlow's
converter, int8 by dynamic-range quantization (`tf.lite.Optimize.DEFAULT` without a representative dataset:
int8 weights, float activations).
The check runs the run's validation images through both models; the types and the card are `tlcore.exports`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tlcore.exports import (
    EXPORTS_DIR,
    FORMATS,
    LATENCY_CALLS,
    SAVEDMODEL,
    TFLITE_FILE,
    TFLITE_INT8,
    ExportCheck,
    ExportResult,
    write_card,
)
from tlcore.run_folder import MODEL_FILE, load_record
from tlcore.tf.inference import image_size_of, run_validation_images
from tlcore.tf.model import load_run_model

THREADS = 2  # the TFLite interpreter's threads (the .keras model runs on TensorFlow's own pool)
WARM_UP_CALLS = 5

Predict = Callable[[np.ndarray], np.ndarray]  # one image [1, S, S, 3] float32 -> its output row(s)


def _write(model: keras.Model, fmt: str, folder: Path) -> None:
    if fmt == SAVEDMODEL:
        _save_serving(model, folder)
        return
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fmt == TFLITE_INT8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative dataset: dynamic range
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):  # the converter's own SavedModel prints its endpoints
        flatbuffer = converter.convert()
    (folder / TFLITE_FILE).write_bytes(flatbuffer)


def _save_serving(model: keras.Model, folder: Path) -> None:
    """A SavedModel with one signature, serving_default: images [n, S, S, 3] float32 in, probabilities out.

    What `model.export` writes, but each weight stored once: Keras' export tracks both its variable wrappers
    and the tf.Variables inside them, so every weight was written twice (a 119 MB folder for a 59 MB model;
    keras-team/keras#23553). Tracking the tf.Variables alone, as the traced function captures them, stores
    each once. When `model.export`'s folder is the .keras file's size, this can go.
    """
    size = image_size_of(model)

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="image")])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"output_0": model(images, training=False)}

    module = tf.Module()
    module.weights = [weight.value for weight in model.weights]  # the tf.Variables `serve` captures
    module.serve = serve
    tf.saved_model.save(module, str(folder), signatures={"serving_default": serve})


def _loaded(fmt: str, folder: Path) -> Predict:
    """The export, loaded back as a user would load it: one image in, its output out."""
    if fmt == SAVEDMODEL:
        serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
        return lambda x: next(iter(serve(tf.constant(x)).values())).numpy()
    interpreter = tf.lite.Interpreter(model_path=str(folder / TFLITE_FILE), num_threads=THREADS)
    interpreter.allocate_tensors()
    given, output = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def predict(x: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(given, x)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(output))

    return predict


def _as_probabilities(out: np.ndarray) -> np.ndarray:
    """Rows of class probabilities; a sigmoid head's single output p as [1 - p, p] (as tlcore.tf.inference)."""
    out = np.asarray(out, dtype=np.float64).reshape(len(out), -1)
    return np.concatenate([1.0 - out, out], axis=-1) if out.shape[-1] == 1 else out


def _median_ms(predict: Predict, image: np.ndarray) -> float:
    for _ in range(WARM_UP_CALLS):
        predict(image)
    times = []
    for _ in range(LATENCY_CALLS):
        started = time.perf_counter()
        predict(image)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def export_run(run_dir: str | os.PathLike, fmt: str, out: str | os.PathLike | None = None) -> ExportResult:
    """Export a finished run's model as `fmt` into the folder `out` (default: the run's exports/<fmt>/), check it
    on the run's validation images against the .keras model, and write its card.

    Raises:
        FileNotFoundError: not a run folder, or no saved model.
        ValueError: an unknown format, or the run's validation images cannot be read.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    started = time.perf_counter()
    run_dir = Path(run_dir)
    record = load_record(run_dir)
    model = load_run_model(run_dir)
    size = image_size_of(model)
    images, _ = run_validation_images(record, size)
    folder = Path(out) if out is not None else run_dir / EXPORTS_DIR / fmt
    if folder.exists():
        shutil.rmtree(folder)  # an export is made whole again, never mixed with an older one's files
    _write(model, fmt, folder)
    size_bytes = _size(folder)

    predict = _loaded(fmt, folder)
    pixels = images.astype(np.float32)
    exported = np.concatenate([_as_probabilities(predict(pixels[i : i + 1])) for i in range(len(pixels))])
    reference = np.concatenate(
        [_as_probabilities(model(pixels[i : i + 1], training=False)) for i in range(len(pixels))]
    )
    check = ExportCheck(
        images=len(pixels),
        same_top_class=int(np.sum(exported.argmax(axis=1) == reference.argmax(axis=1))),
        max_abs_dp=float(np.max(np.abs(exported - reference))),
        export_ms=_median_ms(predict, pixels[:1]),
        keras_ms=_median_ms(lambda x: keras.ops.convert_to_numpy(model(x, training=False)), pixels[:1]),
    )
    result = ExportResult(
        run_id=record.run_id,
        format=fmt,
        path=folder,
        size_bytes=size_bytes,
        weights_bytes=4 * sum(int(np.prod(weight.shape)) for weight in model.weights),
        keras_size_bytes=(run_dir / MODEL_FILE).stat().st_size,
        class_names=tuple(record.class_names or ()),
        image_size=size,
        check=check,
        seconds=time.perf_counter() - started,
    )
    write_card(result)
    return result
