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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dina_datasets import catalog, storage
from dina_datasets.analysis.report_text import markdown, markdown_table
from dina_datasets.errors import ConfigError

COST_COLUMNS = ("model", "explainer", "seconds_per_image")


@dataclass
class Report:
    """What `write_report` wrote: file URLs, and the frames behind them."""

    out: str
    files: list[str] = field(default_factory=list)
    frames: dict[str, Any] = field(default_factory=dict)


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
        shared = ranked[ranked["rank"] == top["rank"]]
        # a tie at #1 has no leader: the tied explainers are named, no verdict is shown
        leader = top["explainer"] if len(shared) == 1 else \
            f"tie: {', '.join(shared['explainer'])}"
        said = ("tie at #1: no leader" if len(shared) > 1 else top["vs_next"]) \
            if top["tell"] else FEW
        versus = sorted({str(v) for v in shared["vs_random"] if isinstance(v, str)})
        rows.append({"model": model, "metric": metric, "leader": leader,
                     "mean": top["mean"], "ci_low": top["ci_low"], "ci_high": top["ci_high"],
                     "n": top["n"], "runner_up": top["next"] or "", "vs_next": said,
                     "vs_RandomExp": (" / ".join(versus) or None) if top["tell"] else FEW})
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
                 say: Callable[[str], None] | None = None, planted: Any = None,
                 allow_mixed_settings: bool | None = None) -> Report:
    """Compute every statistic of the scores table and write the report under `out`.
    `margin`: the equivalence margin (`stats.pairs`; default `stats.MARGIN`). `maps_url`:
    the folder of the cells' maps, `map_sample` (default `stats.MAP_SAMPLE`) of each
    checked for degenerate maps (`stats.check_maps`). `planted`: the planted model's check
    (`dina_datasets.demo.validity`) for the reliability section. `allow_mixed_settings`:
    compare scores computed with different settings (refused by default)."""
    from dina_datasets.analysis import stats
    from dina_datasets.analysis.stats.power import COLUMNS as POWER_COLUMNS
    from dina_datasets.analysis.table import higher_is_better, order
    from dina_datasets.viz import charts as draw

    say = say or (lambda _: None)
    sizes = tuple(sizes or stats.SIZES)
    share = stats.DEGENERATE_SHARE if degenerate_share is None else degenerate_share
    cost = None if cost is None else _check_cost(cost)
    table = stats.open_scores(scores, list(filters), activation, storage_options,
                              allow_mixed_settings=allow_mixed_settings)
    say("summary (bootstrap intervals)" if ci == "bootstrap" else "summary")
    map_sample = stats.MAP_SAMPLE if map_sample is None else map_sample
    maps = stats.table_maps(table, maps_url, map_sample, storage_options)
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
    text = markdown(frames, pictures, cost_frame, table, alpha=alpha, alpha_cd=alpha_cd,
                    ci=ci, n_boot=n_boot, share=share, flagged=flagged, randomish=randomish,
                    margin=(margin, margin_units),
                    maps_checked=None if maps is None else (len(maps), map_sample))
    from dina_datasets.analysis.stats.grades import markdown_section

    text += "\n" + markdown_section(trust, card)
    writer.bytes("report.md", text.encode())
    return Report(out, writer.files, frames | {"reliability": trust.cards} | (
        {"cost_quality": cost_frame} if cost_frame is not None else {}))
