"""Paired comparisons: every explainer of a model is scored on the same images, so each pair
is compared image by image.

For each (model, metric) and each pair (a, b) of non-degenerate explainers, on the images
both have: the Wilcoxon signed-rank test of the differences a - b (`scipy.stats.wilcoxon`,
two-sided, zero differences dropped), the effect size (the matched-pairs rank-biserial
correlation r = (R+ - R-) / (R+ + R-) of the same signed ranks: +1 when a is higher on every
image, -1 when lower), the median and mean difference, and the equivalence test (TOST of the
mean difference within the margin: `equivalence`). The p-values of the pairs of one (model,
metric) are adjusted together (Holm), the difference tests and the equivalence tests each.

The verdict of a over b, at `alpha` (default 0.01), one of four:
- "equivalent": the TOST shows the mean difference inside the margin (p_equivalence_adjusted
  < alpha), even when a (negligible) difference is significant;
- "better" / "worse" (in the catalog's direction; "higher" / "lower" for a metric of
  unknown direction): p_adjusted < alpha;
- "inconclusive": neither; also every pair of a (model, metric) with too few images for any
  verdict (`detectability`: 4 images cannot reach alpha).
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.analysis.stats import summaries
from dina_datasets.analysis.stats.equivalence import MARGIN, check_margin, margin_of, tost
from dina_datasets.analysis.stats.power import can_tell
from dina_datasets.analysis.stats.sanity import DEGENERATE_SHARE
from dina_datasets.analysis.table import higher_is_better, open_scores, order
from dina_datasets.errors import ConfigError

ALPHA = 0.01
RANDOM = "RandomExp"
EQUIVALENT = "equivalent"
INCONCLUSIVE = "inconclusive"
COLUMNS = ["model", "metric", "a", "b", "n", "statistic", "p_value", "p_adjusted", "effect",
           "median_diff", "mean_diff", "sd_diff", "margin", "p_equivalence",
           "p_equivalence_adjusted", "verdict", "random_like", "paired_by"]


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (zeros dropped): the
    signed ranks of |d| (ties averaged, as `scipy.stats.rankdata` ranks them), one sort."""
    d = differences[differences != 0]
    if len(d) == 0:
        return float("nan")
    size = np.abs(d)
    order = np.argsort(size)
    size = size[order]
    positive = d[order] > 0
    starts = np.flatnonzero(np.r_[True, size[1:] != size[:-1]])  # groups of equal |d|
    if len(starts) == len(d):  # no ties: the ranks are 1..n
        plus = float((np.flatnonzero(positive) + 1).sum())
    else:
        ends = np.r_[starts[1:], len(d)]
        ranks = np.repeat((starts + ends + 1) / 2, ends - starts)  # a group's average rank
        plus = float(ranks[positive].sum())
    total = len(d) * (len(d) + 1) / 2  # plus + minus
    return float((2 * plus - total) / total)


def compare(a: np.ndarray, b: np.ndarray, margin: float = math.nan
            ) -> tuple[int, float, float, float, float, float, float, float]:
    """(n, statistic, p_value, effect, median_diff, mean_diff, sd_diff, p_equivalence) of a
    vs b on the images both have."""
    from scipy import stats

    both = np.isfinite(a) & np.isfinite(b)
    d = a[both] - b[both]
    n = int(both.sum())
    if n == 0:
        return 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan
    median, mean = float(np.median(d)), float(np.mean(d))
    sd = float(np.std(d, ddof=1)) if n > 1 else np.nan
    equivalence = tost(d, margin)
    if not d.any():
        return n, np.nan, np.nan, np.nan, median, mean, sd, equivalence
    result = stats.wilcoxon(a[both], b[both])
    return (n, float(result.statistic), float(result.pvalue), rank_biserial(d), median, mean,
            sd, equivalence)


def verdict(p_adjusted: float, effect: float, metric: str, alpha: float,
            p_equivalence_adjusted: float = math.nan, tell: bool = True) -> str:
    """The verdict of a over b (see the module docstring)."""
    if not tell:
        return INCONCLUSIVE
    if p_equivalence_adjusted < alpha:
        return EQUIVALENT
    if not p_adjusted < alpha or not np.isfinite(effect) or effect == 0:
        return INCONCLUSIVE
    direction = higher_is_better(metric)
    if direction is None:
        return "higher" if effect > 0 else "lower"
    return "better" if (effect > 0) == direction else "worse"


def family(values: np.ndarray, pairs_: Any = None, margin: float = math.nan) -> list[tuple]:
    """(i, j, *compare) for each pair of columns (default: every i < j) of images x
    explainers `values`."""
    if pairs_ is None:
        pairs_ = itertools.combinations(range(values.shape[1]), 2)
    return [(i, j, *compare(values[:, i], values[:, j], margin)) for i, j in pairs_]


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (NaN stays NaN): the step-down maximum of (m - k) p_(k), capped
    at 1 (equal to statsmodels' `multipletests(method="holm")`, without its `gc.collect()`)."""
    adjusted = np.full(len(p), np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    if tested.size:
        values = np.asarray(p, np.float64)[tested]
        order = np.argsort(values, kind="stable")
        steps = (len(values) - np.arange(len(values))) * values[order]
        adjusted[tested[order]] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return adjusted


def pairs(scores: Any, *, alpha: float = ALPHA, filters=(), activation: str | None = "softmax",
          degenerate_share: float = DEGENERATE_SHARE, summary: Any = None,
          margin: float = MARGIN, margin_units: str = "sd", workers: int | None = None,
          storage_options: dict | None = None) -> Any:
    """One row per (model, metric, a, b): `COLUMNS` (a pandas frame). `margin`: the
    equivalence margin, a fraction of the metric's per-image spread (`margin_units="sd"`,
    default 0.1) or in score units (`"score"`): see `equivalence`. `random_like` marks the
    pairs of an explainer with RandomExp that are equivalent; `paired_by` the key that
    paired the images ("image_id" or the record "index": see `Scores.matrix`). `summary`: a
    summary frame of the same table, to reuse (its degenerate flags decide who is compared).
    `workers`: threads testing the pairs (default: the CPUs, at most 4; the sorts behind the
    tests release the GIL)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1, got {alpha}")
    check_margin(margin, margin_units)
    table = open_scores(scores, filters, activation, storage_options)
    table.one_activation()  # never pools activations
    if summary is None:
        summary = summaries.summary(table, ci="normal", degenerate_share=degenerate_share)
    workers = workers or min(4, os.cpu_count() or 1)
    jobs = []
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=workers) as pool:
        # scipy's "sample size too small" for tiny n: the p-value says it already
        warnings.simplefilter("ignore", UserWarning)
        for (model, metric), group in summary.groupby(["model", "metric"], sort=False):
            kept = group[~group["degenerate"] & (group["n"] > 0)]
            names = order(kept["explainer"], catalog.EXPLAINERS)
            if len(names) < 2:
                continue
            limit = margin_of(kept["std"], margin, margin_units)
            # DuckDB queries stay on this thread; the tests run in the pool, the pairs of a
            # family split between the workers, a few families ahead at most (bounded memory)
            waiting = [part for job in jobs for part in job[3] if not part.done()]
            if len(waiting) > 2 * workers:
                waiting[0].result()
            matrix = table.matrix(model, metric, names)
            every = list(itertools.combinations(range(len(names)), 2))
            parts = [pool.submit(family, matrix.values, every[k::workers], limit)
                     for k in range(workers)]
            jobs.append((model, metric, names, parts, matrix.paired_by, limit))
        rows = []
        for model, metric, names, parts, paired_by, limit in jobs:
            found = sorted(r for part in parts for r in part.result())  # (i, j) order
            adjusted = holm(np.array([r[4] for r in found], np.float64))
            equivalence = holm(np.array([r[9] for r in found], np.float64))
            for (i, j, n, statistic, p_value, effect, median, mean, sd, p_eq), q, q_eq in zip(
                    found, adjusted, equivalence, strict=True):
                word = verdict(q, effect, metric, alpha, q_eq, can_tell(n, len(found), alpha))
                rows.append([model, metric, names[i], names[j], n, statistic, p_value, q,
                             effect, median, mean, sd, limit, p_eq, q_eq, word,
                             RANDOM in (names[i], names[j]) and word == EQUIVALENT,
                             paired_by])
    return pd.DataFrame(rows, columns=COLUMNS)


def verdicts(pairs_frame: Any) -> dict[tuple[str, str, str, str], str]:
    """{(model, metric, a, b): verdict of a over b} for both orders of every pair."""
    flip = {"better": "worse", "worse": "better", "higher": "lower", "lower": "higher"}
    out = {}
    for r in pairs_frame[["model", "metric", "a", "b", "verdict"]].itertuples(index=False):
        out[r.model, r.metric, r.a, r.b] = r.verdict
        out[r.model, r.metric, r.b, r.a] = flip.get(r.verdict, r.verdict)
    return out


def annotate(summary: Any, pairs_frame: Any, alpha: float = ALPHA) -> Any:
    """The summary with `next` (the first explainer ranked below each ranked one), `vs_next`
    (the verdict of each ranked explainer over it),
    `vs_random` (its verdict over RandomExp, where that model has it), `tied` (its rank is
    shared with another explainer of equal mean) and `tell` (False where the images of its
    (model, metric) are too few for any verdict at `alpha`: `detectability`) added."""
    found = verdicts(pairs_frame)
    following: dict[tuple[str, str, float], str] = {}
    ranked = summary[np.isfinite(summary["rank"])].sort_values("rank")
    for (model, metric), group in ranked.groupby(["model", "metric"], sort=False):
        ranks, names = group["rank"].to_numpy(), group["explainer"].to_numpy()
        for rank in np.unique(ranks):
            later = np.nonzero(ranks > rank)[0]
            if len(later):
                following[model, metric, rank] = names[later[0]]
    tell = {key: can_tell(int(group["n"].max()), len(group), alpha)
            for key, group in pairs_frame.groupby(["model", "metric"], sort=False)}
    vs_next, vs_random, nexts = [], [], []
    for r in summary.itertuples():
        nxt = following.get((r.model, r.metric, r.rank))
        nexts.append(nxt)
        vs_next.append(None if nxt is None else found.get((r.model, r.metric, r.explainer,
                                                            nxt)))
        vs_random.append(found.get((r.model, r.metric, r.explainer, RANDOM)))
    out = summary.copy()
    out["next"], out["vs_next"], out["vs_random"] = nexts, vs_next, vs_random
    # explainers with equal means share their rank: `tied` says so (no leader among them)
    shared = out.groupby(["model", "metric", "rank"])["explainer"].transform("size")
    out["tied"] = np.isfinite(out["rank"]) & (shared > 1)
    out["tell"] = [tell.get((m, x), True) for m, x in zip(out["model"], out["metric"],
                                                          strict=True)]
    return out
