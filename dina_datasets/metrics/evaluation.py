"""Score a cell's stored maps with DINA's metrics and write `{Metric}_scores.json`.

One pass over the data serves every metric asked for; the randomization metrics stop after
their subset (the first 1,024 samples by default, as published). Each score file is
written atomically as soon as its metric is done, with its cost record beside it
(`Layout.cost`: images, seconds inside the metric, seconds per image, batch size, device,
library versions; `dina_datasets.cost`).

With `activation="sigmoid"` or `"logits"` the model's softmax head is swapped before
scoring (targets stay the model's own prediction) and the files are
`{Metric}_scores.{activation}.json`; the map-only metrics (Sparseness, Complexity) do not
depend on the activation and are skipped with a note.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dina_datasets import catalog, formats
from dina_datasets.errors import ConfigError, LayoutError, check_positive_int
from dina_datasets.layout import DEFAULT_ACTIVATION, DEFAULT_DATA_URL, Layout, check_activation
from dina_datasets.metrics import build, metric_class
from dina_datasets.metrics.base import Forward
from dina_datasets.metrics.sources import (
    explanation_batches,
    join_images,
    join_preprocess,
    prefetch,
)
from dina_datasets.recordio import records, storage


@dataclass
class Written:
    """One score file: where, how many samples, their mean."""

    metric: str
    url: str
    count: int
    mean: float


@dataclass
class EvaluateResult:
    config: str
    written: list[Written] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{w.metric}: {w.count} scores, mean {w.mean:.6g} -> {w.url}"
                 for w in self.written]
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


def evaluate(model: str, explainer: str, metrics: Sequence[str], *,
             data_url: str = DEFAULT_DATA_URL, out: str | None = None,
             images: str | None = None, preprocess_url: str | None = None,
             weights: str = "pretrained", limit: int | None = None,
             subsample: int | None = None, batch_size: int = 32, seed: int = 42,
             variant: str = "dina", activation: str = DEFAULT_ACTIVATION,
             progress: bool = True, assume_order: bool = False,
             overwrite: bool = False, metric_params: dict[str, dict[str, Any]] | None = None,
             storage_options: dict[str, Any] | None = None) -> EvaluateResult:
    """Score the maps of `model`/`explainer` under `data_url`; write the score files under
    `out` (default: `data_url`) in the bucket layout.

    Inputs and targets come from `images` (preprocessed here, targets = the model's own
    one-hot prediction) or from a preprocess file (`preprocess_url`, default the layout's).
    `limit` keeps the first N maps; `subsample` replaces the randomization metrics' subset
    (1,024). Metrics without a model read the maps alone. Maps without image keys are paired
    with `images` by position only for the kecam json that produced them or with
    `assume_order`. A score file is never replaced by a shorter one (a partial run) unless
    `overwrite`: choose another `out` instead. `metric_params` ({metric: {name: value}})
    replace a metric's published parameters (e.g. Deletion's nb_steps). `activation`
    (softmax, sigmoid, logits) is the model's output head while scoring; metrics that do not
    depend on it are skipped with a note when it is not softmax.
    """
    started = time.perf_counter()
    cell = catalog.Cell(model, explainer, allow_missing=True)
    specs = list({spec.name: spec for spec in map(catalog.metric, metrics)}.values())
    if not specs:
        raise ConfigError(f"no metric given; valid: {', '.join(catalog.METRICS)}")
    activation = check_activation(activation)
    skipped = [s.name for s in specs
               if activation != DEFAULT_ACTIVATION and not s.depends_on_activation]
    specs = [s for s in specs if s.name not in skipped]
    if not specs:
        dependent = [m.name for m in catalog.iter_metrics() if m.depends_on_activation]
        raise ConfigError(f"{', '.join(skipped)}: map-only, not dependent on the output "
                          f"activation (the {DEFAULT_ACTIVATION} scores stand for {activation} "
                          f"too); the metrics that depend on it: {', '.join(dependent)}")
    for name, value in (("limit", limit), ("subsample", subsample),
                        ("batch size", batch_size)):
        check_positive_int(name, value, allow_none=name != "batch size")
    layout, out_layout = Layout(data_url), Layout(out or data_url)
    url = layout.explanations(cell.model, cell.explainer)
    num_records = records.inspect(url, storage_options).num_records
    total = min(num_records, limit or num_records)
    stops = {s.name: min(total, subsample or s.subset) if s.subset else total for s in specs}
    result = EvaluateResult(cell.name)
    if total == 0:
        raise LayoutError(f"{url} holds no records")
    if not overwrite:
        _keep_longer(out_layout, cell, stops, activation, storage_options)
    if skipped:
        result.notes.append(f"skipped {', '.join(skipped)}: map-only, not recomputed for "
                            f"{activation} (the {DEFAULT_ACTIVATION} scores stand for every "
                            "activation)")

    net = None
    batches = explanation_batches(url, max(stops.values()), batch_size,
                                  storage_options=storage_options)
    if any(s.needs_model for s in specs):
        from dina_datasets.generation.models import build_model

        kind, source = _model_input_source(layout, cell.model, images, preprocess_url,
                                           storage_options)
        if kind == "images":  # refuse a pairing by position before any work
            first = records.read_record(url, 0, tensors=frozenset(),
                                        storage_options=storage_options)
            if "image_id" not in first:
                from dina_datasets.generation.images import check_positional

                check_positional(source, f"the records of {cell.name}", assume_order)
        net = build_model(cell.model, weights)
        if kind == "images":
            batches = _with_images(batches, cell, source, net, num_records, assume_order)
        else:
            batches = join_preprocess(batches, source, num_records,
                                      storage_options=storage_options)
    factory = None
    if any(s.family == "randomization" for s in specs):
        import tensorflow as tf

        baseline = None
        if _needs_dataset_mean(cell):
            baseline = _dataset_mean(cell, images, preprocess_url, layout, total, batch_size,
                                     storage_options)
            result.notes.append(f"{cell.explainer} baseline: per-channel mean of the "
                                f"{total} evaluated inputs {np.round(baseline, 4).tolist()}")
        factory = _explainer_factory(cell, batch_size, baseline)
        tf.keras.utils.set_random_seed(seed)
    params = {catalog.metric(name).name: dict(kv) for name, kv in (metric_params or {}).items()}
    unused = set(params) - {s.name for s in specs}
    if unused:
        raise ConfigError(f"parameters given for {', '.join(sorted(unused))}, which is not "
                          f"among the metrics computed ({', '.join(s.name for s in specs)})")
    scorers = {s.name: _metric(s, net, factory, batch_size, seed, variant, activation,
                               params.get(s.name, {})) for s in specs}
    scores: dict[str, list[np.ndarray]] = {name: [] for name in scorers}
    seconds = dict.fromkeys(scorers, 0.0)
    from dina_datasets import cost

    cost.environment()  # device and versions, looked up once TensorFlow is imported
    mismatched = 0
    from tqdm import tqdm

    with tqdm(total=max(stops.values()), unit="map", desc=cell.name,
              disable=not progress) as bar:
        for batch in prefetch(batches):
            if batch.prediction is not None and batch.targets is not None:
                mismatched += int(np.sum(np.asarray(batch.prediction) !=
                                         batch.targets.argmax(axis=-1)))
            for name, metric in scorers.items():
                n = min(len(batch), stops[name] - batch.start)
                if n <= 0:
                    continue
                part = slice(0, n)
                began = time.perf_counter()
                scores[name].append(np.asarray(metric.scores(
                    None if batch.inputs is None else batch.inputs[part],
                    None if batch.targets is None else batch.targets[part],
                    batch.explanations[part], start=batch.start), np.float64))
                seconds[name] += time.perf_counter() - began
                if batch.start + n == stops[name]:
                    result.written.append(_write(name, scores[name], out_layout, cell,
                                                 activation, storage_options))
                    cost.write(out_layout.cost(cell.model, cell.explainer, name, activation),
                               cost.record("evaluate", images=stops[name],
                                           seconds=seconds[name], batch_size=batch_size,
                                           model=cell.model, explainer=cell.explainer,
                                           metric=name, activation=activation,
                                           variant=variant, weights=weights,
                                           wall_seconds=time.perf_counter() - started),
                               storage_options)
            bar.update(len(batch))
    if mismatched:
        result.notes.append(f"{mismatched} targets differ from the predictions recorded with "
                            "the maps: were they made with other weights?")
    return result


def _metric(spec: catalog.MetricSpec, net: Any, factory: Any, batch_size: int, seed: int,
            variant: str, activation: str = DEFAULT_ACTIVATION,
            params: dict[str, Any] | None = None) -> Any:
    accepted = inspect.signature(metric_class(spec.name)).parameters
    extra = {k: v for k, v in (("seed", seed), ("variant", variant)) if k in accepted}
    if "activation" in (params or {}):
        raise ConfigError(f"{spec.name}.activation: choose the output head with --activation "
                          "(it also names the score file), not as a metric parameter")
    unknown = set(params or {}) - set(accepted)
    if unknown:
        raise ConfigError(f"{spec.name} has no parameter {', '.join(sorted(unknown))}; its "
                          "parameters: " + ", ".join(k for k in accepted
                                                     if k not in ("self", "model")))
    extra.update(params or {})
    if activation != DEFAULT_ACTIVATION:
        extra["activation"] = activation
    if spec.family == "randomization":
        return build(spec.name, net, factory, batch_size=batch_size, **extra)
    return build(spec.name, net if spec.needs_model else None, batch_size=batch_size, **extra)


def _write(name: str, parts: list[np.ndarray], layout: Layout, cell: catalog.Cell,
           activation: str, options: dict | None) -> Written:
    values = np.concatenate(parts)
    url = layout.scores(cell.model, cell.explainer, name, activation)
    formats.write_scores(url, values, options)
    finite = values[np.isfinite(values)]
    return Written(name, url, len(values), float(finite.mean()) if len(finite) else math.nan)


def _keep_longer(layout: Layout, cell: catalog.Cell, stops: dict[str, int], activation: str,
                 options: dict | None) -> None:
    """ConfigError before any work when a score file to write holds more scores than this
    run computes (a `--limit` or `--subsample` run over a full file)."""
    for name, stop in stops.items():
        url = layout.scores(cell.model, cell.explainer, name, activation)
        existing = formats.read_scores(url, options)
        if existing is not None and len(existing) > stop:
            raise ConfigError(f"{url} holds {len(existing)} scores and this run computes "
                              f"{stop}: it would replace them with fewer. Write elsewhere "
                              "with --out DIR (out=), or pass --overwrite (overwrite=True) "
                              "to replace the file")


def _with_images(batches: Any, cell: catalog.Cell, source: str, net: Any, num_records: int,
                 assume_order: bool = False) -> Any:
    from dina_datasets.generation.images import check_positional, list_images
    from dina_datasets.generation.models import input_size
    from dina_datasets.generation.preprocessing import preprocess_images

    entries = list_images(source)
    size = input_size(net)
    forward = Forward(net)

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
        from dina_datasets.generation.images import list_images

        paths = [e.path for e in list_images(images)[:total]]
        return dataset_mean(cell.model, paths=paths, batch_size=batch_size)
    return dataset_mean(cell.model, preprocess_url=preprocess_url or layout.preprocess(cell.model),
                        limit=total, storage_options=options)
