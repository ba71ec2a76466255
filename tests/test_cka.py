"""Linear CKA's properties (tlcore.cka): the numbers the "what fine-tuning changed" view reads."""

from __future__ import annotations

import numpy as np
import pytest

from tlcore import cka
from tlcore.cka import cka_words, gram, linear_cka
from tlcore.weight_changes import LayerSimilarity, RepresentationChanges


def _features(n: int = 40, width: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, width))


def _feature_space_formula(x: np.ndarray, y: np.ndarray) -> float:
    """‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on centred features: the paper's feature-space form."""
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def test_a_representation_is_identical_to_itself():
    x = _features()
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_it_does_not_see_rotations_or_isotropic_scaling():
    x = _features()
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(30, 30)))
    assert linear_cka(x, x @ rotation) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, 7.5 * x) == pytest.approx(1.0, abs=1e-12)
    y = np.tanh(_features(seed=2)[:, :12] + x[:, :12])
    assert linear_cka(x @ rotation * 0.01, y) == pytest.approx(linear_cka(x, y), abs=1e-10)


def test_it_agrees_with_the_feature_space_formula_to_1e_6():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(25, 60)) + 3.0  # not centred: the estimator centres
    y = np.maximum(x[:, :20] @ rng.normal(size=(20, 45)), 0) + rng.normal(size=(25, 45))
    value = linear_cka(x, y)
    assert value == pytest.approx(_feature_space_formula(x, y), abs=1e-6)
    assert 0.0 < value < 1.0
    independent = linear_cka(x, rng.normal(size=(25, 45)))
    assert independent < value  # unrelated features share less


def test_conv_activations_are_flattened_and_their_gram_is_built_in_slices(monkeypatch):
    activations = np.random.default_rng(4).normal(size=(6, 4, 4, 8)).astype(np.float32)
    flat = activations.reshape(6, -1).astype(np.float64)
    monkeypatch.setattr(cka, "COLUMNS_PER_STEP", 10)  # 128 features: 13 slices
    k = gram(activations)
    assert k.dtype == np.float64
    np.testing.assert_allclose(k, flat @ flat.T, rtol=1e-12)


def test_different_numbers_of_examples_are_refused_and_a_constant_side_is_nan():
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(_features(n=5), _features(n=6))
    assert np.isnan(linear_cka(_features(n=5), np.ones((5, 3))))


def _layers(values: list[float], frozen: int) -> tuple[LayerSimilarity, ...]:
    names = [f"layer{i}" for i in range(1, len(values) + 1)]
    return tuple(LayerSimilarity(n, "block", i >= frozen, v) for i, (n, v) in enumerate(zip(names, values)))


def test_the_sentences_read_the_measured_values():
    nudged = RepresentationChanges("r", _layers([1.0] * 10 + [0.99999, 0.9999, 0.9995], 10), 14, 50)
    assert nudged.summary == (
        "Measured on 50 validation images. The first 10 conv layers stayed frozen: their CKA is 1 by construction "
        "(no bar). Of the 3 trained conv layers, layer11 kept most (CKA 0.999990) and layer13 changed most (0.99950). "
        "The deeper the layer, the more its representation changed. Every trained layer still computes nearly "
        "what it computed before: training adjusted these features rather than replacing them."
    )
    replaced = RepresentationChanges("r", _layers([0.9, 0.4, 0.7], 0), 0, 20)
    assert replaced.summary == (
        "Measured on 20 validation images. Of the 3 trained conv layers, layer1 kept most (CKA 0.900) and "
        "layer2 changed most (0.400)."
    )
    head_only = RepresentationChanges("r", _layers([1.0] * 13, 13), 18, 50)
    assert head_only.summary.endswith("No conv layer trained, so every layer computes what it computed before.")


def test_a_cka_value_is_written_to_the_decimals_that_tell_it_from_1():
    assert [cka_words(v) for v in (0.999995, 0.99994, 0.9995, 0.987, 0.6, 1.0)] == [
        "0.9999950",
        "0.999940",
        "0.99950",
        "0.987",
        "0.600",
        "1.000",
    ]
    assert cka_words(float("nan")) == "n/a"
