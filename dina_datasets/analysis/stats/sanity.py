"""The sanity floor: explainers whose scores are mostly undefined are flagged `degenerate`,
reported but never ranked, compared or crowned.

A score is undefined (null) where the metric has no value for the map, e.g. Complexity and
Sparseness of an all-zero map, Complexity of a constant one. An explainer is degenerate for
a (model, metric) when the share of its undefined scores there reaches `threshold` (default
50 %). When that metric is one of the map alone (Sparseness, Complexity: the catalog's
`needs_model=False`), the maps themselves are degenerate, so the explainer is flagged for
every metric of that model: a fidelity score of an all-zero map is defined but meaningless.
"""

from __future__ import annotations

from typing import Any

from dina_datasets import catalog

DEGENERATE_SHARE = 0.5


def _map_only(metric: str) -> bool:
    spec = catalog.METRICS.get(metric)
    return spec is not None and not spec.needs_model


def _shares(cells: Any) -> Any:
    total = cells["n"] + cells["n_undefined"]
    return (cells["n_undefined"] / total.where(total > 0)).fillna(1.0)


def flag(cells: Any, threshold: float = DEGENERATE_SHARE, every_metric: Any = None) -> Any:
    """`cells` (model, metric, explainer, n, n_undefined, ...) with `share_undefined`,
    `degenerate` and `reason` columns added. `every_metric`: the cells of the same rows
    under every metric (when `cells` holds only some), to judge the maps."""
    out = cells.copy()
    out["share_undefined"] = _shares(out)
    own = out["share_undefined"] >= threshold
    context = out if every_metric is None else every_metric.assign(
        share_undefined=_shares(every_metric))
    maps = {(r.model, r.explainer): f"{r.metric} undefined for {r.share_undefined:.0%}"
            for r in context[context["share_undefined"] >= threshold].itertuples()
            if _map_only(r.metric)}
    reasons = []
    for row, flagged in zip(out.itertuples(), own, strict=True):
        if flagged:
            reasons.append(f"{row.share_undefined:.0%} of its {row.metric} scores undefined")
        elif (row.model, row.explainer) in maps:
            reasons.append(f"degenerate maps ({maps[row.model, row.explainer]})")
        else:
            reasons.append("")
    out["reason"] = reasons
    out["degenerate"] = out["reason"] != ""
    return out


def degenerate(scores: Any, *, threshold: float = DEGENERATE_SHARE, filters=(),
               activation: str | None = "softmax", storage_options: dict | None = None
               ) -> Any:
    """Per (model, metric, explainer): n, n_undefined, share_undefined, degenerate, reason."""
    from dina_datasets.analysis.table import open_scores

    table = open_scores(scores, filters, activation, storage_options)
    table.one_activation()  # never pools activations
    columns = ["model", "metric", "explainer", "n", "n_undefined", "share_undefined",
               "degenerate", "reason"]
    return flag(table.cells(), threshold, table.context())[columns]
