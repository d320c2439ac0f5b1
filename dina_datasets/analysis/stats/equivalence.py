"""Equivalence: is the difference between two explainers too small to matter? Shown with
evidence, by the two one-sided tests (TOST) of the paired mean difference within a declared
margin, never read from a failure to reject.

The margin of a (model, metric): `fraction` (default `MARGIN` = 0.1) of the metric's spread
there, the pooled standard deviation of the per-image scores of its non-degenerate
explainers, sqrt(mean of their variances). Why a tenth of the spread: Cohen's "small" effect
is 0.2 standard deviation; half of it moves the mean by much less than images differ from
one another, so two explainers whose means lie that close are interchangeable for ranking,
while the 0.3-0.5 sd gaps between good and random maps stay well outside it. The spread
is the metric's own scale, so one fraction serves Insertion (0..1) and Complexity (~10) alike.
`units="score"` takes `fraction` as the margin itself, in the metric's units.

The test (paired t form, as `statsmodels.stats.weightstats.ttost_paired`): d = a - b on the
images both have, mean m, standard deviation s, n images; t1 = (m + margin) / (s / sqrt(n))
against H0: mean <= -margin, t2 = (m - margin) / (s / sqrt(n)) against H0: mean >= margin,
both one-sided with n - 1 degrees of freedom; p = max(p1, p2). The leaderboard ranks by the
mean, so equivalence is judged on the mean difference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dina_datasets.errors import ConfigError

MARGIN = 0.1
UNITS = ("sd", "score")


def check_margin(fraction: float, units: str = "sd") -> None:
    """ConfigError for a margin that is not a positive finite number or unknown units."""
    if units not in UNITS:
        raise ConfigError(f"equivalence margin units must be one of {', '.join(UNITS)}, "
                          f"got {units!r}")
    if not (isinstance(fraction, (int, float)) and math.isfinite(fraction) and fraction > 0):
        raise ConfigError(f"the equivalence margin must be a positive number (a fraction of "
                          f"the metric's per-image spread, default {MARGIN}), got {fraction!r}")


def spread(stds: Any) -> float:
    """Pooled standard deviation of explainers' per-image scores: sqrt(mean(std**2)) over
    those with a finite std (NaN when none)."""
    values = np.asarray(stds, np.float64)
    values = values[np.isfinite(values)]
    return float(np.sqrt(np.mean(values ** 2))) if values.size else math.nan


def margin_of(stds: Any, fraction: float = MARGIN, units: str = "sd") -> float:
    """The equivalence margin of a (model, metric) whose explainers have these standard
    deviations (see the module docstring); ConfigError when it overflows to infinity
    (every pair would read "equivalent" within no bound at all)."""
    size = spread(stds)
    margin = float(fraction) if units == "score" else fraction * size
    if math.isinf(margin):
        raise ConfigError(f"the equivalence margin {fraction!r} x the metric's spread "
                          f"{size:.4g} is not a finite number; give a margin of a few tenths "
                          f"of the spread at most (default {MARGIN})")
    return margin


def tost(d: np.ndarray, margin: float) -> float:
    """The TOST p-value that the mean of the paired differences `d` (finite) lies within
    (-margin, margin); NaN when it cannot be tested (fewer than 2 differences, no margin)."""
    from scipy import stats

    n = len(d)
    if n < 2 or not margin > 0:
        return math.nan
    mean, sd = float(np.mean(d)), float(np.std(d, ddof=1))
    if sd == 0:  # every image differs by the same amount: the mean is known exactly
        return 0.0 if abs(mean) < margin else 1.0
    se = sd / math.sqrt(n)
    p_low = float(stats.t.sf((mean + margin) / se, n - 1))    # H0: mean <= -margin
    p_high = float(stats.t.cdf((mean - margin) / se, n - 1))  # H0: mean >= margin
    return max(p_low, p_high)
