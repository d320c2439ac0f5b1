"""Complexity metrics of the maps alone: Sparseness (Gini index) and Complexity (entropy).

No model and no TensorFlow. `variant="dina"` (default) is the published definition: channel
mean first, then absolute value. `variant="xplique"` is xplique >= 1.5: absolute value first,
then channel mean, and its own Gini formula; the two differ on signed 3-channel maps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dina_datasets.metrics.base import Metric, check_variant, reduce_channels

EPS = 1e-8
GINI_OFFSET = 1e-7


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
    """Gini index of |map|, in [0, 1): 0 for a uniform (or all-zero) map, towards 1 when one
    pixel holds everything.

    dina: a = |mean_c E| / (sum + 1e-8), sorted ascending, + 1e-7;
    score = sum_k (2k - n - 1) a_k / (n sum a). Higher is better.
    """

    name = "Sparseness"

    def scores(self, inputs: np.ndarray | None, targets: np.ndarray | None,
               explanations: np.ndarray, *, start: int = 0) -> np.ndarray:
        a = _magnitudes(explanations, self.variant)
        n = a.shape[1]
        a = a / (a.sum(axis=1, keepdims=True) + EPS)
        a = np.sort(a, axis=1)
        k = np.arange(1, n + 1, dtype=np.float64)
        if self.variant == "xplique":
            return 2.0 * (a * k).sum(axis=1) / (n * a.sum(axis=1) + EPS) - (n + 1.0) / n
        a += GINI_OFFSET
        return ((2.0 * k - n - 1.0) * a).sum(axis=1) / (n * a.sum(axis=1))


class Complexity(_MapMetric):
    """Shannon entropy of the normalised |map|, in [0, ln(H*W)] (ln(224 * 224) = 10.82; the
    1e-8 offsets move the ends by less than 1e-3): 0 when one pixel holds everything,
    ln(H*W) for a uniform map. An all-zero map also scores
    0, the "best" value, though it ranks no pixel: flag it with `dina_datasets.maps.degenerate`.

    p = a / (sum a + 1e-8); score = -sum p ln(p + 1e-8). Lower is better.
    """

    name = "Complexity"

    def scores(self, inputs: np.ndarray | None, targets: np.ndarray | None,
               explanations: np.ndarray, *, start: int = 0) -> np.ndarray:
        a = _magnitudes(explanations, self.variant)
        p = a / (a.sum(axis=1, keepdims=True) + EPS)
        return -(p * np.log(p + EPS)).sum(axis=1)
