"""What an attribution map says at all: degenerate maps (constant, e.g. all zero, or without
a finite value) rank no pixel above another, so they must be flagged, not drawn with an
invented colour scale or ranked "simplest" by a complexity metric."""

from __future__ import annotations

import numpy as np

from dina_datasets.errors import DinaWarning

# A map whose total |attribution| (after the channel mean, as the metrics see it) is under
# this is numerically zero: Complexity and Sparseness add an epsilon of 1e-8 to that total,
# so below 1e-6 the epsilon, not the map, decides the score (common for gradients of a
# saturated softmax).
NEAR_ZERO = 1e-6


def degenerate(maps: np.ndarray) -> np.ndarray:
    """Per map of a batch (N, ...): True when its finite values are all equal, or it has
    none (all-zero and constant maps)."""
    array = np.asarray(maps)
    flat = array.reshape(len(array), -1).astype(np.float64, copy=False)
    finite = np.isfinite(flat)
    high = np.where(finite, flat, -np.inf).max(axis=1, initial=-np.inf)
    low = np.where(finite, flat, np.inf).min(axis=1, initial=np.inf)
    return ~finite.any(axis=1) | (high == low)


def describe(explanation: np.ndarray) -> str | None:
    """"empty map (all 0)", "empty map (constant 0.25)" or "empty map (no finite value)" for
    a degenerate map; None for a map that ranks its pixels."""
    array = np.asarray(explanation)
    if not degenerate(array[None])[0]:
        return None
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return "empty map (no finite value)"
    value = float(finite.flat[0])
    return "empty map (all 0)" if value == 0 else f"empty map (constant {value:.4g})"


def total_attribution(explanation: np.ndarray) -> float:
    """Total |attribution| of one map (H, W[, C]) after the channel mean, as the metrics see
    it; a map under `NEAR_ZERO` is numerically zero."""
    array = np.asarray(explanation, np.float64)
    seen = array.mean(axis=-1) if array.ndim == 3 else array
    return float(np.nansum(np.abs(seen)))


class DegenerateMapWarning(DinaWarning):
    """An explainer returned degenerate maps (constant, e.g. all zero): they rank no pixel,
    and their complexity scores are meaningless."""
