"""The Agreement and Stability views: how far the explainer rankings of metrics (or
models) agree, and how many images a ranking needs (`dina_datasets.stats`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dina_datasets.errors import ConfigError


def agreement(explorer: Any, between: str, extra: Sequence[str] = ()) -> tuple[Any, bytes]:
    """Kendall's tau between the explainer rankings of metrics (per model, averaged) or of
    models (per metric, averaged): the pairs table and the heatmap (PNG bytes)."""
    from dina_datasets.analysis import stats
    from dina_datasets.viz import charts

    summary = stats.summary(explorer.table(extra), ci="normal")
    if between == "metrics":
        pairs, a, b = stats.metric_agreement(summary), "metric_a", "metric_b"
    elif between == "models":
        pairs, a, b = stats.model_agreement(summary), "model_a", "model_b"
    else:
        raise ConfigError(f"agreement is between 'metrics' or 'models', got {between!r}")
    if pairs.empty:
        raise ConfigError(f"no two {between} rank the same explainers here")
    fig = charts.heatmap(stats.matrix(pairs, a, b),
                         title=f"agreement of explainer rankings between {between} "
                         "(Kendall's tau, mean)")
    return pairs, charts.render(fig, ("png",))["png"]


def stability(explorer: Any, model: str, metric: str, extra: Sequence[str] = ()
              ) -> tuple[Any, bytes]:
    """How many images the explainer ranking of (model, metric) needs: the curve (PNG)."""
    from dina_datasets.analysis import stats
    from dina_datasets.viz import charts

    explorer.known("model", model)
    explorer.known("metric", metric)
    frame = stats.stability(explorer.table([*extra, f"model={model}", f"metric={metric}"]))
    if frame.empty:
        raise ConfigError(f"{model} has fewer than two explainers with {metric} scores on "
                          "the same images: no ranking to test")
    fig = charts.stability_curves(frame, metric=metric)
    return frame, charts.render(fig, ("png",))["png"]
