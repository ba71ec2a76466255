"""Tiny VGG16 weights files for tests: the right HDF5 layout and shapes, no data written (a few KB).

h5py allocates a dataset's storage only when data is written, so a file with
VGG16's 13 kernels and biases costs nothing; read back, every value is 0.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from tlcore.backbones import get_backbone

VGG = get_backbone("vgg16")


def write_keras3(path: Path, layers=None) -> Path:
    """The layout Keras 3's `save_weights` writes: layers/conv2d{,_1,...}/vars/{0,1}, named in an attribute.

    Args:
        layers: (name, shapes) per layer with weights; VGG16's own by default.
    """
    layers = VGG.weight_layers if layers is None else layers
    with h5py.File(path, "w") as f:
        f.create_group("vars")
        f.create_group("layers/input_layer/vars").attrs["name"] = "input_layer"
        for i, (name, shapes) in enumerate(layers):
            group = f.create_group(f"layers/conv2d{f'_{i}' if i else ''}/vars")
            group.attrs["name"] = name
            for j, shape in enumerate(shapes):
                group.create_dataset(str(j), shape=shape, dtype="float32")
    return path


def write_legacy(path: Path, layers=None) -> Path:
    """The layout of the published vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 (layer_names, weight_names)."""
    layers = VGG.weight_layers if layers is None else layers
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"input_1"] + [name.encode() for name, _ in layers]
        f.create_group("input_1").attrs["weight_names"] = []
        for name, shapes in layers:
            group = f.create_group(name)
            weight_names = [f"{name}_{kind}_1:0" for kind in "Wb"][: len(shapes)]
            group.attrs["weight_names"] = [w.encode() for w in weight_names]
            for weight_name, shape in zip(weight_names, shapes):
                group.create_dataset(weight_name, shape=shape, dtype="float32")
    return path


def write_filled(path: Path, bias: float = 0.1) -> Path:
    """A Keras 3 layout file whose weights are not zero, still a few KB: every array is its HDF5 fill value.

    Each kernel holds 1 / fan-in (a layer averages its inputs, so activations keep their scale) and each
    bias `bias`; a file written with another `bias` has other content. Weights that are not zero give
    every layer a size (||W0|| > 0) that a change can be measured against.
    """
    with h5py.File(path, "w") as f:
        f.create_group("vars")
        f.create_group("layers/input_layer/vars").attrs["name"] = "input_layer"
        for i, (name, (kernel, bias_shape)) in enumerate(VGG.weight_layers):
            group = f.create_group(f"layers/conv2d{f'_{i}' if i else ''}/vars")
            group.attrs["name"] = name
            fan_in = kernel[0] * kernel[1] * kernel[2]
            group.create_dataset("0", shape=kernel, dtype="float32", fillvalue=1.0 / fan_in)
            group.create_dataset("1", shape=bias_shape, dtype="float32", fillvalue=bias)
    return path
