"""How consistent a metric is with itself, on an images x explainers matrix of one (model,
activation, metric), in numpy (no Python loop over splits or explainers):

- **split-half reliability** of the explainer ranking: the images are split at random in two
  halves, the explainers ranked by their mean score on each half, and the two rankings
  compared (Spearman's rho), then corrected to the full number of images with
  Spearman-Brown, 2 rho / (1 + rho). The estimate is Spearman-Brown of the mean rho over
  `n_splits` random splits; its interval is the percentile interval of the same statistic
  over `n_splits` splits of bootstrap resamples of the images (the Bayesian bootstrap,
  Rubin 1981: exponential weights, which resample like drawing with replacement and are
  six times faster to draw than Poisson counts), so it carries both the luck of the split
  and the sampling of the images. Values below -1 (Spearman-Brown of rho < -1/3) are shown
  as -1;
- **Krippendorff's alpha** (interval level) with the explainers as units and the images as
  coders: do the images agree on how far apart the explainers' scores are? It is computed
  on the scores centred per image (each image's mean over explainers removed): image
  difficulty moves every explainer together and changes no ranking, but in raw scores it
  would count as disagreement. `alpha_raw` is the same on the raw scores. Closed form
  for complete data, equal to the `krippendorff` package's `alpha(level_of_measurement=
  "interval")` (a test checks it), which would build a units x distinct values table of
  50,000 x 700,000 here;
- **ICC(A,1)**, two-way random, absolute agreement, single measure (McGraw & Wong 1996;
  pingouin's "ICC(A,1)", "ICC2" in older versions), for test-retest: the same (image,
  explainer) scored twice with two seeds.
"""

from __future__ import annotations

import math

import numpy as np

N_SPLITS = 200
CONFIDENCE = 0.95
BATCH_ELEMENTS = 2_000_000  # splits x images of one batch of weights (8 MB of float32)


def spearman_brown(r: np.ndarray | float) -> np.ndarray | float:
    """The reliability of the whole from the correlation of two halves, 2 r / (1 + r);
    -1 at r = -1 (where the formula diverges)."""
    r = np.asarray(r, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(r > -1, 2 * r / (1 + r), -1.0)
    return out if out.ndim else float(out)


def _row_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks of each row (ties shared), as `scipy.stats.rankdata(axis=1)`."""
    from scipy import stats

    return stats.rankdata(x, axis=1)


def _row_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of a with the same row of b (NaN for a constant
    row)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def split_rho(values: np.ndarray, halves: np.ndarray, weights: np.ndarray | None = None
              ) -> np.ndarray:
    """Spearman's rho of the explainers' mean scores on the two halves, one per split.
    `values`: images x explainers (no NaN); `halves`: splits x images, True = first half;
    `weights`: splits x images resampling weights (default 1)."""
    # float32 products (half the memory traffic), on scores less their grand mean, so that
    # an offset (Complexity ~10) does not eat the digits that order the explainers
    values = np.asarray(values, np.float64)
    values = (values - values.mean()).astype(np.float32)
    if weights is None:
        first = halves.astype(np.float32)
        total, size = values.sum(axis=0, dtype=np.float64)[None, :], float(values.shape[0])
    else:
        weights = np.asarray(weights, np.float32)
        first = weights * halves
        total, size = weights @ values, weights.sum(axis=1, keepdims=True, dtype=np.float64)
    sum_a, size_a = first @ values, first.sum(axis=1, keepdims=True, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_a, mean_b = sum_a / size_a, (total - sum_a) / (size - size_a)
    return _row_correlation(_row_ranks(mean_a), _row_ranks(mean_b))


def split_half(values: np.ndarray, *, n_splits: int = N_SPLITS,
               confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float, float]:
    """(estimate, low, high) of the split-half reliability of the explainer ranking of
    images x explainers `values` (complete rows; see the module docstring). NaN when
    fewer than 4 images or 2 explainers."""
    images, k = values.shape
    if images < 4 or k < 2:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = np.asarray(values, np.float64)
    values = values - values.mean()
    step = max(1, BATCH_ELEMENTS // images)
    plain, resampled = [], []
    for start in range(0, n_splits, step):
        count = min(step, n_splits - start)
        halves = rng.integers(0, 2, (count, images), dtype=np.bool_)
        plain.append(split_rho(values, halves))
        halves = rng.integers(0, 2, (count, images), dtype=np.bool_)
        resampled.append(split_rho(values, halves, rng.standard_exponential((count, images),
                                                                    np.float32)))
    rho, boot = np.concatenate(plain), np.concatenate(resampled)
    rho, boot = rho[np.isfinite(rho)], boot[np.isfinite(boot)]
    if not len(rho):  # every half ranks all explainers equal
        return math.nan, math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = (np.percentile(boot, [tail, 100 - tail]) if len(boot) else
                 (math.nan, math.nan))
    return tuple(max(-1.0, float(spearman_brown(r))) if math.isfinite(r) else math.nan
                 for r in (rho.mean(), low, high))


def krippendorff_interval(values: np.ndarray) -> float:
    """Krippendorff's alpha, interval level, of coders x units `values` (complete: no NaN);
    NaN when there is no variation at all."""
    values = np.asarray(values, np.float64)
    coders, units = values.shape
    if coders < 2 or units < 1:
        return math.nan
    total = coders * units
    within = ((values - values.mean(axis=0)) ** 2).sum(axis=0)  # per unit
    spread = ((values - values.mean()) ** 2).sum()
    if spread == 0:
        return math.nan
    disagreement = (total - 1) / total * (coders / (coders - 1)) * within.sum()
    return float(1 - disagreement / spread)


def agreement(values: np.ndarray) -> tuple[float, float]:
    """(alpha, alpha_raw) of images x explainers `values`: Krippendorff's alpha with the
    images as coders, on the scores centred per image and on the raw scores."""
    values = np.asarray(values, np.float64)
    if values.shape[0] < 2 or values.shape[1] < 2:
        return math.nan, math.nan
    centred = values - values.mean(axis=1, keepdims=True)
    return krippendorff_interval(centred), krippendorff_interval(values)


def icc_agreement(first: np.ndarray, second: np.ndarray) -> float:
    """ICC(A,1) of two measurements of the same targets (NaN pairs dropped): two-way
    random effects, absolute agreement, single measure (pingouin's "ICC(A,1)")."""
    both = np.isfinite(first) & np.isfinite(second)
    x = np.column_stack([np.asarray(first, np.float64)[both],
                         np.asarray(second, np.float64)[both]])
    n, k = x.shape
    if n < 2:
        return math.nan
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_error = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    ms_rows, ms_cols = ss_rows / (n - 1), ss_cols / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n
    if denominator == 0:
        return 1.0 if ms_rows == 0 and ms_error == 0 else math.nan
    return float((ms_rows - ms_error) / denominator)
