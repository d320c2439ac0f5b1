"""`dina report`: which explainer can I trust, for which model and metric, and how sure is
that? Every statistic of `dina_datasets.stats` on one scores table, written under one folder:

- `report.md`: the answers in order (leaders and verdicts, sanity floor, across models,
  agreement, stability, distributions), with how to read each;
- `tables/NAME.csv` and `tables/NAME.md`: summary, pairs, power, leaders, degenerate, friedman,
  average_ranks, agreement_metrics, agreement_models, stability;
- `figures/NAME.png` and `.svg`: `cd_{metric}` (critical-difference diagrams),
  `agreement_metrics`, `agreement_models` (heatmaps), `stability_{metric}` (curves),
  `distributions_{model}` (violins), `reliability` (the metrics' reliability card, with
  `tables/reliability.*`: see `dina_datasets.analysis.stats.grades`).

Cost vs quality: `write_report(..., cost=frame)` with one row per (model, explainer) and a
`seconds_per_image` column adds `tables/cost_quality.*`, `figures/cost_{metric}.*` and a
section; without cost records there is no such section (nothing is made up).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dina_datasets import catalog, storage
from dina_datasets.errors import ConfigError

COST_COLUMNS = ("model", "explainer", "seconds_per_image")
HOW_TO_READ = """\
How to read this report:

- **Verdicts**: every explainer of a model is scored on the same images, so two explainers
  are compared image by image, each pair of a (model, metric) getting one of four verdicts:
  *better* / *worse* (Wilcoxon signed-rank test of the paired differences, p-values
  Holm-adjusted over the pairs of that model and metric, below alpha); *equivalent* (the
  two one-sided tests, TOST, show the mean paired difference inside the equivalence margin,
  Holm-adjusted the same way); *inconclusive* (neither: the data do not say; this is NOT
  evidence that the two are alike). Equivalent wins over a significant but negligible
  difference.
- **Equivalence margin**: by default a tenth of the metric's per-image spread (the pooled
  standard deviation of the explainers' scores for that model): half of Cohen's "small"
  effect, a difference in means far smaller than the differences between images
  (`--equivalence-margin`, `--margin-units score` for a margin in the metric's units). The
  `margin` column of the pairs gives it in score units.
- **What the images can tell**: per model and metric, the smallest paired difference the
  data could have detected (80 % power, at Holm's strictest level) and the images needed to
  decide at the margin. With too few images (4 images: the signed-rank test cannot go below
  p = 0.125) there is no verdict at all: "too few images to tell".
- **Leaders**: per model and metric, the explainer with the best mean (rank 1, in the
  metric's direction), its 95 % interval, n images and its verdict against the runner-up:
  crown it only when it is *better*; *equivalent* is a shown tie.
- **Pairing key**: images are paired on `image_id` when every row has one; rows without ids
  pair on the record `index` only when no cell of that model and metric has ids (the
  published cells of one model, written in one order); a mix is refused.
- **Effect** (pairs table): the matched-pairs rank-biserial correlation, from -1 (a lower
  on every image) to +1 (a higher on every image); 0.1 is small, 0.5 large. With 50,000
  images a tiny effect is "significant": read the effect and the mean difference beside the
  margin.
- **Sanity floor**: an explainer whose scores are mostly undefined, or whose maps are
  all-zero, constant or near zero, is *degenerate*: listed with its numbers, never ranked.
  An explainer equivalent to RandomExp (random maps) under a metric does no better than
  chance there; one worse than RandomExp does worse.
- **Across models**: the Friedman test asks whether the explainers' ranks differ at all
  across the models; the critical-difference (CD) diagram places each explainer at its
  average rank (1 = best), and a bar joins explainers whose average ranks differ by less
  than the Nemenyi critical difference: those cannot be told apart across models.
- **Agreement**: Kendall's tau between two rankings of the same explainers, from -1
  (reversed) to 1 (identical). Between metrics (per model): do the metrics agree on what a
  good explanation is? Between models (per metric): does a ranking transfer?
- **Stability**: rankings recomputed on bootstrap subsamples of n images; the share that
  equals the full ranking and the tau to it. Where the curve is flat near 1, n images are
  enough; the last point (all images, resampled) shows the noise left in the full ranking.
"""


@dataclass
class Report:
    """What `write_report` wrote: file URLs, and the frames behind them."""

    out: str
    files: list[str] = field(default_factory=list)
    frames: dict[str, Any] = field(default_factory=dict)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (float, np.floating)):
        return "" if not math.isfinite(value) else f"{value:.4g}"
    text = str(value)
    return "" if text in ("nan", "None", "<NA>") else text.replace("|", "\\|")


def markdown_table(frame: Any) -> str:
    """A frame as a Markdown table (numbers to 4 significant digits; `DataFrame.to_markdown`)."""
    if frame is None or len(frame.columns) == 0:
        return "(none)\n"
    cells = frame.astype(object).map(_cell) if len(frame) else frame.astype(str)
    return cells.to_markdown(index=False, disable_numparse=True) + "\n"


class _Writer:
    def __init__(self, out: str, storage_options: dict[str, Any] | None) -> None:
        self.out, self.options, self.files = out, storage_options, []

    def bytes(self, name: str, data: bytes) -> str:
        url = storage.join(self.out, name)
        with storage.atomic_write(url, "wb", self.options) as handle:
            handle.write(data)
        self.files.append(url)
        return name

    def table(self, name: str, frame: Any) -> None:
        self.bytes(f"tables/{name}.csv", frame.to_csv(index=False).encode())
        self.bytes(f"tables/{name}.md", markdown_table(frame).encode())

    def figure(self, name: str, fig: Any) -> str:
        from dina_datasets.viz import charts as figures

        for fmt, data in figures.render(fig).items():
            self.bytes(f"figures/{name}.{fmt}", data)
        return f"figures/{name}.png"


def _leaders(annotated: Any) -> Any:
    import pandas as pd

    from dina_datasets.analysis.stats.power import FEW

    rows = []
    for (model, metric), group in annotated.groupby(["model", "metric"], sort=False):
        ranked = group[group["rank"].notna()].sort_values("rank")
        if ranked.empty:
            continue
        top = ranked.iloc[0]
        runner = ranked["explainer"].iloc[1] if len(ranked) > 1 else ""
        rows.append({"model": model, "metric": metric, "leader": top["explainer"],
                     "mean": top["mean"], "ci_low": top["ci_low"], "ci_high": top["ci_high"],
                     "n": top["n"], "runner_up": runner,
                     "vs_next": top["vs_next"] if top["tell"] else FEW,
                     "vs_RandomExp": top["vs_random"] if top["tell"] else FEW})
    return pd.DataFrame(rows)


def _check_cost(cost: Any) -> Any:
    missing = [c for c in COST_COLUMNS if c not in getattr(cost, "columns", ())]
    if missing:
        raise ConfigError(f"cost records must be a frame with columns {', '.join(COST_COLUMNS)}"
                          f"; missing {', '.join(missing)}")
    return cost[list(COST_COLUMNS)]


def write_report(scores: Any, out: str, *, filters: Iterable[str] = (),
                 activation: str | None = "softmax", alpha: float = 0.01,
                 margin: float | None = None, margin_units: str = "sd",
                 maps_url: str | None = None, map_sample: int | None = None,
                 alpha_cd: float = 0.05, ci: str = "bootstrap", n_boot: int = 1000,
                 sizes: tuple[int, ...] | None = None, stability_boot: int = 200,
                 seed: int = 0, degenerate_share: float | None = None, cost: Any = None,
                 figures: bool = True, storage_options: dict[str, Any] | None = None,
                 say: Callable[[str], None] | None = None, planted: Any = None) -> Report:
    """Compute every statistic of the scores table and write the report under `out`.
    `margin`: the equivalence margin (`stats.pairs`; default `stats.MARGIN`). `maps_url`:
    the folder of the cells' maps, `map_sample` (default `stats.MAP_SAMPLE`) of each
    checked for degenerate maps (`stats.check_maps`). `planted`: the planted model's check
    (`dina_datasets.demo.validity`) for the reliability section."""
    from dina_datasets.analysis import stats
    from dina_datasets.analysis.leaderboard import checked_maps
    from dina_datasets.analysis.stats.power import COLUMNS as POWER_COLUMNS
    from dina_datasets.analysis.table import higher_is_better, order
    from dina_datasets.viz import charts as draw

    say = say or (lambda _: None)
    sizes = tuple(sizes or stats.SIZES)
    share = stats.DEGENERATE_SHARE if degenerate_share is None else degenerate_share
    cost = None if cost is None else _check_cost(cost)
    table = stats.open_scores(scores, list(filters), activation, storage_options)
    say("summary (bootstrap intervals)" if ci == "bootstrap" else "summary")
    map_sample = stats.MAP_SAMPLE if map_sample is None else map_sample
    maps = checked_maps(table, maps_url, map_sample, storage_options)
    summary = stats.summary(table, ci=ci, n_boot=n_boot, seed=seed, degenerate_share=share,
                            maps=maps)
    say("paired comparisons")
    margin = stats.MARGIN if margin is None else margin
    pairs = stats.pairs(table, alpha=alpha, summary=summary, margin=margin,
                        margin_units=margin_units)
    annotated = stats.annotate(summary, pairs, alpha)
    power = stats.detectability(pairs, alpha) if len(pairs) else pairs.iloc[:0, :0].reindex(
        columns=POWER_COLUMNS)
    say("across models, agreement")
    friedman = stats.friedman(summary, alpha=alpha_cd)
    ranks = stats.average_ranks(summary)
    metric_tau, model_tau = stats.metric_agreement(summary), stats.model_agreement(summary)
    say("stability")
    stability = stats.stability(table, sizes=sizes, n_boot=stability_boot, seed=seed,
                                summary=summary)
    say("metric reliability")
    trust = stats.reliability(table, seed=seed, degenerate_share=share, planted=planted,
                              maps=maps)
    flagged = annotated[annotated["degenerate"]][["model", "metric", "explainer", "n",
                                                  "n_undefined", "mean", "reason"]]
    randomish = annotated[annotated["vs_random"].isin(["equivalent", "worse"])][
        ["model", "metric", "explainer", "mean", "rank", "vs_random"]]
    leaders = _leaders(annotated)
    frames = {"summary": annotated, "pairs": pairs, "leaders": leaders, "power": power,
              "degenerate": flagged,
              "friedman": friedman, "average_ranks": ranks, "agreement_metrics": metric_tau,
              "agreement_models": model_tau, "stability": stability}
    writer = _Writer(out, storage_options)
    for name, frame in frames.items():
        writer.table(name, frame)

    pictures: dict[str, list[str]] = {"cd": [], "agreement": [], "stability": [],
                                      "distributions": [], "cost": []}
    if figures:
        say("figures")
        for row in friedman.itertuples():
            nemenyi = stats.nemenyi(summary, row.metric)
            metric_ranks = ranks[ranks["metric"] == row.metric].set_index("explainer")
            if nemenyi.empty or len(metric_ranks) < 2:
                continue
            fig = draw.cd_diagram(metric_ranks["average_rank"], nemenyi, metric=row.metric,
                                  cd=row.cd, models=row.models, alpha=alpha_cd,
                                  friedman_p=row.p_value)
            pictures["cd"].append(writer.figure(f"cd_{row.metric}", fig))
        for name, frame, a, b, title in (
                ("agreement_metrics", metric_tau, "metric_a", "metric_b",
                 "Do the metrics agree? Kendall's tau of explainer rankings, mean over models"),
                ("agreement_models", model_tau, "model_a", "model_b",
                 "Does a ranking transfer? Kendall's tau between models, mean over metrics")):
            if len(frame) and frame["tau"].notna().any():
                fig = draw.heatmap(stats.matrix(frame, a, b), title=title)
                pictures["agreement"].append(writer.figure(name, fig))
        for metric, group in stability.groupby("metric", sort=False):
            pictures["stability"].append(writer.figure(
                f"stability_{metric}", draw.stability_curves(group, metric=metric)))
        for model, group in summary.groupby("model", sort=False):
            samples = {}
            for metric, cells in group.groupby("metric", sort=False):
                names = order(cells.loc[cells["n"] > 0, "explainer"], catalog.EXPLAINERS)
                matrix = table.matrix(model, metric, names)
                samples[metric] = {e: v[np.isfinite(v)] for e, v in
                                   zip(names, matrix.values.T, strict=True)}
            fig = draw.distributions(samples, model=model,
                                     directions=higher_is_better)
            pictures["distributions"].append(writer.figure(f"distributions_{model}", fig))

    cost_frame = None
    if cost is not None:
        cost_frame = summary.merge(cost, on=["model", "explainer"], how="inner")[
            ["model", "explainer", "metric", "mean", "rank", "seconds_per_image"]]
        writer.table("cost_quality", cost_frame)
        if figures:
            for metric, group in cost_frame.groupby("metric", sort=False):
                pictures["cost"].append(writer.figure(
                    f"cost_{metric}", draw.cost_quality(group, metric=metric)))

    writer.table("reliability", trust.cards)
    card = None
    if figures:
        from dina_datasets.viz.card import reliability_card

        card = writer.figure("reliability", reliability_card(trust.cards))
    text = _markdown(frames, pictures, cost_frame, table, alpha=alpha, alpha_cd=alpha_cd,
                     ci=ci, n_boot=n_boot, share=share, flagged=flagged, randomish=randomish,
                     margin=(margin, margin_units),
                     maps_checked=None if maps is None else (len(maps), map_sample))
    from dina_datasets.analysis.stats.grades import markdown_section

    text += "\n" + markdown_section(trust, card)
    writer.bytes("report.md", text.encode())
    return Report(out, writer.files, frames | {"reliability": trust.cards} | (
        {"cost_quality": cost_frame} if cost_frame is not None else {}))


def _images(paths: list[str]) -> str:
    return "".join(f"![{p}]({p})\n\n" for p in paths)


def _markdown(frames: dict[str, Any], pictures: dict[str, list[str]], cost_frame: Any,
              table: Any, *, alpha: float, alpha_cd: float, ci: str, n_boot: int,
              share: float, flagged: Any, randomish: Any, margin: tuple[float, str],
              maps_checked: tuple[int, int] | None) -> str:
    from dina_datasets.analysis.stats import NEAR_ZERO

    summary, pairs, power = frames["summary"], frames["pairs"], frames["power"]
    keys = pairs.groupby("paired_by")[["model", "metric"]].apply(
        lambda g: len(g.drop_duplicates())).to_dict() if len(pairs) else {}
    pairing = ("Pairing key: " + ", ".join(f"`{k}` for {v} (model, metric)"
                                           for k, v in sorted(keys.items())) + ".\n"
               if keys else "No pairs to compare.\n")
    size, units = margin
    margin_text = (f"{size:g} of the metric's per-image spread" if units == "sd"
                   else f"{size:g} in the metric's units")
    interval = (f"percentile bootstrap of the mean ({n_boot} resamples of the images)"
                if ci == "bootstrap" else "normal approximation, mean ± 1.96 s / sqrt(n)")
    parts = [
        "# Which explainer can I trust? DINA statistics report\n",
        f"Scores of {summary['model'].nunique()} models, {summary['explainer'].nunique()} "
        f"explainers, {summary['metric'].nunique()} metrics ({int(summary['n'].sum()):,} "
        f"defined scores). Filters: {' AND '.join(table.filters)}. 95 % intervals: "
        f"{interval}. Verdicts at alpha = {alpha}, equivalence margin {margin_text}; "
        f"critical differences at alpha = {alpha_cd}. {pairing}",
        HOW_TO_READ,
        "## What these images can tell\n",
        "Per model and metric: n images, pairs tested together, the pairing key, the "
        "equivalence margin and the smallest detectable paired difference (score units), "
        "the images a margin-sized decision needs, and whether verdicts are possible.\n",
        markdown_table(power) if len(power) else "No pairs.\n",
        "## Leaders per model and metric\n",
        markdown_table(frames["leaders"]),
        "\nEvery explainer: `tables/summary.csv` (mean, median, interval, rank, flags); "
        "every pair: `tables/pairs.csv` (n, statistic, p_value, p_adjusted, effect, "
        "median_diff, mean_diff, margin, p_equivalence, p_equivalence_adjusted, verdict, "
        "paired_by).\n",
        "## Sanity floor\n",
        f"Degenerate (share of undefined scores >= {share:.0%}, or degenerate maps): "
        "reported with their numbers, not ranked. "
        + (f"Maps checked: {maps_checked[1]} sampled per cell, {maps_checked[0]} cells "
           f"(all-zero, constant, or total |attribution| under {NEAR_ZERO:g})."
           if maps_checked else "Maps not checked (no maps given: only undefined scores "
           "reveal degenerate maps).") + "\n",
        markdown_table(flagged) if len(flagged) else "None.\n",
        "\nEquivalent to RandomExp (random maps), or worse, under a metric:\n",
        markdown_table(randomish) if len(randomish) else
        ("None." if summary["explainer"].eq("RandomExp").any() else
         "RandomExp is not in this table: no comparison with random maps.") + "\n",
        "## Across models (Friedman, Nemenyi)\n",
        markdown_table(frames["friedman"]),
        "\nAverage ranks: `tables/average_ranks.csv`.\n\n",
        _images(pictures["cd"]),
        "## Agreement (Kendall's tau)\n",
        _images(pictures["agreement"]),
        "Per model and per metric: `tables/agreement_metrics.csv`, "
        "`tables/agreement_models.csv`.\n",
        "## Stability: how many images does a ranking need?\n",
        markdown_table(frames["stability"]),
        "\n", _images(pictures["stability"]),
        "## Score distributions\n",
        _images(pictures["distributions"]),
    ]
    if cost_frame is not None:
        parts += ["## Cost vs quality\n", markdown_table(cost_frame), "\n",
                  _images(pictures["cost"])]
    return "\n".join(parts)

