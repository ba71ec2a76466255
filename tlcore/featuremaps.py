"""Feature maps as pictures: which VGG16 layer to look at, and many maps laid out as one RGB mosaic.

TensorFlow-free (numpy and matplotlib's colour maps): the activations come from
`tlcore.tf.activations.feature_maps`; a page, a notebook or the command line shows
what this module makes of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from tlcore.backbone_facts import VGG16_CHAIN, VGG16_CONVS

LAYER_NAMES: tuple[str, ...] = tuple(layer.name for layer in VGG16_CHAIN)  # the 18 layers a freeze point counts
FIRST_CONV = VGG16_CONVS[0].name  # block1_conv1: what "nothing frozen" shows
DEFAULT_TOP = 16  # maps shown: a 4 x 4 grid
MAP_COLORMAP = "viridis"  # dark = quiet, yellow = the map's strongest response; readable in greyscale too
MIN_CELL = 96  # px: a map smaller than this is blown up by a whole factor (nearest neighbour) to at least this
GAP = 3  # px of white between cells
GAP_COLOUR = 255


def check_layer(name: str) -> str:
    """The layer name, if VGG16 has it.

    Raises:
        ValueError: naming the layer and listing every layer VGG16 has.
    """
    if name not in LAYER_NAMES:
        raise ValueError(f"VGG16 has no layer {name!r}. Its layers: {', '.join(LAYER_NAMES)}")
    return name


def default_layer(freeze_at: int) -> str:
    """The layer at the freeze point: the last frozen one; the first conv layer when nothing is frozen."""
    if not 0 <= freeze_at <= len(LAYER_NAMES):
        raise ValueError(f"freeze_at must be between 0 and {len(LAYER_NAMES)}. Received: freeze_at={freeze_at}")
    return LAYER_NAMES[freeze_at - 1] if freeze_at else FIRST_CONV


def default_layer_note(freeze_at: int) -> str:
    """Why `default_layer(freeze_at)` is the layer shown, in a sentence."""
    layer = default_layer(freeze_at)
    if freeze_at == 0:
        return f"Nothing is frozen at freeze point 0 (every layer trains): showing the first conv layer, {layer}."
    return f"{layer} is the last of the {freeze_at} frozen layers at freeze point {freeze_at}."


def is_frozen(layer: str, freeze_at: int) -> bool:
    """Whether a layer keeps its weights during training at this freeze point."""
    return LAYER_NAMES.index(check_layer(layer)) < freeze_at


def shape_text(shape: Sequence[int]) -> str:
    """(32, 32, 256) -> '32 × 32 × 256' (height × width × channels)."""
    return " × ".join(str(int(side)) for side in shape)


def normalise(feature_map: np.ndarray) -> np.ndarray:
    """A map scaled on its own to [0, 1] (lowest to highest value); a flat map is all 0."""
    values = np.asarray(feature_map, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    if high - low <= 0:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of a near-square grid for n maps, never more rows than columns."""
    columns = max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / columns)), columns


def upscale_factor(side: int, min_cell: int = MIN_CELL) -> int:
    """The whole factor that blows a side-px map up to at least min_cell px (1 when it is already that big)."""
    return max(1, math.ceil(min_cell / max(1, side)))


def mosaic(
    maps: np.ndarray, columns: int | None = None, min_cell: int = MIN_CELL, gap: int = GAP, colormap: str = MAP_COLORMAP
) -> np.ndarray:
    """n feature maps as one RGB image: a grid of cells, each map normalised on its own and coloured.

    Each map is blown up by a whole factor with nearest neighbour, so every
    activation stays a sharp square (a 4 x 4 map shows 16 blocks, not a blur).

    Args:
        maps: (n, h, w) floats, in the order to show them (row by row).
        columns: cells per row; a near-square grid by default.

    Returns:
        uint8 (rows * cell + (rows - 1) * gap, columns * cell + (columns - 1) * gap, 3), white between cells
        and in empty cells; cell = the map's side times `upscale_factor`.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"maps must be (n, h, w) with n >= 1. Received shape {maps.shape}")
    n, h, w = maps.shape
    rows, columns = grid_shape(n) if columns is None else (math.ceil(n / columns), columns)
    factor = upscale_factor(max(h, w), min_cell)
    cell_h, cell_w = h * factor, w * factor
    image = np.full(
        (rows * cell_h + (rows - 1) * gap, columns * cell_w + (columns - 1) * gap, 3), GAP_COLOUR, dtype=np.uint8
    )
    # matplotlib is imported where it is used: it takes half a second, and every CLI command imports this module.
    from matplotlib import colormaps

    colour = colormaps[colormap]
    for i, feature_map in enumerate(maps):
        row, column = divmod(i, columns)
        big = np.repeat(np.repeat(normalise(feature_map), factor, axis=0), factor, axis=1)
        top, left = row * (cell_h + gap), column * (cell_w + gap)
        image[top : top + cell_h, left : left + cell_w] = np.rint(colour(big)[..., :3] * 255).astype(np.uint8)
    return image


def panels_figure(image: np.ndarray, panels: Sequence[tuple[str, np.ndarray]], heading: str) -> Figure:
    """The input image, then each (title, mosaic) side by side under one heading: for a file or a notebook.

    A bare matplotlib Figure (no pyplot state): save it with `figure.savefig(path)`.
    """
    from matplotlib.figure import Figure

    widths = [1.0] + [mosaic.shape[1] / mosaic.shape[0] for _, mosaic in panels]
    figure = Figure(figsize=(1.2 + 4.2 * sum(widths), 5.2), layout="constrained")
    axes = figure.subplots(1, len(widths), width_ratios=widths)
    figure.suptitle(heading, fontsize=15)
    for ax, (title, picture) in zip(axes, [(f"the image ({image.shape[0]} px)", image), *panels]):
        ax.imshow(picture, interpolation="nearest")
        ax.set_title(title, fontsize=13)
        ax.set_axis_off()
    return figure
