"""Agreement of rankings, Kendall's tau (`scipy.stats.kendalltau`, tau-b) on the explainers
both rankings have (non-degenerate, with a mean):

- between metrics, per model: do two metrics order the explainers alike? Means are
  oriented by the catalog's direction first, so tau = 1 means "the same explainers are
  better" and -1 "the opposite";
- between models, per metric: does a ranking made on one model transfer to another?
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.analysis.stats import summaries
from dina_datasets.analysis.table import higher_is_better, order


def _oriented(summary: Any) -> Any:
    usable = summary[~summary["degenerate"] & np.isfinite(summary["mean"])]
    sign = usable["metric"].map(lambda m: -1.0 if higher_is_better(m) is False else 1.0)
    return usable.assign(good=usable["mean"] * sign)


def tau(x: Any, y: Any) -> tuple[int, float, float]:
    """(n, tau, p_value) of two Series on their common, finite index."""
    from scipy import stats

    both = x.dropna().index.intersection(y.dropna().index)
    if len(both) < 2:
        return len(both), math.nan, math.nan
    result = stats.kendalltau(x[both].to_numpy(), y[both].to_numpy())
    return len(both), float(result.statistic), float(result.pvalue)


def metric_agreement(scores_or_summary: Any, **kwargs: Any) -> Any:
    """One row per (model, metric_a, metric_b): n explainers, tau, p_value."""
    return _agreement(summaries.of(scores_or_summary, **kwargs), "model", "metric")


def model_agreement(scores_or_summary: Any, **kwargs: Any) -> Any:
    """One row per (metric, model_a, model_b): n explainers, tau, p_value."""
    return _agreement(summaries.of(scores_or_summary, **kwargs), "metric", "model")


def _agreement(summary: Any, within: str, between: str) -> Any:
    """Kendall's tau of the explainers' oriented means between every pair of `between`
    values (metrics or models), within each `within` value."""
    import pandas as pd

    tables = {"model": catalog.MODELS, "metric": catalog.METRICS}
    good = _oriented(summary)
    rows = []
    for key in order(good[within], tables[within]):
        wide = good[good[within] == key].pivot(index="explainer", columns=between,
                                               values="good")
        for a, b in itertools.combinations(order(wide.columns, tables[between]), 2):
            rows.append([key, a, b, *tau(wide[a], wide[b])])
    return pd.DataFrame(rows, columns=[within, f"{between}_a", f"{between}_b", "n", "tau",
                                       "p_value"])


def matrix(agreement: Any, a: str, b: str, names: list[str] | None = None) -> Any:
    """The symmetric matrix of the mean tau of each pair (`a`, `b` columns), 1 on the
    diagonal; NaN where never compared."""
    import pandas as pd

    names = names or order([*agreement[a], *agreement[b]],
                           catalog.METRICS if a.startswith("metric") else catalog.MODELS)
    out = pd.DataFrame(np.nan, index=names, columns=names)
    for (x, y), value in agreement.groupby([a, b])["tau"].mean().items():
        out.loc[x, y] = out.loc[y, x] = value
    for name in names:
        out.loc[name, name] = 1.0
    return out
