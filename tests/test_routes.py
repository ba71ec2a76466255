"""The route a phase will take, planned before anything is built (tlcore.route.planned_route): the estimate,
the sweep's shared pass, the device strategy and the LR finder's caption agree with training above the
feature budget too."""

from __future__ import annotations

from tlcore.architecture import boundary_floats
from tlcore.config import TrainConfig
from tlcore.estimate import estimate
from tlcore.route import CACHED, DEFAULT_FEATURE_BUDGET_BYTES, END_TO_END, planned_route


def test_the_features_at_a_freeze_point_are_vgg16s_arithmetic():
    assert boundary_floats(224, 10) == 28 * 28 * 256  # block3_pool
    assert boundary_floats(128, 18) == 4 * 4 * 512  # block5_pool
    assert boundary_floats(96, 1) == 96 * 96 * 64  # block1_conv1
    assert boundary_floats(128, 0) == 0


def test_above_the_feature_budget_the_plan_and_the_estimate_go_end_to_end():
    config = TrainConfig(image_size=224, freeze_at=10)
    per_image_bytes = boundary_floats(224, 10) * 4
    fits = DEFAULT_FEATURE_BUDGET_BYTES // per_image_bytes
    assert planned_route(config, 10, fits)[0] == CACHED
    route, why = planned_route(config, 10, fits + 1)
    assert route == END_TO_END and "over the 1024 MiB budget" in why
    # The Train page's estimate said "cached" here and estimated the extraction while the run went end to end.
    small, large = estimate(config, 200, 50, 100.0), estimate(config, fits, 1, 100.0)
    assert small.route == CACHED and small.extract_seconds > 0
    assert large.route == END_TO_END and large.extract_seconds == 0


def test_the_features_match_the_layer_tables_shapes():
    """The layer table is checked against a built Keras model (test_architecture): the same sizes here."""
    import math

    from tlcore.architecture import layer_table

    for size in (32, 96, 224):
        table = layer_table(2, size)
        shapes = table.dropna(subset=["freeze_index"]).set_index("freeze_index")["output_shape"]
        for freeze_at, shape in shapes.items():
            assert boundary_floats(size, int(freeze_at)) == math.prod(int(n) for n in shape.split("x"))
