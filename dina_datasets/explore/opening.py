"""Where the explorer opens: the (model, metric) of the data that tells its explainers apart
most clearly, not the first in catalog order (which may be a tie on 4 images).

The measure, per (model, metric) of the default activation's rows, over its explainers with
at least two scores: `separation = (max mean - min mean) / pooled sd * sqrt(n / 2)`, n the
smallest number of images of an explainer there, the pooled sd the root of the mean of the
explainers' variances. It is the two-sample t statistic of the best and the worst explainer:
it grows with the spread of the explainer means (in units of the scores' own spread, so
metrics of different scales compare) and with the square root of the images, and is 0 for an
exact tie. One GROUP BY over the scores table (about a second on the full grid); the
largest wins, then more explainers, more images, catalog order.
"""

from __future__ import annotations

import math
from typing import Any

from dina_datasets import catalog
from dina_datasets.explore.controls import position

_SQL = ("SELECT model, metric, explainer, count(score) AS n, avg(score) AS mean, "
        "var_samp(score) AS var FROM scores WHERE score IS NOT NULL AND isfinite(score) "
        "GROUP BY model, metric, explainer HAVING count(score) >= 2")


def separations(table: Any) -> Any:
    """One row per (model, metric) with two explainers or more: explainers, n (the fewest
    images of one), spread (max - min mean), sd (pooled), separation; largest first."""
    import pandas as pd

    cells = table.frame(_SQL)
    rows = []
    for (model, metric), group in cells.groupby(["model", "metric"], sort=False):
        if len(group) < 2:
            continue
        n = int(group["n"].min())
        spread = float(group["mean"].max() - group["mean"].min())
        sd = math.sqrt(float(group["var"].fillna(0.0).mean()))
        scale = spread / sd if sd > 0 else (math.inf if spread > 0 else 0.0)
        separation = scale * math.sqrt(n / 2)
        rows.append({"model": model, "metric": metric, "explainers": len(group), "n": n,
                     "spread": spread, "sd": sd, "separation": separation})
    frame = pd.DataFrame(rows, columns=["model", "metric", "explainers", "n", "spread", "sd",
                                        "separation"])
    if frame.empty:
        return frame
    models, metrics = list(catalog.MODELS), list(catalog.METRICS)
    order = sorted(range(len(frame)), key=lambda i: (
        -frame["separation"].iloc[i], -frame["explainers"].iloc[i], -frame["n"].iloc[i],
        position(frame["model"].iloc[i], models), position(frame["metric"].iloc[i], metrics)))
    return frame.iloc[order].reset_index(drop=True)


def opening(table: Any) -> tuple[str, str] | None:
    """(model, metric) that separates its explainers most clearly; None when no (model,
    metric) has two explainers with two scores each."""
    frame = separations(table)
    if frame.empty:
        return None
    return str(frame["model"].iloc[0]), str(frame["metric"].iloc[0])
