"""Per model and metric: each explainer's n, mean, median, 95 % interval and rank.

The interval is the percentile bootstrap of the mean (`scipy.stats.bootstrap`), resampling
images: the explainers of a (model, metric) are resampled on the same images, as they were
scored on the same images. `ci="normal"` gives mean ± z s / sqrt(n) instead (instant; at
DINA's sizes, 1,024 and 50,000 images, the two agree closely). Rank 1 is the best mean in the
catalog's direction, equal means (to `TIE`, relative) sharing the smallest rank;
degenerate explainers (see `degenerate`) and metrics of unknown direction get no rank.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.analysis.stats.sanity import DEGENERATE_SHARE, flag
from dina_datasets.analysis.table import higher_is_better, is_reference, open_scores, order
from dina_datasets.errors import ConfigError, check_positive_int

CI_METHODS = ("bootstrap", "normal")
N_BOOT = 1000
CONFIDENCE = 0.95
# Elements of one batch of bootstrap resamples (explainers x images x resamples): ~80 MB.
BATCH_ELEMENTS = 10_000_000

COLUMNS = ["model", "metric", "explainer", "n", "n_undefined", "mean", "median", "std",
           "ci_low", "ci_high", "rank", "degenerate", "reason", "reference"]


def bootstrap_ci(values: np.ndarray, *, n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean of each row of `values` (explainers x
    images, NaN = missing), the rows resampled on the same images."""
    from scipy import stats

    k, n = values.shape
    low, high = np.full(k, np.nan), np.full(k, np.nan)
    if n < 2 or k == 0:
        return low, high
    batch = max(1, BATCH_ELEMENTS // (k * n))
    mean = np.mean if np.isfinite(values).all() else np.nanmean
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap((values,), lambda x, axis: mean(x, axis=axis),
                                 n_resamples=n_boot, batch=batch, vectorized=True, axis=-1,
                                 confidence_level=confidence, method="percentile",
                                 rng=np.random.default_rng(seed))
    return (np.asarray(result.confidence_interval.low, np.float64),
            np.asarray(result.confidence_interval.high, np.float64))


def _rank(frame: Any) -> Any:
    """Rank 1 = best mean per (model, metric), among non-degenerate finite means."""
    ranks = np.full(len(frame), np.nan)
    for (_, metric), group in frame.groupby(["model", "metric"], sort=False):
        direction = higher_is_better(metric)
        usable = group[~group["degenerate"] & np.isfinite(group["mean"])]
        if direction is None or usable.empty:
            continue
        ranks[frame.index.get_indexer(usable.index)] = shared_ranks(
            usable["mean"].to_numpy(np.float64), direction)
    return ranks


TIE = 1e-9  # relative: means this close are equal (one set of scores summed in two orders)


def shared_ranks(means: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Ranks 1.. of finite means (1 = best), equal means sharing the smallest: means within
    `TIE` (relative) of the previous one count as equal, so the same scores read in another
    record order (a sum in another order: a few ulps apart) tie instead of one leading."""
    order = np.argsort(-means if higher_is_better else means, kind="stable")
    ranks = np.empty(len(means))
    for position, i in enumerate(order):
        if position and abs(means[i] - means[order[position - 1]]) <= TIE * max(
                abs(means[i]), abs(means[order[position - 1]])):
            ranks[i] = ranks[order[position - 1]]
        else:
            ranks[i] = position + 1
    return ranks


def sort(frame: Any) -> Any:
    """Rows in catalog order of models and metrics, then by rank and catalog explainer."""
    models = order(frame["model"], catalog.MODELS)
    metrics = order(frame["metric"], catalog.METRICS)
    explainers = order(frame["explainer"], catalog.EXPLAINERS)
    keys = frame.assign(_m=frame["model"].map(models.index),
                        _x=frame["metric"].map(metrics.index),
                        _e=frame["explainer"].map(explainers.index))
    by = ["_m", "_x", "rank", "_e"] if "rank" in frame else ["_m", "_x", "_e"]
    return keys.sort_values(by, na_position="last").drop(columns=["_m", "_x", "_e"]
                                                          ).reset_index(drop=True)


def summary(scores: Any, *, filters=(), activation: str | None = "softmax",
            ci: str = "bootstrap", n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
            seed: int = 0, degenerate_share: float = DEGENERATE_SHARE, maps: Any = None,
            storage_options: dict | None = None) -> Any:
    """One row per (model, metric, explainer): `COLUMNS` (a pandas frame). `maps`: a
    `sanity.check_maps` frame: explainers with degenerate maps are flagged, not ranked."""
    if ci not in CI_METHODS:
        raise ConfigError(f"ci must be one of {', '.join(CI_METHODS)}, got {ci!r}")
    check_positive_int("n_boot", n_boot)
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence}")
    table = open_scores(scores, filters, activation, storage_options)
    table.one_activation()  # never pools activations
    frame = flag(table.cells(), degenerate_share, table.context(), maps)
    frame["ci_low"], frame["ci_high"] = np.nan, np.nan
    if ci == "normal":
        from scipy import stats

        z = stats.norm.ppf((1 + confidence) / 2)
        half = z * frame["std"] / np.sqrt(frame["n"].where(frame["n"] > 1))
        frame["ci_low"], frame["ci_high"] = frame["mean"] - half, frame["mean"] + half
    else:
        for (model, metric), group in frame.groupby(["model", "metric"], sort=False):
            usable = group[group["n"] >= 2]
            if usable.empty:
                continue
            matrix = table.matrix(model, metric, list(usable["explainer"]))
            low, high = bootstrap_ci(matrix.values.T, n_boot=n_boot, confidence=confidence,
                                     seed=seed)
            frame.loc[usable.index, "ci_low"] = low
            frame.loc[usable.index, "ci_high"] = high
    frame["rank"] = _rank(frame)
    frame["reference"] = frame["explainer"].map(is_reference)
    return sort(frame[COLUMNS])


def of(scores_or_summary: Any, **kwargs: Any) -> Any:
    """A summary frame: the argument itself when it already is one, else `summary(...)`
    (with the quick normal interval unless `ci` is given)."""
    columns = getattr(scores_or_summary, "columns", ())
    if "rank" in columns and "mean" in columns:
        return scores_or_summary
    kwargs.setdefault("ci", "normal")
    return summary(scores_or_summary, **kwargs)

