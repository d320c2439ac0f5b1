"""Validity against the controls: does a metric tell explainers from maps that explain
nothing? Per (model, metric) and explainer, on the images both have: the share of images
where the explainer beats a control (RandomExp, and Sobel and Laplace when present) in
the catalog's direction of the metric (a tie does not beat), with its Wilson score interval
(Wilson 1927; the interval recommended for a binomial share by Brown, Cai & DasGupta 2001)
at the Bonferroni level over the k explainers compared with that control (confidence
1 - (1 - 0.95) / k), and `beats_control` when its low end is above 1/2: the same evidence
as the separation below, so the table and the card never disagree.

A metric "does not separate from random" (for a model) when no explainer that is not a
reference beats RandomExp on most images with evidence: no Wilson lower bound above 1/2,
the bounds taken at the Bonferroni level over the k explainers asked (confidence
1 - (1 - 0.95) / k), since "some explainer does" is asked of all k at once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dina_datasets.analysis.table import higher_is_better, is_reference

RANDOM = "RandomExp"
CONTROLS = ("RandomExp", "Sobel", "Laplace")
CONFIDENCE = 0.95
MOST = 0.5  # "most images": a share whose whole interval lies above one half
COLUMNS = ["model", "metric", "explainer", "control", "n", "wins", "share", "share_low",
           "share_high", "beats_control"]


def wilson(wins: np.ndarray | float, n: np.ndarray | float, confidence: float = CONFIDENCE
           ) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (low, high) of the share wins / n (NaN where n = 0)."""
    from scipy import stats

    wins, n = np.asarray(wins, np.float64), np.asarray(n, np.float64)
    z = stats.norm.ppf((1 + confidence) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = wins / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def against_controls(values: np.ndarray, explainers: list[str], metric: str, model: str,
                     confidence: float = CONFIDENCE) -> list[list[Any]]:
    """`COLUMNS` rows of images x explainers `values` (NaN = missing): every explainer that
    is not a reference against every control present, intervals at the Bonferroni level
    over those explainers. Empty for a metric of unknown direction."""
    direction = higher_is_better(metric)
    if direction is None:
        return []
    sign = 1.0 if direction else -1.0
    rows = []
    for c, control in enumerate(explainers):
        if control not in CONTROLS:
            continue
        others = [j for j, name in enumerate(explainers) if not is_reference(name)]
        if not others:
            continue
        base = values[:, [c]]
        block = values[:, others]
        both = np.isfinite(block) & np.isfinite(base)
        with np.errstate(invalid="ignore"):
            wins = ((sign * (block - base) > 0) & both).sum(axis=0)
        n = both.sum(axis=0)
        low, high = wilson(wins, n, 1 - (1 - confidence) / len(others))  # Bonferroni
        for j, k, w, lo, hi in zip(others, n, wins, low, high, strict=True):
            share = w / k if k else math.nan
            rows.append([model, metric, explainers[j], control, int(k), int(w), share,
                         float(lo), float(hi), bool(lo > MOST)])
    return rows


def separates(rows: Any, confidence: float = CONFIDENCE) -> bool | None:
    """Whether some explainer beats RandomExp on most images with evidence (a Wilson lower
    bound above 1/2 at the Bonferroni level over the explainers), from `against_controls`
    rows of one (model, metric); None when RandomExp is not there."""
    random = [r for r in rows if r[3] == RANDOM]
    if not random:
        return None
    level = 1 - (1 - confidence) / len(random)
    low, _ = wilson(np.array([r[5] for r in random]), np.array([r[4] for r in random]), level)
    return bool((low > MOST).any())
