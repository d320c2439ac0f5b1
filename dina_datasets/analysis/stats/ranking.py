"""Across models (Demšar 2006): per metric, the explainers' ranks within each model, their
average rank, the Friedman test of the rank differences (`scipy.stats.friedmanchisquare`),
the Nemenyi post-hoc p-values (`scikit_posthocs.posthoc_nemenyi_friedman`) and the Nemenyi
critical difference CD = q_alpha sqrt(k (k + 1) / (6 N)) with q_alpha the studentized range
quantile / sqrt(2) (`scipy.stats.studentized_range`).

The test needs complete blocks: per metric, the explainers kept are those every model has
(non-degenerate, with a mean); the others are listed in `dropped`. Rank 1 = best.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.analysis.stats import summaries
from dina_datasets.analysis.table import higher_is_better, order

ALPHA_CD = 0.05


def blocks(summary: Any, metric: str) -> tuple[Any, list[str]]:
    """(models x explainers frame of means oriented so that higher = better, dropped
    explainers: degenerate somewhere or missing from a model) for one metric."""
    rows = summary[summary["metric"] == metric]
    wide = rows[~rows["degenerate"]].pivot(index="model", columns="explainer", values="mean")
    wide = wide.reindex(index=order(rows["model"], catalog.MODELS),
                        columns=order(rows["explainer"], catalog.EXPLAINERS))
    every = wide.columns[wide.notna().all(axis=0)]
    dropped = [e for e in wide.columns if e not in every]
    sign = -1.0 if higher_is_better(metric) is False else 1.0
    return sign * wide[every], dropped


def critical_difference(k: int, n: int, alpha: float = ALPHA_CD) -> float:
    """Nemenyi's critical difference of average ranks for k explainers on n models."""
    from scipy import stats

    if k < 2 or n < 1:
        return math.nan
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def rank_table(summary: Any, metric: str) -> Any:
    """models x explainers ranks (1 = best, ties averaged) of one metric."""
    from scipy import stats

    good, _ = blocks(summary, metric)
    return good.apply(lambda row: stats.rankdata(-row.to_numpy()), axis=1,
                      result_type="broadcast")


def average_ranks(scores_or_summary: Any, **kwargs: Any) -> Any:
    """One row per (metric, explainer): average_rank over the models, models (N)."""
    import pandas as pd

    summary = summaries.of(scores_or_summary, **kwargs)
    rows = []
    for metric in order(summary["metric"], catalog.METRICS):
        if higher_is_better(metric) is None:
            continue
        ranks = rank_table(summary, metric)
        for explainer, value in ranks.mean(axis=0).sort_values().items():
            rows.append([metric, explainer, float(value), len(ranks)])
    return pd.DataFrame(rows, columns=["metric", "explainer", "average_rank", "models"])


def friedman(scores_or_summary: Any, *, alpha: float = ALPHA_CD, **kwargs: Any) -> Any:
    """One row per metric: models (N), explainers (k), Friedman statistic and p-value, the
    critical difference at `alpha`, the explainers dropped (not in every model)."""
    import pandas as pd
    from scipy import stats

    summary = summaries.of(scores_or_summary, **kwargs)
    rows = []
    for metric in order(summary["metric"], catalog.METRICS):
        if higher_is_better(metric) is None:
            continue
        good, dropped = blocks(summary, metric)
        n, k = good.shape
        statistic = p_value = math.nan
        if n >= 2 and k >= 3:
            result = stats.friedmanchisquare(*[good[c].to_numpy() for c in good.columns])
            statistic, p_value = float(result.statistic), float(result.pvalue)
        rows.append([metric, n, k, statistic, p_value, critical_difference(k, n, alpha),
                     ", ".join(dropped)])
    return pd.DataFrame(rows, columns=["metric", "models", "explainers", "statistic",
                                       "p_value", "cd", "dropped"])


def nemenyi(scores_or_summary: Any, metric: str, **kwargs: Any) -> Any:
    """explainers x explainers Nemenyi p-values of one metric (empty when fewer than two
    models or explainers)."""
    import pandas as pd
    import scikit_posthocs as sp

    summary = summaries.of(scores_or_summary, **kwargs)
    good, _ = blocks(summary, metric)
    if good.shape[0] < 2 or good.shape[1] < 2:
        return pd.DataFrame()
    return sp.posthoc_nemenyi_friedman(good.to_numpy()).set_axis(
        list(good.columns), axis=0).set_axis(list(good.columns), axis=1)
