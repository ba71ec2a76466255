"""Linear CKA: how alike two layers' representations of the same images are, 0 to 1 (no TensorFlow).

The estimator is Kornblith et al. 2019's linear CKA with the biased HSIC estimator (their eq. 2 and 4):
centred n × n Gram matrices K = XXᵀ, L = YYᵀ in float64, CKA = ⟨HKH, HLH⟩_F / (‖HKH‖_F ‖HLH‖_F), which
equals ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on centred features. It is invariant to orthogonal transforms and
isotropic scaling of either side, so a layer whose features were only rotated or rescaled reads 1.
"""

from __future__ import annotations

import numpy as np

ESTIMATOR = "linear CKA, biased HSIC estimator (Kornblith et al. 2019), n × n Gram matrices in float64"
COLUMNS_PER_STEP = 1 << 16  # features turned to float64 at a time: block 1 of VGG16 has 1M features an image at 128 px


def gram(features: np.ndarray) -> np.ndarray:
    """XXᵀ in float64 for n examples' features (any shape n × ...), built a slice of columns at a time."""
    flat = features.reshape(len(features), -1)
    out = np.zeros((len(flat), len(flat)), dtype=np.float64)
    for start in range(0, flat.shape[1], COLUMNS_PER_STEP):
        part = flat[:, start : start + COLUMNS_PER_STEP].astype(np.float64)
        out += part @ part.T
    return out


def centred(k: np.ndarray) -> np.ndarray:
    """HKH with H = I - 11ᵀ/n: the Gram matrix of the features minus their mean."""
    return k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()


def cka_of_grams(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 (the paper's names)
    """Linear CKA from two n × n Gram matrices of the same examples; NaN when either side is constant."""
    kc, lc = centred(np.asarray(k, dtype=np.float64)), centred(np.asarray(l, dtype=np.float64))
    denominator = np.linalg.norm(kc) * np.linalg.norm(lc)
    return float(np.sum(kc * lc) / denominator) if denominator > 0 else float("nan")


def cka_words(value: float) -> str:
    """A CKA value to as many decimals as it takes to tell it from 1 (0.987, 0.99950, 0.9999950)."""
    if not np.isfinite(value):
        return "n/a"
    gap = 1.0 - value
    decimals = 3 if gap <= 0 else min(8, max(3, int(np.ceil(-np.log10(gap) - 1e-9)) + 1))  # 1 - 0.99999 < 1e-5
    return f"{value:.{decimals}f}"


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between two representations of the same n examples (n × anything each)."""
    if len(x) != len(y):
        raise ValueError(f"CKA compares the same examples: {len(x)} against {len(y)}")
    return cka_of_grams(gram(x), gram(y))
