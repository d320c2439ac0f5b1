"""What explaining and scoring cost, per image: the cost records (`dina_datasets.runs.cost`)
of a bucket read back into a table and set against the scores (cost vs quality). Nothing here
imports matplotlib unless a picture is drawn.
"""

from __future__ import annotations

import csv
import io
import math
import posixpath
import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from dina_datasets import catalog, storage
from dina_datasets.errors import ConfigError, LayoutError
from dina_datasets.layout import DEFAULT_ACTIVATION, Layout
from dina_datasets.runs.cost import read
from dina_datasets.runs.parts import MANIFEST_SUFFIX, read_manifest

COLUMNS = ("model", "explainer", "kind", "metric", "activation", "images", "seconds",
           "seconds_per_image", "batch_size", "device")


@dataclass(frozen=True)
class Row:
    """Cost of one kind of work on one cell, for one device and batch size."""

    model: str
    explainer: str
    kind: str
    metric: str
    activation: str
    images: int
    seconds: float
    batch_size: int
    device: str

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / self.images if self.images else math.nan


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", template)
    return re.compile("".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p)
                              for p in parts) + "$")


def _glob(data_url: str, template: str, options: dict[str, Any] | None
          ) -> list[tuple[dict[str, str], str]]:
    """(fields, url) of every file under `data_url` matching a layout template."""
    fs, root = storage.filesystem(data_url, options)
    root = root.rstrip("/")
    pattern = _pattern(template)
    found = []
    for path in sorted(fs.glob(posixpath.join(root, re.sub(r"\{\w+\}", "*", template)))):
        match = pattern.match(posixpath.relpath(path, root or "/"))
        if match:
            found.append((match.groupdict(), storage.join(data_url, match.group(0))))
    return found


def _generation_rows(fields: dict[str, str], manifest: dict[str, Any]) -> list[Row]:
    groups: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0])
    for part in manifest.get("cost") or []:
        key = (str(part.get("device", "unknown")), int(part.get("batch_size", 0)))
        groups[key][0] += int(part.get("images", 0))
        groups[key][1] += float(part.get("explain_seconds", math.nan))
    return [Row(fields["model"], fields["explainer"], "generate", "", "", int(n), seconds,
                batch, dev) for (dev, batch), (n, seconds) in groups.items()]


def collect(data_url: str, storage_options: dict[str, Any] | None = None) -> list[Row]:
    """Every cost record under a bucket-shaped `data_url`: one row per generated cell (per
    device and batch size) and one per evaluated score file."""
    fs, root = storage.filesystem(data_url, storage_options)
    if not fs.exists(root):
        raise LayoutError(f"no folder at {data_url}")
    layout = Layout(data_url)
    rows: list[Row] = []
    for fields, url in _glob(data_url, layout.explanations_template + MANIFEST_SUFFIX,
                             storage_options):
        manifest = read_manifest(url.removesuffix(MANIFEST_SUFFIX), storage_options)
        rows += _generation_rows(fields, manifest or {})
    for fields, url in _glob(data_url, layout.cost_template, storage_options):
        data = read(url, storage_options)
        if data is None:
            continue
        rows.append(Row(fields["model"], fields["explainer"], "evaluate", fields["metric"],
                        fields["activation"], int(data.get("images", 0)),
                        float(data.get("seconds", math.nan)), int(data.get("batch_size", 0)),
                        str(data.get("device", "unknown"))))
    return rows


def csv_text(rows: list[Row]) -> str:
    """The cost table as CSV, one row per Row, columns COLUMNS."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        values = {**asdict(row), "seconds_per_image": row.seconds_per_image}
        writer.writerow([repr(v) if isinstance(v, float) else v
                         for v in (values[c] for c in COLUMNS)])
    return out.getvalue()


def text(rows: list[Row]) -> str:
    """The cost table as aligned text."""
    head = ["model", "explainer", "kind", "metric", "images", "s/image", "batch", "device"]
    lines = [head] + [[r.model, r.explainer, r.kind,
                       r.metric + (f" ({r.activation})" if r.activation not in
                                   ("", DEFAULT_ACTIVATION) else ""),
                       str(r.images), f"{r.seconds_per_image:.4g}", str(r.batch_size), r.device]
                      for r in rows]
    widths = [max(len(line[k]) for line in lines) for k in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def generation_seconds(rows: list[Row]) -> dict[tuple[str, str], float]:
    """Seconds per image of generating each cell's maps, {(model, explainer): s}, over every
    device and batch size its generation records hold (cells without any are left out)."""
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
    for row in rows:
        if row.kind == "generate":
            totals[row.model, row.explainer][0] += row.images
            totals[row.model, row.explainer][1] += row.seconds
    return {cell: seconds / n for cell, (n, seconds) in totals.items() if n}


def report_frame(rows: list[Row]) -> Any:
    """The generation cost as `report.write_report(..., cost=)` takes it: a pandas frame with
    columns model, explainer, seconds_per_image (one row per generated cell)."""
    import pandas as pd

    per_cell = generation_seconds(rows)
    return pd.DataFrame({"model": [m for m, _ in per_cell],
                         "explainer": [e for _, e in per_cell],
                         "seconds_per_image": list(per_cell.values())})


@dataclass(frozen=True)
class Point:
    """One explainer of one model under one metric: its generation cost and mean score."""

    model: str
    explainer: str
    metric: str
    seconds_per_image: float
    mean: float
    n: int
    reference: bool


def cost_quality(rows: list[Row], data_url: str,
                 storage_options: dict[str, Any] | None = None) -> list[Point]:
    """Seconds per image of generating each cell's maps against the cell's mean score of
    each metric (the published softmax scores), for the cells that have both."""
    from dina_datasets.analysis.leaderboard import collect as leaderboard

    seconds = generation_seconds(rows)
    try:
        board = leaderboard(data_url, storage_options=storage_options)
    except LayoutError:
        return []
    points = []
    for entry in board.entries.values():
        per_image = seconds.get((entry.model, entry.explainer))
        if per_image is None or not math.isfinite(entry.mean):
            continue
        spec = catalog.EXPLAINERS.get(entry.explainer)
        points.append(Point(entry.model, entry.explainer, entry.metric, per_image, entry.mean,
                            entry.n, bool(getattr(spec, "reference", False))))
    order = {name: k for k, name in enumerate(catalog.METRICS)}
    return sorted(points, key=lambda p: (order.get(p.metric, len(order)), p.metric, p.model,
                                         p.seconds_per_image))


def points_csv(points: list[Point]) -> str:
    """The cost-vs-quality table as CSV."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["model", "explainer", "metric", "seconds_per_image", "mean", "n",
                     "reference"])
    for p in points:
        writer.writerow([p.model, p.explainer, p.metric, repr(p.seconds_per_image),
                         repr(p.mean), p.n, int(p.reference)])
    return out.getvalue()


def draw(points: list[Point], fmt: str = "png") -> bytes:
    """The cost-vs-quality picture: one panel per metric, seconds per image (log scale)
    against the mean score, one colour per model, each point named by its explainer;
    reference explainers are hollow squares. `fmt`: "png" or "svg"."""
    if fmt not in ("png", "svg"):
        raise ConfigError(f"picture format must be png or svg, got {fmt!r}")
    if not points:
        raise LayoutError("nothing to draw: no cell has both generation cost records and "
                          "score files")
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("the cost picture needs matplotlib: pip install "
                          "'dina-datasets[viz]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(p.metric for p in points))
    models = list(dict.fromkeys(p.model for p in points))
    colours = {m: plt.get_cmap("tab10")(k % 10) for k, m in enumerate(models)}
    cols = min(4, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows + 0.6), dpi=110,
                             squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        spec = catalog.METRICS.get(metric)
        arrow = "" if spec is None else (" (higher is better)" if spec.higher_is_better
                                         else " (lower is better)")
        for p in (p for p in points if p.metric == metric):
            colour = colours[p.model]
            ax.scatter(p.seconds_per_image, p.mean, s=36, marker="s" if p.reference else "o",
                       facecolors="none" if p.reference else [colour], edgecolors=[colour])
            ax.annotate(p.explainer, (p.seconds_per_image, p.mean), fontsize=6,
                        xytext=(3, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_title(metric + arrow, fontsize=9)
        ax.set_xlabel("seconds per image (generation)", fontsize=8)
        ax.set_ylabel("mean score", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[m], label=m)
               for m in models]
    handles.append(plt.Line2D([], [], marker="s", linestyle="", markerfacecolor="none",
                              color="grey", label="reference explainer"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8,
               frameon=False)
    fig.suptitle("Cost vs quality: seconds per image against the mean score", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt)
    plt.close(fig)
    return buffer.getvalue()
