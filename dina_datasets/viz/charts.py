"""The report's pictures, each drawn once and saved as PNG and SVG: critical-difference
diagrams (`scikit_posthocs.critical_difference_diagram`), agreement heatmaps, stability
curves, score distributions per explainer, cost vs quality. matplotlib is imported here
only, when a picture is drawn.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dina_datasets.errors import ConfigError

FORMATS = ("png", "svg")
DPI = 150
MAX_POINTS = 20_000  # per violin: a fixed, evenly spaced subset beyond that


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("the report's figures need matplotlib: pip install "
                          "'dina-datasets[stats]', or pass --no-figures") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def render(fig: Any, formats: tuple[str, ...] = FORMATS) -> dict[str, bytes]:
    """The figure's bytes per format; the figure is closed."""
    plt = _pyplot()
    out = {}
    for fmt in formats:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=DPI, bbox_inches="tight")
        out[fmt] = buffer.getvalue()
    plt.close(fig)
    return out


def cd_diagram(ranks: Any, nemenyi: Any, *, metric: str, cd: float, models: int,
               alpha: float, friedman_p: float) -> Any:
    """The critical-difference diagram of one metric: average ranks (1 = best) on the axis,
    explainers that Nemenyi cannot tell apart at `alpha` joined by a bar."""
    import scikit_posthocs as sp

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.28 * len(ranks)))
    sp.critical_difference_diagram(ranks, nemenyi, ax=ax, alpha=alpha,
                                   cd=cd if math.isfinite(cd) else None,
                                   label_props={"fontsize": 9})
    p = "n/a" if not math.isfinite(friedman_p) else f"{friedman_p:.2g}"
    ax.set_title(f"{metric}: average rank over {models} models (1 = best), Friedman p = {p}\n"
                 f"bars join explainers not distinguishable (Nemenyi, alpha {alpha}, "
                 f"CD = {cd:.2f})", fontsize=9, pad=28)
    return fig


def heatmap(matrix: Any, *, title: str, label: str = "Kendall's tau") -> Any:
    """A labelled, annotated square heatmap of values in [-1, 1]."""
    plt = _pyplot()
    size = len(matrix)
    fig, ax = plt.subplots(figsize=(2.5 + 0.7 * size, 2.0 + 0.6 * size))
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="RdBu", vmin=-1, vmax=1)
    for i in range(size):
        for j in range(size):
            value = matrix.iat[i, j]
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(value) > 0.6 else "black")
    ax.set_xticks(range(size), list(matrix.columns), rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(size), list(matrix.index), fontsize=8)
    fig.colorbar(image, ax=ax, label=label, shrink=0.8)
    ax.set_title(title, fontsize=9)
    return fig


def stability_curves(frame: Any, *, metric: str) -> Any:
    """Per model: Kendall's tau to the full ranking (mean, 5-95 % band) and the share of
    subsamples giving exactly the full ranking, against the number of images."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for model, group in frame.groupby("model", sort=False):
        group = group.sort_values("n")
        line = left.plot(group["n"], group["tau_mean"], marker="o", label=model)[0]
        left.fill_between(group["n"], group["tau_low"], group["tau_high"], alpha=0.15,
                          color=line.get_color())
        right.plot(group["n"], group["share_equal"], marker="o", label=model,
                   color=line.get_color())
    sizes = sorted(set(frame["n"]))
    for ax, ylabel in ((left, "Kendall's tau to the full ranking (5-95 %)"),
                       (right, "share of subsamples with the full ranking")):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel("images per bootstrap subsample")
        ax.set_ylabel(ylabel)
        ax.set_ylim(-1.05 if ax is left else -0.05, 1.05)
        ax.grid(alpha=0.3)
    right.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{metric}: how many images does the explainer ranking need?", fontsize=10)
    return fig


def distributions(samples: dict[str, dict[str, np.ndarray]], *, model: str,
                  directions: Callable[[str], bool | None]) -> Any:
    """Per metric (one panel each), a violin of the scores of each explainer, the median
    marked."""
    plt = _pyplot()
    metrics = list(samples)
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        names = [e for e, v in samples[metric].items() if len(v)]
        values = [_thin(samples[metric][e]) for e in names]
        if names:
            ax.violinplot(values, showmedians=True, showextrema=False)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=40, ha="right", fontsize=8)
        arrow = {True: " (↑ better)", False: " (↓ better)", None: ""}[directions(metric)]
        ax.set_title(metric + arrow, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"{model}: score distributions per explainer (median marked)", fontsize=10)
    fig.tight_layout()
    return fig


def _thin(values: np.ndarray) -> np.ndarray:
    if len(values) <= MAX_POINTS:
        return values
    return np.sort(values)[np.linspace(0, len(values) - 1, MAX_POINTS).astype(int)]


def cost_quality(frame: Any, *, metric: str) -> Any:
    """Mean score against seconds per image, one point per (model, explainer)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for model, group in frame.groupby("model", sort=False):
        ax.scatter(group["seconds_per_image"], group["mean"], label=model)
        for row in group.itertuples():
            ax.annotate(row.explainer, (row.seconds_per_image, row.mean), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("seconds per image (explanation)")
    ax.set_ylabel(f"mean {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{metric}: quality vs cost", fontsize=10)
    return fig


def leaderboard_heatmap(board: Any) -> bytes:
    """A heat map of a `Leaderboard`: colour = rank within (model, metric) (brighter =
    better), grey = degenerate, red frame = leader (dashed: not shown better than the
    next; none where explainers tie at #1)."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("the leaderboard's PNG needs matplotlib: pip install "
                          "'dina-datasets[viz]', or pass --no-plot") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows, cols = len(board.configs), len(board.metrics)
    shade = np.full((rows, cols), np.nan)
    fig, ax = plt.subplots(figsize=(3.2 + 1.5 * cols, 2.6 + 0.3 * rows), dpi=110)
    counts = board.summary.groupby(["model", "metric"])["rank"].max()
    for i, config in enumerate(board.configs):
        for j, metric in enumerate(board.metrics):
            e = board.get(config, metric)
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
            if e.leads:  # a tie at #1 has no leader: no frame
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                       edgecolor="red", linewidth=2,
                                       linestyle="-" if "*" in e.marker else "--"))
    ax.imshow(np.ma.masked_invalid(shade), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(cols), [board.header_of(m) for m in board.metrics], fontsize=8,
                  rotation=30, ha="left", rotation_mode="anchor")
    ax.xaxis.tick_top()
    ax.set_yticks(range(rows), board.configs, fontsize=8)
    ax.set_title("DINA leaderboard: mean per model and metric\ncolour = rank (brighter = "
                 "better); red frame = leader (solid: better than the\nnext; dashed: "
                 "equivalent, inconclusive or too few images; none: a tie at #1);\n"
                 "grey = degenerate", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
