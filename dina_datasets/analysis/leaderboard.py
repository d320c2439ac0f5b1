"""The leaderboard: per model and metric, each explainer's mean with its 95 % interval, n,
rank (in the catalog's direction) and the verdicts of the paired tests, from the scores
table (built on the fly from a bucket-shaped folder, or given).

Markers (verdicts of `dina_datasets.analysis.stats.comparisons`): `*` the leader, better
than the next (Wilcoxon + Holm at alpha); `≈` the leader, equivalent to the next (TOST within
the equivalence margin); `?` the leader, inconclusive against the next (neither shown); a
leader with no next has none of them, and explainers tied at rank 1 (equal means share a
rank) get no leader mark; `few` the leader of a (model, metric) whose images are too few for
any verdict (`stats.detectability`); `=R` equivalent to RandomExp; `<R` worse than RandomExp
(an explainer that is neither shows only its p-values, in the pairs); `degenerate` mostly
undefined scores or degenerate maps, not ranked (see `dina_datasets.analysis.stats.sanity`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.analysis.stats.equivalence import MARGIN
from dina_datasets.analysis.stats.sanity import MAP_SAMPLE
from dina_datasets.analysis.table import order
from dina_datasets.errors import ConfigError

JSON_TABLE = ("model", "explainer", "metric", "n", "mean", "ci_low", "ci_high", "rank")
JSON_PAIRS = ("model", "metric", "a", "b", "n", "statistic", "p_value", "p_adjusted", "effect",
              "mean_diff", "margin", "p_equivalence", "p_equivalence_adjusted", "verdict",
              "paired_by")
JSON_POWER = ("model", "metric", "n", "pairs", "paired_by", "margin", "detectable_effect",
              "n_needed", "status")
CSV_COLUMNS = ("model", "explainer", "metric", "n", "n_undefined", "mean", "median", "ci_low",
               "ci_high", "rank", "marker", "vs_next", "vs_random", "degenerate", "reason",
               "reference")
LEGEND = ("mean ± half-width of the 95 % interval, n images, #rank per model and metric "
          "(↑ higher is better, ↓ lower is better; equal means share a rank, and a tie at #1 "
          "gets no leader mark); * leader better than the next (Wilcoxon signed-rank, Holm, "
          "alpha {alpha}), ≈ leader equivalent to the next (TOST: mean difference shown "
          "within the equivalence margin), ? leader inconclusive against the next, "
          "few: too few images for any verdict; =R equivalent to RandomExp, <R worse than "
          "RandomExp (neither: see the p-values); "
          "degenerate: mostly undefined scores or degenerate maps, not ranked; [grade] beside "
          "a metric: its reliability over the models (dina reliability)")
LEADER = {"better": "*", "higher": "*", "equivalent": "≈", "inconclusive": "?"}


@dataclass(frozen=True)
class Entry:
    """One (model, explainer, metric) cell of the board."""

    model: str
    explainer: str
    metric: str
    n: int
    mean: float
    ci_low: float
    ci_high: float
    rank: float
    marker: str
    tied: bool = False  # its rank is shared: at #1, no leader

    @property
    def leads(self) -> bool:
        """Whether it is the one explainer at rank 1 (a tie at #1 has no leader)."""
        return self.rank == 1 and not self.tied

    @property
    def config(self) -> str:
        return f"{self.model}-{self.explainer}"

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def _clean(value: Any) -> Any:
    """A JSON-safe value: None for NaN / missing, int for integral counts and ranks."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return _clean(float(value))
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def marker(row: Any) -> str:
    """The board's markers of one annotated summary row (see the module docstring)."""
    if row["degenerate"]:
        return "degenerate"
    if not row.get("tell", True):  # too few images for any verdict: none shown
        return "few" if row["rank"] == 1 else ""
    marks = []
    # no mark for a lone explainer, nor for leaders tied at rank 1 (none of them leads)
    if row["rank"] == 1 and isinstance(row["vs_next"], str) and not row.get("tied", False):
        marks.append(LEADER.get(row["vs_next"], "?"))
    if row["vs_random"] == "equivalent":
        marks.append("=R")
    elif row["vs_random"] == "worse":
        marks.append("<R")
    return " ".join(marks)


class Leaderboard:
    """The annotated summary (one row per model, metric, explainer) and the pairs."""

    def __init__(self, summary: Any, pairs: Any, *, alpha: float, ci: str,
                 grades: dict[str, str] | None = None, maps: Any = None) -> None:
        from dina_datasets.analysis.stats.power import COLUMNS, detectability

        self.grades = dict(grades or {})  # {metric: reliability grade}, beside its name
        self.summary = summary.assign(marker=[marker(r) for _, r in summary.iterrows()])
        self.pairs = pairs
        self.power = detectability(pairs, alpha) if len(pairs) else pairs.reindex(
            columns=COLUMNS)
        self.alpha = alpha
        self.ci = ci
        self.maps = maps  # the `stats.check_maps` frame; None: maps not checked
        self.entries = {(r.model, r.explainer, r.metric): Entry(
            r.model, r.explainer, r.metric, int(r.n), float(r.mean), float(r.ci_low),
            float(r.ci_high), float(r.rank), r.marker, bool(getattr(r, "tied", False)))
            for r in self.summary.itertuples()}
        self.metrics = order(self.summary["metric"], catalog.METRICS)
        models, explainers = list(catalog.MODELS), list(catalog.EXPLAINERS)
        cells = {(r.model, r.explainer) for r in self.summary.itertuples()}
        self.configs = [f"{m}-{e}" for m, e in sorted(cells, key=lambda me: (
            _position(me[0], models), _position(me[1], explainers)))]

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, config: str, metric: str) -> Entry | None:
        model, _, explainer = config.partition("-")
        return self.entries.get((model, explainer, metric))

    def best(self, model: str, metric: str) -> str | None:
        """The rank-1 explainer of (model, metric) (None when nothing is ranked)."""
        rows = self.summary[(self.summary["model"] == model)
                            & (self.summary["metric"] == metric) & (self.summary["rank"] == 1)]
        return str(rows["explainer"].iloc[0]) if len(rows) else None

    def header_of(self, metric: str) -> str:
        """The metric's name, its direction and its reliability grade when known."""
        spec = catalog.METRICS.get(metric)
        grade = f" [{self.grades[metric]}]" if metric in self.grades else ""
        return metric + ("" if spec is None else " (↑)" if spec.higher_is_better else
                         " (↓)") + grade

    def cell_text(self, config: str, metric: str) -> str:
        entry = self.get(config, metric)
        if entry is None:
            return ""
        ci = "" if math.isnan(entry.half_width) else f" ± {entry.half_width:.2g}"
        mean = "undefined" if math.isnan(entry.mean) else f"{entry.mean:.4g}{ci}"
        rank = "" if math.isnan(entry.rank) else f" #{entry.rank:.0f}"
        return f"{mean} n={entry.n}{rank} {entry.marker}".rstrip()

    def _grid(self) -> list[list[str]]:
        return [["config", *map(self.header_of, self.metrics)]] + [
            [c, *[self.cell_text(c, m) for m in self.metrics]] for c in self.configs]

    def text(self) -> str:
        """The board as aligned plain text, a legend below."""
        rows = self._grid()
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join([*lines, *self.notes(), LEGEND.format(alpha=self.alpha)])

    def notes(self) -> list[str]:
        """One line per (model, metric) whose images are too few for any verdict, and one
        when the maps were not checked (or none were found)."""
        from dina_datasets.analysis.stats.power import FEW

        few = self.power[self.power["status"] == FEW]
        lines = [f"{r.model} {r.metric}: {FEW} (n={r.n}; a verdict needs about "
                 f"{r.n_needed:,} images)" for r in few.itertuples()]
        checked = 0 if self.maps is None else int((self.maps["sampled"] > 0).sum())
        if not checked:
            lines.append(f"maps {'not checked' if self.maps is None else 'not found'}: only "
                         "undefined scores reveal degenerate maps (published all-zero maps "
                         "score a defined Complexity 0.0, the best); pass --maps-url")
        return lines

    def markdown(self) -> str:
        """The board in Markdown (`DataFrame.to_markdown`), leaders in bold (a tie at #1:
        none)."""
        import pandas as pd

        rows = self._grid()
        body = [[row[0], *[f"**{v}**" if (e := self.get(config, m)) is not None
                           and e.leads else v
                           for m, v in zip(self.metrics, row[1:], strict=True)]]
                for config, row in zip(self.configs, rows[1:], strict=True)]
        frame = pd.DataFrame(body, columns=rows[0]).astype(object)
        table = frame.map(lambda v: str(v).replace("|", "\\|")).to_markdown(
            index=False, disable_numparse=True)
        notes = [f"- {line}" for line in self.notes()]
        return "\n".join([table, "", *notes, *([""] if notes else []),
                          LEGEND.format(alpha=self.alpha) + "."]) + "\n"

    def csv(self) -> str:
        """One row per (model, explainer, metric): `CSV_COLUMNS`."""
        frame = self.summary[list(CSV_COLUMNS)]
        return frame.assign(rank=frame["rank"].astype("Int64")).to_csv(index=False)

    def pairs_csv(self) -> str:
        return self.pairs.to_csv(index=False)

    def document(self) -> dict[str, list[dict[str, Any]]]:
        """The `--json` document: `table`, `pairs` and `power` rows (keys `JSON_TABLE`,
        `JSON_PAIRS`, `JSON_POWER`: what the images of each (model, metric) can tell), and
        `flags` (degenerate, equivalent to or worse than RandomExp, leaders not shown
        better than the next, too few images)."""
        table = [{k: _clean(v) for k, v in zip(JSON_TABLE, row, strict=True)}
                 for row in self.summary[list(JSON_TABLE)].itertuples(index=False)]
        for row in table:
            row["rank"] = None if row["rank"] is None else int(row["rank"])
        pairs = [{k: _clean(v) for k, v in zip(JSON_PAIRS, row, strict=True)}
                 for row in self.pairs[list(JSON_PAIRS)].itertuples(index=False)]
        power = [{k: _clean(v) for k, v in zip(JSON_POWER, row, strict=True)}
                 for row in self.power[list(JSON_POWER)].itertuples(index=False)]
        flags = []
        for r in self.summary.itertuples():
            marks = r.marker.split()
            for text, hit in (("degenerate", r.degenerate),
                              ("leader equivalent to the next", "≈" in marks),
                              ("leader inconclusive against the next", "?" in marks),
                              ("too few images to tell", "few" in marks),
                              ("equivalent to RandomExp", "=R" in marks),
                              ("worse than RandomExp", "<R" in marks)):
                if hit:
                    flags.append({"model": r.model, "explainer": r.explainer,
                                  "metric": r.metric, "flag": text, "detail": r.reason})
        return {"table": table, "pairs": pairs, "power": power, "flags": flags}

    def json(self) -> str:
        return json.dumps(self.document(), indent=1, allow_nan=False)

    def png(self) -> bytes:
        """A heat map of the board (`viz.charts.leaderboard_heatmap`)."""
        from dina_datasets.viz.charts import leaderboard_heatmap

        return leaderboard_heatmap(self)


def _position(name: str, names: list[str]) -> tuple[int, str]:
    return (names.index(name), "") if name in names else (len(names), name)


GRADE_SPLITS = 100  # split-half splits of the grades beside the metrics' names


def from_table(scores: Any, *, filters: Iterable[str] = (), alpha: float = 0.01,
               ci: str = "normal", n_boot: int = 1000, margin: float = MARGIN,
               margin_units: str = "sd", maps_url: str | None = None,
               map_sample: int = MAP_SAMPLE, storage_options: dict[str, Any] | None = None,
               grades: bool = False, allow_mixed_settings: bool | None = None) -> Leaderboard:
    """The leaderboard of a scores table (path, DuckDB relation, pandas frame). `margin`:
    the equivalence margin (`stats.pairs`). `maps_url`: the bucket-shaped folder of the
    cells' maps, `map_sample` of each checked (`stats.check_maps`; 0: none). `grades`:
    print each metric's reliability grade beside its name (`stats.reliability`: ~30 s of
    CPU on the whole grid, so off for interactive use; `collect` turns it on).
    `allow_mixed_settings`: compare scores computed with different settings (refused)."""
    from dina_datasets.analysis import stats
    from dina_datasets.analysis.stats.grades import metric_labels

    table = stats.open_scores(scores, list(filters), storage_options=storage_options,
                              allow_mixed_settings=allow_mixed_settings)
    maps = stats.table_maps(table, maps_url, map_sample, storage_options)
    summary = stats.summary(table, ci=ci, n_boot=n_boot, maps=maps)
    pairs = stats.pairs(table, alpha=alpha, summary=summary, margin=margin,
                        margin_units=margin_units)
    labels = {}
    if grades:
        cards = stats.reliability(table, n_splits=GRADE_SPLITS, maps=maps).cards
        labels = metric_labels(cards, str(cards["activation"].iloc[0])) if len(cards) else {}
    return Leaderboard(stats.annotate(summary, pairs, alpha), pairs, alpha=alpha, ci=ci,
                       grades=labels, maps=maps)


def collect(data_url: str | None = None, *, scores: Any = None,
            filters: Iterable[str] = (), alpha: float = 0.01, ci: str = "normal",
            n_boot: int = 1000, margin: float = MARGIN, margin_units: str = "sd",
            maps_url: str | None = None, map_sample: int = MAP_SAMPLE,
            configs: Iterable[str] | None = None,
            imagenet_json: str | None = None, storage_options: dict[str, Any] | None = None,
            progress: bool = False, grades: bool = True,
            allow_mixed_settings: bool | None = None) -> Leaderboard:
    """The leaderboard of a scores table, or of every score file under `data_url` (the
    table is then built in a temporary folder, streaming, and the maps under `data_url`
    checked unless `maps_url` says where they are; `map_sample` 0: not checked); `grades`:
    each metric's reliability grade beside its name."""
    if scores is not None:
        return from_table(scores, filters=filters, alpha=alpha, ci=ci, n_boot=n_boot,
                          margin=margin, margin_units=margin_units, maps_url=maps_url,
                          map_sample=map_sample, storage_options=storage_options,
                          grades=grades, allow_mixed_settings=allow_mixed_settings)
    if data_url is None:
        raise ConfigError("give a data_url (a bucket-shaped folder) or a scores table")
    from dina_datasets.analysis import scores as table

    with tempfile.TemporaryDirectory(prefix="dina-scores-") as folder:
        path = os.path.join(folder, "scores.parquet")
        table.build(data_url, path, configs=configs, imagenet_json=imagenet_json,
                    storage_options=storage_options, progress=progress)
        return from_table(path, filters=filters, alpha=alpha, ci=ci, n_boot=n_boot,
                          margin=margin, margin_units=margin_units,
                          maps_url=maps_url or data_url, map_sample=map_sample,
                          storage_options=storage_options, grades=grades,
                          allow_mixed_settings=allow_mixed_settings)
