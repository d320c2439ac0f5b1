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


def flag(cells: Any, threshold: float = DEGENERATE_SHARE) -> Any:
    """`cells` (model, metric, explainer, n, n_undefined, ...) with `share_undefined`,
    `degenerate` and `reason` columns added."""
    out = cells.copy()
    total = out["n"] + out["n_undefined"]
    out["share_undefined"] = (out["n_undefined"] / total.where(total > 0)).fillna(1.0)
    own = out["share_undefined"] >= threshold
    maps = {(r.model, r.explainer): f"{r.metric} undefined for {r.share_undefined:.0%}"
            for r in out[own].itertuples() if _map_only(r.metric)}
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
    from dina_datasets.stats.table import open_scores

    cells = open_scores(scores, filters, activation, storage_options).cells()
    columns = ["model", "metric", "explainer", "n", "n_undefined", "share_undefined",
               "degenerate", "reason"]
    return flag(cells, threshold)[columns]
