"""Can I trust the metric? A reliability card per (model, activation, metric), from the
scores table alone (no model): the split-half reliability of the explainer ranking, the
agreement across images (`consistency`), the validity against the controls (`validity`),
the share of undefined (degenerate) scores, and, when given, the planted-model check and
the test-retest ICC of the stochastic metrics; then one grade.

Grades (thresholds of Koo & Li 2016 for a reliability coefficient: below 0.5 poor, 0.5 to
0.75 moderate, 0.75 to 0.9 good, above 0.9 excellent; they grade by the lower bound of the
interval, as done here for `reliable`):

- `unreliable`: split-half below 0.5 (the ranking does not repeat on other images) or its
  interval reaching below 0 (no evidence that it repeats at all: on 40 simulated
  pure-noise tables of 300 images and 6 explainers, the estimate was 0.5 or more on 9, the
  interval's low end below 0 on all 40), or half the scores undefined or more
  (degenerate), or the planted model's right answer not ranked first, or a test-retest
  ICC below 0.5, or half the sampled maps or more all-zero, constant or near zero (`maps=`:
  the metric's epsilons decide their scores);
- `questionable`: the split-half interval reaches below 0.75, or the metric does not
  separate from random (`validity`), or 10 % or more of the scores undefined (or of the
  sampled maps degenerate), or a test-retest ICC below 0.75, or too few images (under 8)
  or ranked explainers (under 3) to tell, or the explainers tie on every half (nothing ranked);
- `reliable`: none of these.

Krippendorff's alpha is shown, not graded: it says whether single images agree, which a
ranking of means over many images does not need (a metric can rank reliably on 50,000
images with a low alpha; read its per-image scores with care then).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.analysis.stats import consistency, summaries, validity
from dina_datasets.analysis.stats.sanity import DEGENERATE_SHARE
from dina_datasets.analysis.table import open_scores, order
from dina_datasets.errors import ConfigError, check_positive_int

GRADES = ("reliable", "questionable", "unreliable")
GOOD = 0.75  # Koo & Li 2016: "good" from 0.75
POOR = 0.5  # Koo & Li 2016: "poor" below 0.5
UNDEFINED_QUESTIONABLE = 0.1
# Fewer images than 8: no paired verdict can reach alpha 0.01 (the smallest two-sided
# Wilcoxon p is 2 / 2**n, as the leaderboard's "too few images to tell"); fewer than 3
# ranked explainers: one split's Spearman is +1 or -1, so the split-half says nothing
# about how well the ranking repeats.
MIN_IMAGES, MIN_EXPLAINERS = 8, 3
CARD_COLUMNS = ["model", "activation", "metric", "n", "explainers", "split_half",
                "split_half_low", "split_half_high", "alpha", "alpha_raw", "separates_random",
                "best_vs_random", "degenerate_share", "degenerate_explainers",
                "degenerate_maps_share", "stochastic",
                "retest", "retest_icc", "planted", "grade", "reasons"]
DETERMINISTIC = "deterministic"
NOT_RUN = "not run"


@dataclass
class Reliability:
    """The frames of `reliability`: `cards` (one row per model, activation, metric:
    `CARD_COLUMNS`) and `validity` (one row per explainer and control: `validity.COLUMNS`
    and `activation`)."""

    cards: Any
    validity: Any


def stochastic(metric: str) -> bool | None:
    """The catalog's word on whether a metric draws random numbers (None: unknown)."""
    spec = catalog.METRICS.get(metric)
    return None if spec is None else spec.stochastic


def grade(card: dict[str, Any]) -> tuple[str, list[str]]:
    """(grade, reasons) of one card (see the module docstring)."""
    bad, doubtful = [], []
    sh, low = card["split_half"], card["split_half_low"]
    if card["explainers"] < MIN_EXPLAINERS:
        doubtful.append(f"{card['explainers']} explainer(s) ranked (the others degenerate or "
                        f"absent): at least {MIN_EXPLAINERS} are needed to tell")
    elif card["n"] < MIN_IMAGES:
        doubtful.append(f"too few images with every explainer's score ({card['n']}) to tell")
    elif not math.isfinite(sh):
        doubtful.append(f"the explainers tie on every half of the {card['n']} images: the "
                        "metric ranks nothing here")
    elif sh < POOR:
        bad.append(f"split-half {sh:.2f} < {POOR}: the ranking does not repeat on other "
                   "images")
    elif not low >= 0:
        bad.append(f"split-half interval reaches {low:.2f} < 0: no evidence that the ranking "
                   "repeats on other images")
    elif not low >= GOOD:
        doubtful.append(f"split-half interval reaches {low:.2f} < {GOOD}")
    share = card["degenerate_share"]
    if share >= DEGENERATE_SHARE:
        bad.append(f"{share:.0%} of the scores undefined (degenerate)")
    elif share >= UNDEFINED_QUESTIONABLE:
        doubtful.append(f"{share:.0%} of the scores undefined")
    maps = card.get("degenerate_maps_share", math.nan)
    what = "of the sampled maps degenerate (all-zero, constant or near zero)"
    if maps >= DEGENERATE_SHARE:
        bad.append(f"{maps:.0%} {what}")
    elif maps >= UNDEFINED_QUESTIONABLE:
        doubtful.append(f"{maps:.0%} {what}")
    if card["separates_random"] is False:
        doubtful.append("does not separate from random")
    if isinstance(card["planted"], str) and card["planted"].startswith("WRONG"):
        bad.append(f"planted model: {card['planted']}")
    icc = card["retest_icc"]
    if icc is not None and math.isfinite(icc):
        if icc < POOR:
            bad.append(f"test-retest ICC {icc:.2f} < {POOR}")
        elif icc < GOOD:
            doubtful.append(f"test-retest ICC {icc:.2f} < {GOOD}")
    if bad:
        return "unreliable", bad + doubtful
    return ("questionable" if doubtful else "reliable"), doubtful


def _planted_word(planted: Any, model: str, activation: str, metric: str) -> str:
    if planted is None or not len(planted):
        return NOT_RUN
    rows = planted[(planted["model"] == model) & (planted["metric"] == metric)
                   & (planted.get("activation", activation) == activation)]
    if rows.empty:
        return NOT_RUN
    wrong = rows[~rows["all_right"].astype(bool)]
    if wrong.empty:
        return f"right on every image ({int(rows['n'].min())})"
    return "WRONG: " + "; ".join(f"ideal not above {r.against} on {r.n - r.right} of {r.n}"
                                 for r in wrong.itertuples())


def _retest(retest: Any, model: str, activation: str, metric: str) -> tuple[str, float]:
    if not stochastic(metric):
        return DETERMINISTIC, math.nan
    if retest is None or not len(retest):
        return NOT_RUN, math.nan
    rows = retest[(retest["model"] == model) & (retest["metric"] == metric)
                  & (retest["activation"] == activation)]
    if rows.empty:
        return NOT_RUN, math.nan
    icc = float(rows["icc"].iloc[0])
    return f"ICC {icc:.2f} on {int(rows['n'].iloc[0])} scores", icc


def _maps_of(maps: Any, model: str, share: float) -> tuple[set[str], float]:
    """(explainers whose sampled maps are degenerate, share of degenerate sampled maps) of
    one model, from a `check_maps` frame (model, explainer, sampled, degenerate_maps)."""
    if maps is None or not len(maps):
        return set(), math.nan
    rows = maps[(maps["model"] == model) & (maps["sampled"] > 0)]
    if rows.empty:
        return set(), math.nan
    flagged = set(rows.loc[rows["degenerate_maps"] >= share * rows["sampled"], "explainer"])
    return flagged, float(rows["degenerate_maps"].sum() / rows["sampled"].sum())


def _cards_of(table: Any, activation: str, *, n_splits: int, confidence: float, seed: int,
              degenerate_share: float, planted: Any, retest: Any, maps: Any
              ) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    summary = summaries.summary(table, ci="normal", degenerate_share=degenerate_share)
    cards, controls = [], []
    for model in order(summary["model"], catalog.MODELS):
        of_model = summary[summary["model"] == model]
        flat, maps_share = _maps_of(maps, model, degenerate_share)
        for metric in order(of_model["metric"], catalog.METRICS):
            group = of_model[of_model["metric"] == metric]
            bad = group["degenerate"] | group["explainer"].isin(flat)
            names = order(group.loc[~bad & (group["n"] > 0), "explainer"], catalog.EXPLAINERS)
            total = float((group["n"] + group["n_undefined"]).sum())
            card = {"model": model, "activation": activation, "metric": metric, "n": 0,
                    "explainers": len(names), "split_half": math.nan,
                    "split_half_low": math.nan, "split_half_high": math.nan,
                    "alpha": math.nan, "alpha_raw": math.nan, "separates_random": None,
                    "best_vs_random": math.nan,
                    "degenerate_share": float(group["n_undefined"].sum()) / total if total
                    else 1.0,
                    "degenerate_explainers": ", ".join(group.loc[bad, "explainer"]),
                    "degenerate_maps_share": maps_share,
                    "stochastic": stochastic(metric)}
            if names:
                matrix = table.matrix(model, metric, names)
                complete = matrix.complete()
                card["n"] = len(complete)
                sh = consistency.split_half(complete, n_splits=n_splits,
                                            confidence=confidence, seed=seed)
                card["split_half"], card["split_half_low"], card["split_half_high"] = sh
                card["alpha"], card["alpha_raw"] = consistency.agreement(complete)
                rows = validity.against_controls(matrix.values, names, metric, model,
                                                 confidence)
                card["separates_random"] = validity.separates(rows, confidence)
                random = [r[6] for r in rows if r[3] == validity.RANDOM]
                card["best_vs_random"] = max(random) if random else math.nan
                controls += [[*r, activation] for r in rows]
            card["retest"], card["retest_icc"] = _retest(retest, model, activation, metric)
            card["planted"] = _planted_word(planted, model, activation, metric)
            card["grade"], reasons = grade(card)
            card["reasons"] = "; ".join(reasons)
            cards.append(card)
    return cards, controls


def reliability(scores: Any, *, filters=(), activation: str | None = None,
                n_splits: int = consistency.N_SPLITS,
                confidence: float = consistency.CONFIDENCE, seed: int = 0,
                degenerate_share: float = DEGENERATE_SHARE, planted: Any = None,
                retest: Any = None, maps: Any = None,
                storage_options: dict | None = None) -> Reliability:
    """The reliability cards of a scores table (path, URL, relation, frame or `Scores`).
    `activation`: one output activation, or None for each of them (never pooled).
    `planted`: the planted-model rows of `dina_datasets.demo.validity.planted_validity`;
    `retest`: rows (model, activation, metric, n, icc) of a re-run with another seed;
    `maps`: the maps themselves, sampled (rows model, explainer, sampled, degenerate_maps:
    the sanity floor's map check): explainers with degenerate maps are not ranked, and the
    share of degenerate maps grades the metric like undefined scores."""
    import pandas as pd

    check_positive_int("n_splits", n_splits)
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be between 0 and 1, got {confidence}")
    base = open_scores(scores, filters, activation, storage_options)
    found = sorted(r[0] for r in base.query("SELECT DISTINCT activation FROM scores")
                   .fetchall())
    if not found:
        present = open_scores(scores, (), None, storage_options).query(
            "SELECT DISTINCT activation FROM scores").fetchall()
        raise ConfigError(f"no scores left after the filters ({' AND '.join(base.filters)}); "
                          "the table's activations: "
                          f"{', '.join(sorted(str(r[0]) for r in present)) or 'none'}")
    cards, controls = [], []
    for name in found:
        table = open_scores(base, [f"activation={name}"]) if len(found) > 1 else base
        more, rows = _cards_of(table, name, n_splits=n_splits, confidence=confidence,
                               seed=seed, degenerate_share=degenerate_share, planted=planted,
                               retest=retest, maps=maps)
        cards += more
        controls += rows
    # True / False / None (RandomExp absent) stay Python values, whatever pandas infers
    frame = pd.DataFrame(cards, columns=CARD_COLUMNS).astype({"separates_random": object,
                                                              "stochastic": object})
    return Reliability(frame,
                       pd.DataFrame(controls, columns=[*validity.COLUMNS, "activation"]))


def grade_labels(cards: Any, activation: str = "softmax") -> dict[tuple[str, str], str]:
    """{(model, metric): grade} of one activation's cards, for a leaderboard to print
    beside the metric's name."""
    rows = cards[cards["activation"] == activation]
    return {(r.model, r.metric): r.grade for r in rows.itertuples()}


def metric_labels(cards: Any, activation: str = "softmax") -> dict[str, str]:
    """{metric: label} for a leaderboard header: the grade when every model's card agrees,
    else the worst one and on how many models (e.g. "unreliable on 2 of 9 models")."""
    rows = cards[cards["activation"] == activation]
    labels = {}
    for metric, group in rows.groupby("metric", sort=False):
        worst = max(group["grade"], key=GRADES.index)
        count = int((group["grade"] == worst).sum())
        labels[metric] = worst if count == len(group) else (
            f"{worst} on {count} of {len(group)} models")
    return labels


def card_matrix(cards: Any, activation: str = "softmax") -> Any:
    """The card as a frame: one row per metric, one column per model, the grades (empty
    where not scored); for the explorer and the picture."""
    rows = cards[cards["activation"] == activation]
    wide = rows.pivot(index="metric", columns="model", values="grade")
    metrics = order(wide.index, catalog.METRICS)
    models = order(wide.columns, catalog.MODELS)
    return wide.reindex(index=metrics, columns=models).fillna("")


SECTION_HOW_TO_READ = """\
How to read it: one card per model, output activation and metric. **split_half** is the
Spearman-Brown corrected correlation between the explainer rankings of two random halves of
the images ([low, high]: its 95 % interval over bootstrap resamples): near 1, the ranking
repeats on other images; near 0 or below, it is luck. **alpha** (Krippendorff, interval
level, images centred) says whether single images agree on how far apart the explainers
are. **separates** says whether some explainer beats RandomExp on most images (Wilson
interval above 1/2); **undefined** is the share of scores the metric could not compute
(degenerate maps). **retest** is the ICC(A,1) of a re-run with another seed
(stochastic metrics only), **planted** whether the planted model's right answer comes
first on every image. Grade: `reliable` / `questionable` / `unreliable`, thresholds of
Koo & Li (2016): below 0.5 poor, 0.75 and above good.
"""


def _number(value: Any) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.2f}"


def markdown_section(result: Reliability, picture: str | None = None) -> str:
    """The report's "Metric reliability" section: how to read it, the cards, the picture."""
    lines = ["## Metric reliability\n", SECTION_HOW_TO_READ,
             "| model | activation | metric | n | split_half [low, high] | alpha | separates "
             "| undefined | retest | planted | grade |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result.cards.itertuples():
        separates = {True: "yes", False: "no", None: ""}[r.separates_random]
        split = ("n/a" if not math.isfinite(r.split_half) else
                 f"{_number(r.split_half)} [{_number(r.split_half_low)}, "
                 f"{_number(r.split_half_high)}]")
        lines.append(f"| {r.model} | {r.activation} | {r.metric} | {r.n} | {split} | "
                     f"{_number(r.alpha)} | {separates} | "
                     f"{r.degenerate_share:.0%} | {r.retest} | {r.planted} | **{r.grade}** |")
    lines.append("")
    if picture:
        lines.append(f"![reliability card]({picture})\n")
    reasons = [f"- {r.model} / {r.activation} / {r.metric}: {r.reasons}"
               for r in result.cards.itertuples() if r.reasons]
    if reasons:
        lines += ["Why not `reliable`:\n", *reasons, ""]
    return "\n".join(lines) + "\n"


def records(result: Reliability) -> list[dict[str, Any]]:
    """The cards as JSON-safe records (NaN -> None)."""
    out = []
    for row in result.cards.to_dict("records"):
        out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else
                        (v.item() if isinstance(v, np.generic) else v))
                    for k, v in row.items()})
    return out
