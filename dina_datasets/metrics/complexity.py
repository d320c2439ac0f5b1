"""Complexity metrics of the maps alone: Sparseness (Gini index) and Complexity (entropy).

No model and no TensorFlow. `variant="dina"` (default) is the published definition: channel
mean first, then absolute value. `variant="xplique"` is xplique >= 1.5: absolute value first,
then channel mean, and its own Gini formula; the two differ on signed 3-channel maps.

Degenerate maps (the sanity floor): an all-zero map has no distribution of attribution, so
both metrics are undefined there (NaN, written as null in a score file), where the
published code's epsilons gave Complexity 0, its best value. A constant map ranks no pixel
above another: its Complexity is NaN too (so such maps are never scored as simple), while
its Sparseness keeps its defined value 0, the least sparse. Both variants do this.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dina_datasets.metrics.base import Metric, check_variant, reduce_channels

EPS = 1e-8
GINI_OFFSET = 1e-7


def _flat(a: np.ndarray) -> np.ndarray:
    """Rows of `a` whose magnitudes are all equal (all-zero included)."""
    return np.ptp(a, axis=1) == 0


def _magnitudes(explanations: np.ndarray, variant: str) -> np.ndarray:
    """(N, H*W) float64 magnitudes, channels reduced in the variant's order."""
    maps = np.asarray(explanations)
    if variant == "xplique" and maps.ndim == 4:
        flat = np.abs(maps.astype(np.float64)).mean(axis=-1)
    else:
        flat = np.abs(reduce_channels(maps).astype(np.float64))
    return flat.reshape(len(flat), -1)


class _MapMetric(Metric):
    """A metric of the map alone: no model needed (`model=None` is accepted)."""

    def __init__(self, model: Any = None, *, batch_size: int = 32, variant: str = "dina"
                 ) -> None:
        super().__init__(model, batch_size=batch_size)
        self.variant = check_variant(variant)


class Sparseness(_MapMetric):
    """Gini index of |map|, in [0, 1): 0 for a uniform (or constant) map, towards 1 when one
    pixel holds everything; NaN for an all-zero map (see the module docstring).

    dina: a = |mean_c E| / (sum + 1e-8), sorted ascending, + 1e-7;
    score = sum_k (2k - n - 1) a_k / (n sum a). Higher is better.
    """

    name = "Sparseness"

    def scores(self, inputs: np.ndarray | None, targets: np.ndarray | None,
               explanations: np.ndarray, *, start: int = 0) -> np.ndarray:
        a = _magnitudes(explanations, self.variant)
        zero = ~a.any(axis=1)
        n = a.shape[1]
        a = a / (a.sum(axis=1, keepdims=True) + EPS)
        a = np.sort(a, axis=1)
        k = np.arange(1, n + 1, dtype=np.float64)
        if self.variant == "xplique":
            out = 2.0 * (a * k).sum(axis=1) / (n * a.sum(axis=1) + EPS) - (n + 1.0) / n
        else:
            a += GINI_OFFSET
            out = ((2.0 * k - n - 1.0) * a).sum(axis=1) / (n * a.sum(axis=1))
        out[zero] = np.nan
        return out


class Complexity(_MapMetric):
    """Shannon entropy of the normalised |map|: 0 for one pixel, towards ln(H*W) as the
    map spreads; NaN for an all-zero or constant map (see the module docstring).

    p = a / (sum a + 1e-8); score = -sum p ln(p + 1e-8). Lower is better.
    """

    name = "Complexity"

    def scores(self, inputs: np.ndarray | None, targets: np.ndarray | None,
               explanations: np.ndarray, *, start: int = 0) -> np.ndarray:
        a = _magnitudes(explanations, self.variant)
        flat = _flat(a)
        p = a / (a.sum(axis=1, keepdims=True) + EPS)
        out = -(p * np.log(p + EPS)).sum(axis=1)
        out[flat] = np.nan
        return out
