"""How many images a ranking needs: per (model, metric), bootstrap subsamples of n images
(drawn with replacement from the images every non-degenerate explainer has), the ranking of
the explainers by their mean on each subsample compared with the ranking on all images:
the share of subsamples that give exactly the same ranking, and Kendall's tau to it
(`scipy.stats.kendalltau`; mean and 5th / 95th percentiles). Sizes larger than the images
available are skipped; the full size is always a point (resampled, so it shows the
sampling noise of the whole set: is DINA's 1,024-image randomization subset enough?).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.analysis.stats import summaries
from dina_datasets.analysis.stats.sanity import DEGENERATE_SHARE
from dina_datasets.analysis.table import open_scores, order
from dina_datasets.errors import check_positive_int

SIZES = (100, 500, 1_000, 5_000, 10_000, 50_000)
N_BOOT = 200
BATCH_ELEMENTS = 10_000_000
COLUMNS = ["model", "metric", "n", "images", "explainers", "share_equal", "tau_mean",
           "tau_low", "tau_high"]


def curve(values: np.ndarray, sizes: tuple[int, ...], n_boot: int = N_BOOT,
          seed: int = 0) -> list[tuple[int, float, float, float, float]]:
    """(n, share_equal, tau_mean, tau_p5, tau_p95) of images x explainers `values` (no
    NaN) for each n of `sizes` that fits, plus the full size."""
    from scipy import stats

    images, k = values.shape
    full = stats.rankdata(-values.mean(axis=0))
    rng = np.random.default_rng(seed)
    out = []
    for n in sorted({s for s in sizes if s < images} | {images}):
        taus, equal = np.empty(n_boot), 0
        step = max(1, BATCH_ELEMENTS // (n * k))
        for start in range(0, n_boot, step):
            count = min(step, n_boot - start)
            means = values[rng.integers(0, images, (count, n))].mean(axis=1)
            for j, row in enumerate(means):
                ranks = stats.rankdata(-row)
                equal += bool(np.array_equal(ranks, full))
                taus[start + j] = stats.kendalltau(full, ranks).statistic
        finite = taus[np.isfinite(taus)]
        low, high = (np.percentile(finite, [5, 95]) if len(finite) else (math.nan, math.nan))
        out.append((n, equal / n_boot, float(finite.mean()) if len(finite) else math.nan,
                    float(low), float(high)))
    return out


def stability(scores: Any, *, sizes: tuple[int, ...] = SIZES, n_boot: int = N_BOOT,
              seed: int = 0, filters=(), activation: str | None = "softmax",
              degenerate_share: float = DEGENERATE_SHARE, summary: Any = None,
              storage_options: dict | None = None) -> Any:
    """One row per (model, metric, n): `COLUMNS` (a pandas frame)."""
    import pandas as pd

    check_positive_int("n_boot", n_boot)
    for size in sizes:
        check_positive_int("sizes", size)
    table = open_scores(scores, filters, activation, storage_options)
    table.one_activation()  # never pools activations
    if summary is None:
        summary = summaries.summary(table, ci="normal", degenerate_share=degenerate_share)
    rows = []
    for model in order(summary["model"], catalog.MODELS):
        for metric in order(summary.loc[summary["model"] == model, "metric"], catalog.METRICS):
            group = summary[(summary["model"] == model) & (summary["metric"] == metric)]
            names = list(group.loc[~group["degenerate"] & (group["n"] > 0), "explainer"])
            if len(names) < 2:
                continue
            values = table.matrix(model, metric, names).complete()
            if len(values) < 2:
                continue
            for point in curve(values, tuple(int(s) for s in sizes), n_boot, seed):
                rows.append([model, metric, point[0], len(values), len(names), *point[1:]])
    return pd.DataFrame(rows, columns=COLUMNS)
