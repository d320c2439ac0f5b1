"""The sanity floor: explainers whose scores are mostly undefined are flagged `degenerate`,
reported but never ranked, compared or crowned.

A score is undefined (null) where the metric has no value for the map, e.g. Complexity and
Sparseness of an all-zero map, Complexity of a constant one. An explainer is degenerate for
a (model, metric) when the share of its undefined scores there reaches `threshold` (default
50 %). When that metric is one of the map alone (Sparseness, Complexity: the catalog's
`needs_model=False`), the maps themselves are degenerate, so the explainer is flagged for
every metric of that model: a fidelity score of an all-zero map is defined but meaningless.

That rule needs undefined scores, which only our own evaluation writes (the published
formula gives an all-zero map Complexity 0.0, the best value). So the maps themselves are
checked too, wherever they lie beside the scores, published maps included (no sidecar index
needed: the reader finds the fixed record size): `check_maps` reads `MAP_SAMPLE` (8) records
per cell, evenly spread from the first to the last, by ranged reads, and calls a map
degenerate when it is all-zero, constant (`dina_datasets.maps.degenerate`) or near zero: its
total |attribution| (after the channel mean, as the metrics see it) under `NEAR_ZERO` = 1e-6.
Why 1e-6: Complexity and Sparseness add an epsilon of 1e-8 to that total; at 1e-6 it moves
every normalised value by 1 %, and below it the epsilon decides the score (Complexity of one
|N(0,1)| 224x224 map: 10.54 at scale 1 and 1e-9, 8.62 at 1e-12, total 4e-8). An explainer
whose sampled maps are degenerate in at least `threshold` of the cases is flagged for every
metric of that model: never ranked or compared, its published numbers kept with the flag.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dina_datasets import catalog

DEGENERATE_SHARE = 0.5
MAP_SAMPLE = 8
NEAR_ZERO = 1e-6
MAP_COLUMNS = ["model", "explainer", "sampled", "degenerate_maps", "state", "reason"]


def _map_only(metric: str) -> bool:
    spec = catalog.METRICS.get(metric)
    return spec is not None and not spec.needs_model


def _shares(cells: Any) -> Any:
    total = cells["n"] + cells["n_undefined"]
    return (cells["n_undefined"] / total.where(total > 0)).fillna(1.0)


def flag(cells: Any, threshold: float = DEGENERATE_SHARE, every_metric: Any = None,
         maps: Any = None) -> Any:
    """`cells` (model, metric, explainer, n, n_undefined, ...) with `share_undefined`,
    `degenerate` and `reason` columns added. `every_metric`: the cells of the same rows
    under every metric (when `cells` holds only some), to judge the maps. `maps`: a
    `check_maps` frame (the maps themselves, sampled)."""
    out = cells.copy()
    out["share_undefined"] = _shares(out)
    own = out["share_undefined"] >= threshold
    context = out if every_metric is None else every_metric.assign(
        share_undefined=_shares(every_metric))
    judged = {(r.model, r.explainer): f"degenerate maps ({r.metric} undefined for "
              f"{r.share_undefined:.0%})"
              for r in context[context["share_undefined"] >= threshold].itertuples()
              if _map_only(r.metric)}
    if maps is not None and len(maps):
        seen = maps[maps["sampled"] > 0]
        for r in seen[seen["degenerate_maps"] >= threshold * seen["sampled"]].itertuples():
            judged.setdefault((r.model, r.explainer), r.reason)
    reasons = []
    for row, flagged in zip(out.itertuples(), own, strict=True):
        if flagged:
            reasons.append(f"{row.share_undefined:.0%} of its {row.metric} scores undefined")
        else:
            reasons.append(judged.get((row.model, row.explainer), ""))
    out["reason"] = reasons
    out["degenerate"] = out["reason"] != ""
    return out


def map_state(explanation: np.ndarray) -> str:
    """"all-zero", "constant", "no finite value", "near-zero" (total |a| after the channel
    mean under `NEAR_ZERO`) or "" for a map that ranks its pixels."""
    from dina_datasets import maps

    array = np.asarray(explanation, np.float64)
    if maps.degenerate(array[None])[0]:
        finite = array[np.isfinite(array)]
        if finite.size == 0:
            return "no finite value"
        return "all-zero" if not finite.any() else "constant"
    seen = array.mean(axis=-1) if array.ndim == 3 else array
    return "near-zero" if np.nansum(np.abs(seen)) < NEAR_ZERO else ""


def sample(num_records: int, k: int = MAP_SAMPLE) -> np.ndarray:
    """k record indices evenly spread over a file of num_records (first and last kept)."""
    if num_records <= 0 or k <= 0:
        return np.zeros(0, np.int64)
    return np.unique(np.linspace(0, num_records - 1, min(k, num_records)).round()
                     .astype(np.int64))


def _check_cell(url: str, k: int, storage_options: dict | None) -> tuple[int, int, str]:
    """(sampled, degenerate, most common state) of one explanations file."""
    from collections import Counter

    from dina_datasets.recordio.reader import inspect
    from dina_datasets.recordio.records import read_explanations_at

    picks = sample(inspect(url, storage_options).num_records or 0, k)
    states = [map_state(m) for m in read_explanations_at(url, picks,
                                                         storage_options=storage_options)]
    bad = [s for s in states if s]
    return len(states), len(bad), Counter(bad).most_common(1)[0][0] if bad else ""


def check_maps(data_url: str, cells: Any, *, k: int = MAP_SAMPLE,
               storage_options: dict | None = None, workers: int = 8) -> Any:
    """One row per (model, explainer) of `cells` (pairs, or a frame with those columns)
    whose explanations file lies under `data_url`: `MAP_COLUMNS` (k maps read per cell by
    ranged reads; see the module docstring). Cells without maps are left out."""
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    from dina_datasets import storage
    from dina_datasets.layout import Layout

    if hasattr(cells, "columns"):
        cells = cells[["model", "explainer"]].drop_duplicates().itertuples(index=False)
    layout = Layout(data_url)
    urls = {(m, e): layout.explanations(m, e) for m, e in cells}
    rows = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        present = dict(zip(urls, pool.map(lambda u: storage.exists(u, storage_options),
                                          urls.values()), strict=True))
        jobs = {key: pool.submit(_check_cell, url, k, storage_options)
                for key, url in urls.items() if present[key]}
        for (model, explainer), job in jobs.items():
            sampled, bad, state = job.result()
            reason = (f"degenerate maps ({bad} of {sampled} sampled maps {state})"
                      if bad else "")
            rows.append([model, explainer, sampled, bad, state, reason])
    return pd.DataFrame(rows, columns=MAP_COLUMNS)


def degenerate(scores: Any, *, threshold: float = DEGENERATE_SHARE, filters=(),
               activation: str | None = "softmax", maps: Any = None,
               storage_options: dict | None = None) -> Any:
    """Per (model, metric, explainer): n, n_undefined, share_undefined, degenerate, reason.
    `maps`: a `check_maps` frame (the maps themselves, sampled)."""
    from dina_datasets.analysis.table import open_scores

    table = open_scores(scores, filters, activation, storage_options)
    table.one_activation()  # never pools activations
    columns = ["model", "metric", "explainer", "n", "n_undefined", "share_undefined",
               "degenerate", "reason"]
    return flag(table.cells(), threshold, table.context(), maps)[columns]


def table_maps(table: Any, maps_url: str | None, map_sample: int,
                 storage_options: dict[str, Any] | None = None) -> Any:
    """`stats.check_maps` of the table's cells under `maps_url` (None when not asked)."""
    if not maps_url or map_sample <= 0:
        return None
    cells = table.frame("SELECT DISTINCT model, explainer FROM scores")
    return check_maps(maps_url, cells, k=map_sample, storage_options=storage_options)
