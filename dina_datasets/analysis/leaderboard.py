"""The leaderboard: per model and metric, each explainer's mean with its 95 % interval, n,
rank (in the catalog's direction) and the verdicts of the paired tests, from the scores
table (built on the fly from a bucket-shaped folder, or given).

Markers: `*` the leader, distinguishable from the next (Wilcoxon + Holm at alpha);
`≈` the leader, NOT distinguishable from the next (a leader with no next has neither, and
explainers tied at rank 1 (equal means share a rank) get no leader mark);
`=R` not distinguishable from RandomExp;
`<R` worse than RandomExp; `degenerate` mostly undefined scores, not ranked (see
`dina_datasets.analysis.stats.sanity`).
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.analysis.table import order
from dina_datasets.errors import ConfigError

JSON_TABLE = ("model", "explainer", "metric", "n", "mean", "ci_low", "ci_high", "rank")
JSON_PAIRS = ("model", "metric", "a", "b", "n", "statistic", "p_value", "p_adjusted", "effect",
              "verdict", "paired_by")
CSV_COLUMNS = ("model", "explainer", "metric", "n", "n_undefined", "mean", "median", "ci_low",
               "ci_high", "rank", "marker", "vs_next", "vs_random", "degenerate", "reason",
               "reference")
LEGEND = ("mean ± half-width of the 95 % interval, n images, #rank per model and metric "
          "(↑ higher is better, ↓ lower is better; equal means share a rank, and a tie at #1 "
          "gets no leader mark); * leader distinguishable from the next, "
          "≈ leader NOT distinguishable from the next (Wilcoxon signed-rank, Holm, "
          "alpha {alpha}); =R not distinguishable from RandomExp, <R worse than RandomExp; "
          "degenerate: mostly undefined scores, not ranked")


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
    marks = []
    # no mark for a lone explainer, nor for leaders tied at rank 1 (none of them leads)
    if row["rank"] == 1 and isinstance(row["vs_next"], str) and not row.get("tied", False):
        marks.append("*" if row["vs_next"] in ("better", "higher") else "≈")
    if row["vs_random"] == "not distinguishable":
        marks.append("=R")
    elif row["vs_random"] == "worse":
        marks.append("<R")
    return " ".join(marks)


class Leaderboard:
    """The annotated summary (one row per model, metric, explainer) and the pairs."""

    def __init__(self, summary: Any, pairs: Any, *, alpha: float, ci: str) -> None:
        self.summary = summary.assign(marker=[marker(r) for _, r in summary.iterrows()])
        self.pairs = pairs
        self.alpha = alpha
        self.ci = ci
        self.entries = {(r.model, r.explainer, r.metric): Entry(
            r.model, r.explainer, r.metric, int(r.n), float(r.mean), float(r.ci_low),
            float(r.ci_high), float(r.rank), r.marker) for r in self.summary.itertuples()}
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

    @staticmethod
    def header_of(metric: str) -> str:
        spec = catalog.METRICS.get(metric)
        return metric + ("" if spec is None else " (↑)" if spec.higher_is_better else " (↓)")

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
        return "\n".join([*lines, LEGEND.format(alpha=self.alpha)])

    def markdown(self) -> str:
        """The board in Markdown, leaders in bold."""
        rows = self._grid()
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        for config, row in zip(self.configs, rows[1:], strict=True):
            cells = [f"**{v}**" if (e := self.get(config, m)) is not None and e.rank == 1
                     else v for m, v in zip(self.metrics, row[1:], strict=True)]
            lines.append("| " + " | ".join([row[0], *cells]) + " |")
        return "\n".join([*lines, "", LEGEND.format(alpha=self.alpha) + "."]) + "\n"

    def csv(self) -> str:
        """One row per (model, explainer, metric): `CSV_COLUMNS`."""
        frame = self.summary[list(CSV_COLUMNS)]
        return frame.assign(rank=frame["rank"].astype("Int64")).to_csv(index=False)

    def pairs_csv(self) -> str:
        return self.pairs.to_csv(index=False)

    def document(self) -> dict[str, list[dict[str, Any]]]:
        """The `--json` document: `table` and `pairs` rows (keys `JSON_TABLE`,
        `JSON_PAIRS`), and `flags` (degenerate, close to RandomExp, undistinguished
        leaders)."""
        table = [{k: _clean(v) for k, v in zip(JSON_TABLE, row, strict=True)}
                 for row in self.summary[list(JSON_TABLE)].itertuples(index=False)]
        for row in table:
            row["rank"] = None if row["rank"] is None else int(row["rank"])
        pairs = [{k: _clean(v) for k, v in zip(JSON_PAIRS, row, strict=True)}
                 for row in self.pairs[list(JSON_PAIRS)].itertuples(index=False)]
        flags = []
        for r in self.summary.itertuples():
            for text, hit in (("degenerate", r.degenerate),
                              ("leader not distinguishable from the next", "≈" in r.marker),
                              ("not distinguishable from RandomExp", "=R" in r.marker),
                              ("worse than RandomExp", "<R" in r.marker)):
                if hit:
                    flags.append({"model": r.model, "explainer": r.explainer,
                                  "metric": r.metric, "flag": text, "detail": r.reason})
        return {"table": table, "pairs": pairs, "flags": flags}

    def json(self) -> str:
        return json.dumps(self.document(), indent=1, allow_nan=False)

    def png(self) -> bytes:
        """A heat map of the board: colour = rank within (model, metric) (brighter =
        better), grey = degenerate, red frame = leader (dashed: not distinguishable from the
        next)."""
        try:
            import matplotlib
        except ImportError:
            raise ConfigError("the leaderboard's PNG needs matplotlib: pip install "
                              "'dina-datasets[viz]', or pass --no-plot") from None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        rows, cols = len(self.configs), len(self.metrics)
        shade = np.full((rows, cols), np.nan)
        fig, ax = plt.subplots(figsize=(3.2 + 1.5 * cols, 2.6 + 0.3 * rows), dpi=110)
        counts = self.summary.groupby(["model", "metric"])["rank"].max()
        for i, config in enumerate(self.configs):
            for j, metric in enumerate(self.metrics):
                e = self.get(config, metric)
                if e is None:
                    continue
                worst = counts.get((e.model, metric), np.nan)
                if math.isfinite(e.rank):
                    shade[i, j] = 1 - (e.rank - 1) / (worst - 1) if worst > 1 else 1.0
                if e.marker == "degenerate":
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, color="0.8"))
                label = "undef." if math.isnan(e.mean) else f"{e.mean:.3g}"
                ax.text(j, i, f"{label}\n{e.marker}".rstrip(), ha="center", va="center",
                        fontsize=7, color="black" if np.isnan(shade[i, j]) or shade[i, j] > 0.5
                        else "white")
                if e.rank == 1:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                           edgecolor="red", linewidth=2,
                                           linestyle="--" if "≈" in e.marker else "-"))
        ax.imshow(np.ma.masked_invalid(shade), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(cols), [self.header_of(m) for m in self.metrics], fontsize=8,
                      rotation=30, ha="left", rotation_mode="anchor")
        ax.xaxis.tick_top()
        ax.set_yticks(range(rows), self.configs, fontsize=8)
        ax.set_title("DINA leaderboard: mean per model and metric\ncolour = rank (brighter = "
                     "better); red frame = leader,\ndashed = not distinguishable from the next; "
                     "grey = degenerate", fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()


def _position(name: str, names: list[str]) -> tuple[int, str]:
    return (names.index(name), "") if name in names else (len(names), name)


def from_table(scores: Any, *, filters: Iterable[str] = (), alpha: float = 0.01,
               ci: str = "normal", n_boot: int = 1000,
               storage_options: dict[str, Any] | None = None,
               allow_mixed_settings: bool | None = None) -> Leaderboard:
    """The leaderboard of a scores table (path, DuckDB relation, pandas frame).
    `allow_mixed_settings`: compare scores computed with different settings (refused)."""
    from dina_datasets.analysis import stats

    table = stats.open_scores(scores, list(filters), storage_options=storage_options,
                              allow_mixed_settings=allow_mixed_settings)
    summary = stats.summary(table, ci=ci, n_boot=n_boot)
    pairs = stats.pairs(table, alpha=alpha, summary=summary)
    return Leaderboard(stats.annotate(summary, pairs), pairs, alpha=alpha, ci=ci)


def collect(data_url: str | None = None, *, scores: Any = None,
            filters: Iterable[str] = (), alpha: float = 0.01, ci: str = "normal",
            n_boot: int = 1000, configs: Iterable[str] | None = None,
            imagenet_json: str | None = None, storage_options: dict[str, Any] | None = None,
            progress: bool = False, allow_mixed_settings: bool | None = None) -> Leaderboard:
    """The leaderboard of a scores table, or of every score file under `data_url` (the
    table is then built in a temporary folder, streaming)."""
    if scores is not None:
        return from_table(scores, filters=filters, alpha=alpha, ci=ci, n_boot=n_boot,
                          storage_options=storage_options,
                          allow_mixed_settings=allow_mixed_settings)
    if data_url is None:
        raise ConfigError("give a data_url (a bucket-shaped folder) or a scores table")
    from dina_datasets.analysis import scores as table

    with tempfile.TemporaryDirectory(prefix="dina-scores-") as folder:
        path = os.path.join(folder, "scores.parquet")
        table.build(data_url, path, configs=configs, imagenet_json=imagenet_json,
                    storage_options=storage_options, progress=progress)
        return from_table(path, filters=filters, alpha=alpha, ci=ci, n_boot=n_boot,
                          allow_mixed_settings=allow_mixed_settings)
