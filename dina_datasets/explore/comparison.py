"""The Compare view: the paired scores of two configs under a metric, sorted by how much
they disagree (|difference of percentile ranks|), and their scatter plot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dina_datasets.analysis.table import literal
from dina_datasets.errors import ConfigError

TOP = 20  # images marked where two configs disagree most

_SQL = ("WITH s AS (SELECT model || '-' || explainer AS config, index, image_id, label, "
        "prediction, score FROM scores WHERE metric = {m} AND score IS NOT NULL AND "
        "((model = {am} AND explainer = {ae}) OR (model = {bm} AND explainer = {be}))), "
        "a AS (SELECT *, percent_rank() OVER (ORDER BY score) AS r FROM s "
        "WHERE config = {a}), b AS (SELECT *, percent_rank() OVER (ORDER BY score) AS r "
        "FROM s WHERE config = {b}) "
        "SELECT a.index, a.image_id, a.label, a.prediction AS prediction_a, "
        "b.prediction AS prediction_b, a.score AS score_a, b.score AS score_b, "
        "abs(a.r - b.r) AS disagreement FROM a JOIN b USING (index) "
        "ORDER BY disagreement DESC, a.index")


def compare(explorer: Any, config_a: str, config_b: str, metric: str,
            extra: Sequence[str] = ()) -> tuple[Any, bytes]:
    """(the paired scores sorted by disagreement, their scatter plot as PNG bytes)."""
    a, b = explorer.config(config_a), explorer.config(config_b)
    explorer.known("metric", metric)
    table = explorer.table(extra)
    frame = table.frame(_SQL.format(m=literal(metric), am=literal(a[0]), ae=literal(a[1]),
                                    bm=literal(b[0]), be=literal(b[1]),
                                    a=literal(f"{a[0]}-{a[1]}"), b=literal(f"{b[0]}-{b[1]}")))
    if frame.empty:
        raise ConfigError(f"{a[0]}-{a[1]} and {b[0]}-{b[1]} share no image with a "
                          f"{metric} score under the filters ({', '.join(extra)})")
    return frame, scatter(frame, f"{a[0]}-{a[1]}", f"{b[0]}-{b[1]}", metric)


def scatter(frame: Any, a: str, b: str, metric: str) -> bytes:
    """The per-image scatter of score_a against score_b, the most disagreeing marked."""
    from dina_datasets.viz import charts

    plt = charts._pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    shown = frame if len(frame) <= 20_000 else frame.iloc[
        np.linspace(0, len(frame) - 1, 20_000).astype(int)]
    ax.scatter(shown["score_a"], shown["score_b"], s=6, alpha=0.5)
    top = frame.head(min(TOP, len(frame)))
    ax.scatter(top["score_a"], top["score_b"], s=14, color="crimson",
               label=f"{len(top)} most disagreeing")
    low = float(np.nanmin([frame["score_a"].min(), frame["score_b"].min()]))
    high = float(np.nanmax([frame["score_a"].max(), frame["score_b"].max()]))
    ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")
    ax.set_xlabel(f"{a} {metric}")
    ax.set_ylabel(f"{b} {metric}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"{metric} per image, {len(frame):,} images", fontsize=10)
    return charts.render(fig, ("png",))["png"]
