"""The text of `dina report`'s report.md: how to read it, its Markdown tables and the
sections in order (`dina_datasets.analysis.report` computes what they show)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

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


def _images(paths: list[str]) -> str:
    return "".join(f"![{p}]({p})\n\n" for p in paths)


def markdown(frames: dict[str, Any], pictures: dict[str, list[str]], cost_frame: Any,
             table: Any, *, alpha: float, alpha_cd: float, ci: str, n_boot: int,
             share: float, flagged: Any, randomish: Any, margin: tuple[float, str],
             maps_checked: tuple[int, int] | None) -> str:
    """The text of report.md: the answers in order, with how to read each."""
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

