"""Data preparation: decoded images (raw RGB 0..255) held per split, served as seeded, batched tf.data datasets.

Images are decoded once with Pillow (`tlcore.imageio`), in memory when they fit a budget, else batch by batch
from disk. Datasets are built over indices (`epoch_orders`), so images in memory, images on disk and cached
features (`tlcore.tf.compiled_epochs`) are visited in the same order for the same seed and epoch.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tlcore.data import TRAIN, VALIDATION, DatasetInfo
from tlcore.imageio import DEFAULT_MAX_PIXELS, ImageProblem, load_array
from tlcore.progress import ProgressFn, StepProgress, StopFlag

log = logging.getLogger(__name__)

DEFAULT_IMAGE_BUDGET_BYTES = 1 << 30
DecodeProgressFn = Callable[[int, int], None]


@dataclass
class ImageSet:
    """The images of one split at one size: in memory (`images`) or on disk (`paths`)."""

    paths: list[Path]
    labels: np.ndarray  # int32, shape (n,)
    image_size: int
    images: np.ndarray | None = None  # uint8 (n, size, size, 3) when in memory

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def batch_arrays(self, indices: np.ndarray) -> np.ndarray:
        """uint8 pixels of the given images (decoded now when not in memory)."""
        if self.images is not None:
            return self.images[indices]
        return np.stack([_load_or_blank(self.paths[i], self.image_size) for i in indices])


def load_split(
    info: DatasetInfo,
    split: str,
    image_size: int,
    budget_bytes: int = DEFAULT_IMAGE_BUDGET_BYTES,
    progress: DecodeProgressFn | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageSet:
    """Decode a split at image_size, in memory if it fits budget_bytes."""
    paths, labels = info.items(split)
    image_set = ImageSet(paths, np.asarray(labels, dtype=np.int32), image_size)
    if len(paths) * image_size * image_size * 3 <= budget_bytes:
        image_set.images = decode_all(paths, image_size, progress, max_pixels)
    return image_set


def decode_all(
    paths: list[Path], image_size: int, progress: DecodeProgressFn | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode many images in parallel into one uint8 (n, size, size, 3) array."""
    out = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    done = 0
    workers = min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, array in enumerate(pool.map(lambda p: _load_or_blank(p, image_size, max_pixels), paths)):
            out[i] = array
            done += 1
            if progress and (done % 16 == 0 or done == len(paths)):
                progress(done, len(paths))
    return out


def _load_or_blank(path: Path, image_size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    # The scan verified every file; one that broke since must not kill a run.
    try:
        return load_array(path, image_size, max_pixels)
    except ImageProblem as err:
        log.warning("Using a blank image for %s: %s", path, err)
        return np.full((image_size, image_size, 3), 127, dtype=np.uint8)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order in which the n items are visited in an epoch (same seed, same order)."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def epoch_orders(n: int, seed: int, first_epoch: int, epochs: int, shuffle: bool = True) -> np.ndarray:
    """The orders of `epochs` consecutive epochs from first_epoch, one row per epoch."""
    return np.stack([epoch_order(n, seed, epoch, shuffle) for epoch in range(first_epoch, first_epoch + epochs)])


def _index_batches(order: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Batches of indices; a 2-D order is one epoch per row, each epoch batched on its own
    (its last batch may be short), so one dataset can feed several epochs of `fit`."""
    order = np.asarray(order, dtype=np.int64)
    if order.ndim == 2 and len(order) == 1:
        order = order[0]  # one epoch: keep the dataset's cardinality known (Keras reads it)
    if order.ndim == 1:
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
    return tf.data.Dataset.from_tensor_slices(order).flat_map(
        lambda row: tf.data.Dataset.from_tensor_slices(row).batch(batch_size)
    )


def whole_batches(orders: np.ndarray, batch_size: int) -> np.ndarray:
    """Each epoch's order (the last axis) cut to whole batches; with fewer items than a batch, all of them.

    What `drop_remainder` keeps: a short last batch has a noisier loss, and on the end-to-end route makes Keras
    trace the step again.
    """
    n = orders.shape[-1]
    return orders[..., : (n // batch_size) * batch_size or n]


def _no_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    # On small CPUs tf.data autotuning's iterator teardown was measured to leave both cores idle for seconds
    # between epochs.
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return dataset.with_options(options)


def make_dataset(
    image_set: ImageSet,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    prefetch: int = 2,
    epochs: int = 1,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A tf.data dataset of (float32 pixels 0..255, int32 labels) batches for `epochs` epochs from `epoch`.

    Each epoch's order is `epoch_order(n, seed, epoch, shuffle)`, so a dataset
    built for the same epoch and seed always yields the same batches.
    `drop_remainder`: each epoch's whole batches only (`whole_batches`).
    """
    orders = epoch_orders(len(image_set), seed, epoch, epochs, shuffle)
    index_batches = _index_batches(whole_batches(orders, batch_size) if drop_remainder else orders, batch_size)
    labels = tf.constant(image_set.labels)
    if image_set.in_memory:
        pixels = tf.constant(image_set.images)
        dataset = index_batches.map(lambda idx: (tf.cast(tf.gather(pixels, idx), tf.float32), tf.gather(labels, idx)))
    else:
        size = image_set.image_size

        def load(idx: np.ndarray) -> np.ndarray:
            return image_set.batch_arrays(idx)

        def load_batch(idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            x = tf.numpy_function(load, [idx], tf.uint8, stateful=False)
            x.set_shape([None, size, size, 3])
            return tf.cast(x, tf.float32), tf.gather(labels, idx)

        dataset = index_batches.map(load_batch)
    return _no_autotune(dataset.prefetch(prefetch))


def predict_outputs(
    model: keras.Model,
    images: ImageSet,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
    stop: StopFlag | None = None,
) -> list[np.ndarray] | None:
    """One forward pass over the images: each of the model's outputs for every image, in order.

    Args:
        model: a Keras model taking raw pixels; one output or several (several depths in one pass).
        progress: called with the images done after each batch.
        stop: read before each batch; None comes back when it is set.
    """
    per_output: list[list[np.ndarray]] = [[] for _ in model.outputs]
    done = 0
    for x, _ in make_dataset(images, batch_size):
        if stop is not None and stop.is_set():
            return None
        batch = model.predict_on_batch(x)
        for chunks, out in zip(per_output, [batch] if isinstance(batch, np.ndarray) else batch):
            chunks.append(np.asarray(out, dtype=np.float32))
        done += int(x.shape[0])
        if progress:
            progress(done)
    return [
        np.concatenate(chunks) if chunks else np.zeros((0, *out.shape[1:]), np.float32)
        for chunks, out in zip(per_output, model.outputs)
    ]


@dataclass
class PreparedData:
    """Decoded train and validation images of a dataset at one image size."""

    info: DatasetInfo
    train: ImageSet
    validation: ImageSet

    @property
    def class_names(self) -> list[str]:
        return self.info.class_names

    @functools.cached_property
    def fingerprint(self) -> str:
        """The dataset's files (paths, sizes, modification times) as a short hash, read once."""
        return self.info.fingerprint()


def prepare_data(
    info: DatasetInfo,
    image_size: int,
    progress: ProgressFn | None = None,
    budget_bytes: int = DEFAULT_IMAGE_BUDGET_BYTES,
) -> PreparedData:
    """Decode both splits once (in memory when they fit budget_bytes)."""
    total = info.num_images(TRAIN) + info.num_images(VALIDATION)
    offset = 0

    def report(split_offset: int) -> DecodeProgressFn:
        return lambda done, _n: progress and progress(StepProgress("decode", split_offset + done, total))

    train_set = load_split(info, TRAIN, image_size, budget_bytes, report(offset))
    offset += len(train_set)
    val_set = load_split(info, VALIDATION, image_size, budget_bytes, report(offset))
    return PreparedData(info, train_set, val_set)
