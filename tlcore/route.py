"""The route a training phase takes: features cached at the freeze point, or end to end (no TensorFlow).

The frozen prefix computes the same activations every epoch when the pixels do not change: then
they are computed once and only the layers above train ("cached"); otherwise every epoch runs the
whole model ("end_to_end"). run.json lists it per phase as "routes" ("paths" before); history.csv's column is "path".
"""

from __future__ import annotations

from tlcore.config import TrainConfig

CACHED, END_TO_END = "cached", "end_to_end"
ROUTE_NAMES = {CACHED: "cached features", END_TO_END: "end to end"}  # in words, for people
DEFAULT_FEATURE_BUDGET_BYTES = 1 << 30


def planned_route(
    config: TrainConfig, freeze_at: int, num_images: int, feature_budget_bytes: int = DEFAULT_FEATURE_BUDGET_BYTES
) -> tuple[str, str]:
    """The route training will choose for `num_images` images (both splits), from VGG16's arithmetic: what
    the estimate, the sweep's shared pass, the device strategy and the LR finder's caption must agree on."""
    from tlcore.architecture import boundary_floats

    floats = boundary_floats(config.image_size, freeze_at)
    return choose_route(config, freeze_at, floats, num_images, feature_budget_bytes)


def choose_route(
    config: TrainConfig,
    freeze_at: int,
    boundary_floats_per_image: int | None = None,
    num_images: int | None = None,
    feature_budget_bytes: int = DEFAULT_FEATURE_BUDGET_BYTES,
) -> tuple[str, str]:
    """("cached" | "end_to_end", why): the route a phase with this freeze point takes.

    Training asks here with the built model's sizes, everything else through `planned_route`. Without the
    features' size (floats per image at the freeze point, and images) the memory budget is not checked.
    """
    if not config.cache_features:
        return END_TO_END, "feature caching is turned off"
    if config.augment.enabled:
        return END_TO_END, "augmentation is on, so every epoch sees different pixels"
    if freeze_at == 0:
        return END_TO_END, "nothing is frozen, so there is nothing to cache"
    if boundary_floats_per_image is None or num_images is None:
        return CACHED, "the frozen layers are computed once; each epoch trains only the layers above"
    need = boundary_floats_per_image * 4 * num_images
    if need > feature_budget_bytes:
        return END_TO_END, (
            f"the features at the freeze point need {need / 2**20:.0f} MiB, "
            f"over the {feature_budget_bytes / 2**20:.0f} MiB budget"
        )
    return CACHED, (
        f"the frozen layers are computed once ({need / 2**20:.1f} MiB of features); "
        "each epoch trains only the layers above"
    )
