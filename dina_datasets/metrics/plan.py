"""What one evaluation run is: its cell, metrics, inputs, settings and the pieces that
score it (the metric objects, the explainer factory for randomization metrics, the image join).
`evaluation` plans and finishes runs; `scorer` scores their parts with these."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dina_datasets import catalog, storage
from dina_datasets.errors import ConfigError, LayoutError
from dina_datasets.layout import DEFAULT_ACTIVATION, Layout
from dina_datasets.metrics import build, metric_class
from dina_datasets.metrics.base import Forward
from dina_datasets.metrics.inputs import join_images
from dina_datasets.runs import parts as parts_mod


@dataclass
class Written:
    """One score file: where, how many samples, their mean."""

    metric: str
    url: str
    count: int
    mean: float


@dataclass
class EvaluateResult:
    """What a run did: score files written, parts scored now or found done, maps scored."""

    config: str
    written: list[Written] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parts_written: int = 0
    parts_skipped: int = 0
    maps: int = 0
    mismatched: int = 0

    def add(self, maps: int, mismatched: int) -> None:
        """Count one scored part of `maps` maps."""
        self.parts_written += 1
        self.maps += maps
        self.mismatched += mismatched

    def summary(self) -> str:
        lines = [f"{w.metric}: {w.count} scores, mean {w.mean:.6g} -> {w.url}"
                 for w in self.written]
        if self.parts_skipped:
            lines.append(f"{self.config}: {self.parts_written} part(s) scored, "
                         f"{self.parts_skipped} already complete")
        return "\n".join([*lines, *self.notes])


def _model_input_source(layout: Layout, model: str, images: str | None,
                        preprocess_url: str | None, options: dict | None) -> tuple[str, str]:
    if images and preprocess_url:
        raise ConfigError("give --images or --preprocess-url, not both")
    if images:
        return "images", images
    url = preprocess_url or layout.preprocess(model)
    if not storage.exists(url, options):
        raise LayoutError(f"no preprocess file at {url}: give --preprocess-url URL (a "
                          "preprocess_dataset.tfrecord) or --images SRC (the images, "
                          "preprocessed here and predicted by the model)")
    return "preprocess", url


def _explainer_factory(cell: catalog.Cell, batch_size: int, baseline: np.ndarray | None
                       ) -> Callable[[Any], Any]:
    from dina_datasets.generation.explainers import make_explainer

    def factory(model: Any) -> Any:
        return make_explainer(cell.explainer, model, model_name=cell.model,
                              batch_size=batch_size, baseline=baseline)

    return factory


def _needs_dataset_mean(cell: catalog.Cell) -> bool:
    from dina_datasets.generation.explainers import DATASET_MEAN

    return any(isinstance(v, str) and v == DATASET_MEAN
               for v in cell.explainer_spec.params.values())


@dataclass
class Evaluation:
    """One config's evaluation, checked and started: what to score, from what, where, and
    the parts left (picklable: it travels to Ray workers)."""

    cell: catalog.Cell
    metrics: list[str]
    url: str
    num_records: int
    stops: dict[str, int]
    out: str
    inputs: tuple[str, str] | None
    weights: str
    batch_size: int
    seed: int
    variant: str
    plan: list[parts_mod.Part]
    todo: list[parts_mod.Part]
    activation: str = DEFAULT_ACTIVATION
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    assume_order: bool = False
    baseline: list[float] | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    storage_options: dict[str, Any] | None = None
    result: EvaluateResult = field(default_factory=lambda: EvaluateResult(""))

    def score_url(self, metric: str) -> str:
        return Layout(self.out).scores(self.cell.model, self.cell.explainer, metric,
                                       self.activation)

    def ranges(self, metric: str, parts: Sequence[parts_mod.Part] | None = None
               ) -> list[tuple[int, int]]:
        """The map ranges of `metric` in `parts` (default: the whole plan)."""
        stop = self.stops[metric]
        return [(p.start, min(p.stop, stop)) for p in (self.plan if parts is None else parts)
                if p.start < stop]


def _metric(spec: catalog.MetricSpec, net: Any, factory: Any, batch_size: int, seed: int,
            variant: str, activation: str = DEFAULT_ACTIVATION,
            params: dict[str, Any] | None = None) -> Any:
    accepted = _check_params(spec, params or {})
    extra = {k: v for k, v in (("seed", seed), ("variant", variant)) if k in accepted}
    extra.update(params or {})
    if activation != DEFAULT_ACTIVATION:
        extra["activation"] = activation
    if spec.family == "randomization":
        return build(spec.name, net, factory, batch_size=batch_size, **extra)
    return build(spec.name, net if spec.needs_model else None, batch_size=batch_size, **extra)


def _check_params(spec: catalog.MetricSpec, params: dict[str, Any]) -> Any:
    """A metric's accepted parameters; ConfigError for a parameter it does not take."""
    accepted = inspect.signature(metric_class(spec.name)).parameters
    if "activation" in params:
        raise ConfigError(f"{spec.name}.activation: choose the output head with --activation "
                          "(it also names the score file), not as a metric parameter")
    unknown = set(params) - set(accepted)
    if unknown:
        raise ConfigError(f"{spec.name} has no parameter {', '.join(sorted(unknown))}; its "
                          "parameters: " + ", ".join(k for k in accepted
                                                     if k not in ("self", "model")))
    return accepted


def _with_images(batches: Any, cell: catalog.Cell, source: str, entries: list[Any],
                 forward: Forward, num_records: int, assume_order: bool = False) -> Any:
    from dina_datasets.generation.models import input_size
    from dina_datasets.generation.preprocessing import preprocess_images
    from dina_datasets.images import check_positional

    size = input_size(forward.model)

    def load(paths: list[str]) -> np.ndarray:
        return preprocess_images(paths, cell.model, input_size=size)

    def positional() -> None:
        check_positional(source, f"the records of {cell.name}", assume_order)

    return join_images(batches, entries, num_records, load, forward, positional)


def _dataset_mean(cell: catalog.Cell, images: str | None, preprocess_url: str | None,
                  layout: Layout, total: int, batch_size: int, options: dict | None
                  ) -> np.ndarray:
    """The explainer's "dataset_mean" baseline over the first `total` evaluated inputs."""
    from dina_datasets.generation.preprocessing import dataset_mean

    if images:
        from dina_datasets.images import is_placeholder, list_images

        paths = [e.path for e in list_images(images)[:total] if not is_placeholder(e.path)]
        return dataset_mean(cell.model, paths=paths, batch_size=batch_size)
    return dataset_mean(cell.model, preprocess_url=preprocess_url or layout.preprocess(cell.model),
                        limit=total, storage_options=options)
