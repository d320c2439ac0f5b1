"""The leaderboard: every `{Metric}_scores.json` under a bucket-shaped folder, summarised as
a config x metric table of means with 95 % confidence intervals, the best of each column
marked according to the catalog's direction (higher or lower is better).

The 95 % interval is mean ± 1.96 s / sqrt(n) (normal approximation; n is 1,024 or 50,000
for DINA's files); null or non-finite scores are left out.
"""

from __future__ import annotations

import csv
import io
import math
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import catalog, formats
from dina_datasets.errors import ConfigError, LayoutError
from dina_datasets.layout import Layout
from dina_datasets.recordio import storage

Z95 = 1.959963984540054
READ_CHUNK = 32


@dataclass(frozen=True)
class Entry:
    """The summary of one score file."""

    model: str
    explainer: str
    metric: str
    n: int
    mean: float
    half_width: float

    @property
    def config(self) -> str:
        return f"{self.model}-{self.explainer}"

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def summarize(values: Iterable[Any]) -> tuple[int, float, float]:
    """(n, mean, half-width of the 95 % interval) of the finite values."""
    array = np.array([v for v in values if v is not None], np.float64)
    array = array[np.isfinite(array)]
    n = len(array)
    if n == 0:
        return 0, math.nan, math.nan
    half = Z95 * array.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan
    return n, float(array.mean()), float(half)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{model\}|\{explainer\}|\{metric\})", template)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p)
                    for p in parts)
    return re.compile(regex + "$")


def find_score_files(data_url: str, storage_options: dict[str, Any] | None = None
                     ) -> list[tuple[str, str, str, str]]:
    """(model, explainer, metric, url) of every score file under `data_url`."""
    layout = Layout(data_url)
    template = layout.scores_template
    fs, root = storage.filesystem(data_url, storage_options)
    if not fs.exists(root):
        raise LayoutError(f"no folder at {data_url}")
    glob = template.format(model="*", explainer="*", metric="*")
    pattern = _pattern(template)
    found = []
    for path in sorted(fs.glob(posixpath.join(root.rstrip("/"), glob))):
        relative = posixpath.relpath(path, root.rstrip("/") or "/")
        match = pattern.match(relative)
        if match:
            found.append((match["model"], match["explainer"], match["metric"],
                          layout.scores(match["model"], match["explainer"], match["metric"])))
    return found


def _order(name: str, table: dict[str, Any]) -> tuple[int, str]:
    names = list(table)
    return (names.index(name), "") if name in table else (len(names), name)


class Leaderboard:
    """Config x metric summaries, with the best config of each metric."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries = {(e.config, e.metric): e for e in entries}
        models = {e.config: (e.model, e.explainer) for e in self.entries.values()}
        self.configs = sorted(models, key=lambda c: (_order(models[c][0], catalog.MODELS),
                                                     _order(models[c][1], catalog.EXPLAINERS)))
        self.metrics = sorted({e.metric for e in self.entries.values()},
                              key=lambda m: _order(m, catalog.METRICS))
        self._best = {m: self._find_best(m) for m in self.metrics}

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, config: str, metric: str) -> Entry | None:
        return self.entries.get((config, metric))

    @staticmethod
    def higher_is_better(metric: str) -> bool | None:
        spec = catalog.METRICS.get(metric)
        return spec.higher_is_better if spec else None

    def best(self, metric: str) -> str | None:
        """The config with the best mean for `metric` (None for a metric the catalog does
        not know, whose direction is unknown)."""
        return self._best.get(metric)

    def _find_best(self, metric: str) -> str | None:
        direction = self.higher_is_better(metric)
        candidates = [(e.mean, c) for c in self.configs
                      if (e := self.get(c, metric)) and math.isfinite(e.mean)]
        if direction is None or not candidates:
            return None
        return (max if direction else min)(candidates)[1]

    def cell_text(self, config: str, metric: str, bold: str = "") -> str:
        entry = self.get(config, metric)
        if entry is None:
            return ""
        ci = "" if math.isnan(entry.half_width) else f" ± {entry.half_width:.2g}"
        text = f"{entry.mean:.4g}{ci}"
        if self.best(metric) == config:
            text = f"{bold}{text}{bold}" if bold else f"{text} *"
        return text

    def header(self) -> list[str]:
        arrows = {True: " (↑)", False: " (↓)", None: ""}
        return ["config", *[m + arrows[self.higher_is_better(m)] for m in self.metrics]]

    def text(self) -> str:
        """The table as aligned plain text; * marks the best of each column."""
        rows = [self.header()] + [[c, *[self.cell_text(c, m) for m in self.metrics]]
                                  for c in self.configs]
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append("mean ± half-width of the 95 % interval; * best per column "
                     "(↑ higher is better, ↓ lower is better)")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The table in Markdown; the best of each column in bold."""
        head = self.header()
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c in self.configs:
            cells = [self.cell_text(c, m, bold="**") for m in self.metrics]
            lines.append("| " + " | ".join([c, *cells]) + " |")
        lines.append("")
        lines.append("Mean ± half-width of the 95 % confidence interval; best per column in "
                     "bold (↑ higher is better, ↓ lower is better).")
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        """One row per config: mean, 95 % bounds and count of each metric, and the best."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        columns = ["config", "model", "explainer"]
        for m in self.metrics:
            columns += [f"{m}_mean", f"{m}_ci_low", f"{m}_ci_high", f"{m}_n", f"{m}_best"]
        writer.writerow(columns)
        for c in self.configs:
            model, explainer = c.split("-", 1)
            row: list[Any] = [c, model, explainer]
            for m in self.metrics:
                e = self.get(c, m)
                row += ["", "", "", "", ""] if e is None else \
                    [repr(e.mean), repr(e.low), repr(e.high), e.n, int(self.best(m) == c)]
            writer.writerow(row)
        return out.getvalue()

    def png(self) -> bytes:
        """A heat map of the table: colour = column-wise score, brighter = better; the best
        of each column framed in red, means written in the cells."""
        try:
            import matplotlib
        except ImportError:
            raise ConfigError("the leaderboard's PNG needs matplotlib: pip install "
                              "'dina-datasets[viz]', or pass --no-plot") from None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        rows, cols = len(self.configs), len(self.metrics)
        values = np.full((rows, cols), np.nan)
        for i, c in enumerate(self.configs):
            for j, m in enumerate(self.metrics):
                if (e := self.get(c, m)) is not None:
                    values[i, j] = e.mean
        shade = np.full_like(values, np.nan)
        for j, m in enumerate(self.metrics):
            column = values[:, j]
            lo, hi = np.nanmin(column), np.nanmax(column)
            scaled = (column - lo) / (hi - lo) if hi > lo else np.full(rows, 0.5)
            shade[:, j] = 1 - scaled if self.higher_is_better(m) is False else scaled
        fig, ax = plt.subplots(figsize=(3.0 + 1.2 * cols, 2.6 + 0.28 * rows), dpi=110)
        ax.imshow(np.ma.masked_invalid(shade), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for i in range(rows):
            for j in range(cols):
                if not np.isnan(values[i, j]):
                    ax.text(j, i, f"{values[i, j]:.3g}", ha="center", va="center",
                            fontsize=7, color="white" if shade[i, j] < 0.6 else "black")
        for j, m in enumerate(self.metrics):
            if (best := self.best(m)) is not None:
                i = self.configs.index(best)
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red",
                                       linewidth=2))
        ax.set_xticks(range(cols), self.header()[1:], fontsize=8, rotation=30, ha="left",
                      rotation_mode="anchor")
        ax.xaxis.tick_top()
        ax.set_yticks(range(rows), self.configs, fontsize=8)
        ax.set_title("DINA leaderboard: mean per config (colour per column, brighter = "
                     "better; red = best)", fontsize=9)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()


def collect(data_url: str, *, storage_options: dict[str, Any] | None = None,
            progress: bool = False) -> Leaderboard:
    """The leaderboard of every score file under `data_url` (any fsspec URL)."""
    found = find_score_files(data_url, storage_options)
    if not found:
        glob = Layout(data_url).scores_template.format(model="*", explainer="*", metric="*")
        raise LayoutError(f"no score files under {data_url} (looked for {glob})")
    fs, _ = storage.filesystem(data_url, storage_options)
    from tqdm import tqdm

    entries = []
    with tqdm(total=len(found), unit="file", desc="scores", disable=not progress) as bar:
        for k in range(0, len(found), READ_CHUNK):
            chunk = found[k:k + READ_CHUNK]
            paths = [storage.filesystem(url, storage_options)[1] for *_, url in chunk]
            blobs = fs.cat(paths)
            for (model, explainer, metric, url), path in zip(chunk, paths, strict=True):
                blob = blobs[path] if path in blobs else fs.cat_file(path)
                entries.append(Entry(model, explainer, metric,
                                     *summarize(formats.parse_scores(blob, url))))
            bar.update(len(chunk))
    return Leaderboard(entries)
