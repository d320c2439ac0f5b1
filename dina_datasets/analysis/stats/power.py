"""What the images of a (model, metric) can tell at all: the smallest paired difference the
data could have detected, and the images a margin-sized difference (or equivalence) needs.

Per (model, metric), with m pairs tested together (Holm's first step is alpha / m) on n
images (the most any pair has):

- the smallest p-value the signed-rank test can give on n images is 2 / 2**n (all
  differences of one sign); when it is not below alpha / m, no pair can be called better,
  worse or equivalent: "too few images to tell" (4 images: 0.125), and every verdict there
  is "inconclusive";
- the smallest detectable effect, for the paired test at level alpha / m (two-sided) with
  power `POWER` (80 %), normal approximation: (z(1 - alpha / 2m) + z(POWER)) * s / sqrt(n),
  s the median standard deviation of the paired differences over the pairs (in the metric's
  units; `detectable_sd` is the same in units of s);
- `n_needed`: the images that would detect a difference of one margin, and show
  equivalence when the true difference is 0 ((z(1 - alpha / m) + z(1 - (1 - POWER) / 2))
  * s / margin)**2, whichever is larger (and at least what the rank test needs to reach
  alpha / m at all).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

POWER = 0.8
FEW = "too few images to tell"
ENOUGH = "enough images for the margin"
COLUMNS = ["model", "metric", "n", "pairs", "paired_by", "margin", "sd_diff",
           "detectable_effect", "detectable_sd", "n_needed", "status"]


def can_tell(n: int, pairs: int, alpha: float) -> bool:
    """Whether a signed-rank test on n images can reach alpha / pairs at all."""
    return n > 0 and pairs > 0 and 2.0 ** (1 - n) < alpha / pairs


def _rank_test_minimum(pairs: int, alpha: float) -> int:
    """The fewest images on which the signed-rank test can reach alpha / pairs."""
    return math.floor(1 + math.log2(pairs / alpha)) + 1


def detectability(pairs_frame: Any, alpha: float, power: float = POWER) -> Any:
    """One row per (model, metric) of the pairs frame: `COLUMNS` (see the module
    docstring)."""
    import pandas as pd
    from scipy import stats

    rows = []
    for (model, metric), group in pairs_frame.groupby(["model", "metric"], sort=False):
        m, n = len(group), int(group["n"].max())
        sd = float(np.nanmedian(group["sd_diff"])) if group["sd_diff"].notna().any() \
            else math.nan
        margin = float(group["margin"].iloc[0])
        z_difference = stats.norm.ppf(1 - alpha / (2 * m)) + stats.norm.ppf(power)
        z_equivalence = stats.norm.ppf(1 - alpha / m) + stats.norm.ppf(1 - (1 - power) / 2)
        detectable_sd = z_difference / math.sqrt(n) if n > 0 else math.nan
        needed = _rank_test_minimum(m, alpha)
        if np.isfinite(sd) and sd > 0 and margin > 0:
            needed = max(needed, math.ceil((max(z_difference, z_equivalence) * sd
                                            / margin) ** 2))
        if not can_tell(n, m, alpha):
            status = FEW
        elif n < needed:
            status = f"about {needed:,} images needed for the margin"
        else:
            status = ENOUGH
        rows.append([model, metric, n, m, group["paired_by"].iloc[0], margin, sd,
                     detectable_sd * sd if np.isfinite(sd) else math.nan, detectable_sd,
                     needed, status])
    return pd.DataFrame(rows, columns=COLUMNS)
