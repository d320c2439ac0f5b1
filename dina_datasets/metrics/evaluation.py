"""Score a cell's stored maps with DINA's metrics and write `{Metric}_scores.json`.

The maps are scored part by part (`dina_datasets.runs.score_parts`): each part is read once for
every metric asked for, and its scores are written atomically, so an interrupted run resumes
where it stopped and `shard=(K, N)` splits a run over machines. The randomization metrics
stop after their subset (the first 1,024 samples by default, as published). A metric's
score file is written, atomically, when all its parts are there, with its cost record beside
it (`Layout.cost`: images, seconds inside the metric, seconds per image, batch size, device,
library versions; `dina_datasets.runs.cost`).

With `activation="sigmoid"` or `"logits"` the model's softmax head is swapped before
scoring (targets stay the model's own prediction) and the files are
`{Metric}_scores.{activation}.json`; the map-only metrics (Sparseness, Complexity) do not
depend on the activation and are skipped with a note.

`evaluate` runs everything in this process; `prepare`, `scorer.PartScorer` and `finish` are
the same steps for an engine that runs the parts elsewhere (`dina_datasets.ray`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dina_datasets import catalog, formats
from dina_datasets.errors import ConfigError, LayoutError, check_positive_int
from dina_datasets.layout import DEFAULT_ACTIVATION, DEFAULT_DATA_URL, Layout, check_activation
from dina_datasets.metrics.plan import (
    EvaluateResult,
    Evaluation,
    Written,
    _check_params,
    _dataset_mean,
    _model_input_source,
    _needs_dataset_mean,
)
from dina_datasets.metrics.provenance import check_written, settings_of, written_by_other
from dina_datasets.metrics.scorer import PartScorer
from dina_datasets.recordio import records
from dina_datasets.runs import parts as parts_mod
from dina_datasets.runs import score_parts
from dina_datasets.runs import settings as score_settings


def evaluate(model: str, explainer: str, metrics: Sequence[str], *,
             data_url: str = DEFAULT_DATA_URL, out: str | None = None,
             images: str | None = None, preprocess_url: str | None = None,
             weights: str = "pretrained", limit: int | None = None,
             subsample: int | None = None, batch_size: int = 32, seed: int = 42,
             variant: str = "dina", activation: str = DEFAULT_ACTIVATION,
             progress: bool | float = True, assume_order: bool = False,
             overwrite: bool = False, metric_params: dict[str, dict[str, Any]] | None = None,
             part_size: int = parts_mod.PART_SIZE, shard: str | tuple[int, int] | None = None,
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

    `progress`: a bar (True), a plain line every `progress` seconds (a number: a log), or
    nothing (False). Parts of `part_size` maps are written as they are done; a re-run
    resumes, `shard="K/N"`
    scores the K-th of N blocks of parts, and `overwrite` also discards the parts of an
    earlier run made with other settings.
    """
    run = prepare(model, explainer, metrics, data_url=data_url, out=out, images=images,
                  preprocess_url=preprocess_url, weights=weights, limit=limit,
                  subsample=subsample, batch_size=batch_size, seed=seed, variant=variant,
                  activation=activation, assume_order=assume_order, overwrite=overwrite,
                  metric_params=metric_params, part_size=part_size, shard=shard,
                  storage_options=storage_options)
    if run.todo:
        from dina_datasets.runs.progress import progress as shown

        scorer = PartScorer(run, _model(run))
        with shown(progress, sum(len(p) for p in run.todo), run.cell.name, "map") as bar:
            for part in run.todo:
                run.result.add(len(part), scorer.score(part))
                bar.update(len(part))
    return finish(run)


# The model `evaluate` built last, reused by the next cell of the same model and weights (a
# loop over explainers builds it, and traces its forward function, once): (spec, key, net).
_LAST_MODEL: list[tuple[Any, tuple[str, str], Any]] = []


def _model(run: Evaluation) -> Any:
    """The Keras model of `run` (None when no metric runs it), reused from the last call."""
    if run.inputs is None:
        return None
    spec = run.cell.model_spec
    key = (run.cell.model, score_settings.weights_identity(run.weights, spec.constructor))
    if not (_LAST_MODEL and _LAST_MODEL[0][0] is spec and _LAST_MODEL[0][1] == key):
        from dina_datasets.generation.models import build_model

        _LAST_MODEL[:] = [(spec, key, build_model(run.cell.model, run.weights))]
    return _LAST_MODEL[0][2]


def prepare(model: str, explainer: str, metrics: Sequence[str], *,
            data_url: str = DEFAULT_DATA_URL, out: str | None = None,
            images: str | None = None, preprocess_url: str | None = None,
            weights: str = "pretrained", limit: int | None = None,
            subsample: int | None = None, batch_size: int = 32, seed: int = 42,
            variant: str = "dina", activation: str = DEFAULT_ACTIVATION,
            assume_order: bool = False, overwrite: bool = False,
            metric_params: dict[str, dict[str, Any]] | None = None,
            part_size: int = parts_mod.PART_SIZE, shard: str | tuple[int, int] | None = None,
            storage_options: dict[str, Any] | None = None) -> Evaluation:
    """Check an evaluation's settings, record them beside its parts (or check those of the
    run it resumes) and find the parts of its shard left to score. Arguments as `evaluate`;
    nothing is written when a check fails.
    """
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
                        ("batch size", batch_size), ("part size", part_size)):
        check_positive_int(name, value, allow_none=name in ("limit", "subsample"))
    k, n = parts_mod.parse_shard(shard)
    params = {catalog.metric(name).name: dict(kv) for name, kv in (metric_params or {}).items()}
    unused = set(params) - {s.name for s in specs}
    if unused:
        raise ConfigError(f"parameters given for {', '.join(sorted(unused))}, which is not "
                          f"among the metrics computed ({', '.join(s.name for s in specs)})")
    for spec in specs:
        _check_params(spec, params.get(spec.name, {}))
    layout, out_layout = Layout(data_url), Layout(out or data_url)
    url = layout.explanations(cell.model, cell.explainer)
    num_records = records.inspect(url, storage_options).num_records
    total = min(num_records, limit or num_records)
    if total == 0:
        raise LayoutError(f"{url} holds no records")
    stops = {s.name: min(total, subsample or s.subset) if s.subset else total for s in specs}
    if not overwrite:
        _keep_longer(out_layout, cell, stops, activation, storage_options)
    inputs = None
    if any(s.needs_model for s in specs):
        from dina_datasets.generation.models import check_weights

        weights = check_weights(weights)
        inputs = _model_input_source(layout, cell.model, images, preprocess_url,
                                     storage_options)
        if inputs[0] == "images":  # refuse a pairing by position before any work
            first = records.read_record(url, 0, tensors=frozenset(),
                                        storage_options=storage_options)
            if "image_id" not in first:
                from dina_datasets.images import check_positional

                check_positional(inputs[1], f"the records of {cell.name}", assume_order)
    plan = parts_mod.plan(max(stops.values()), part_size)
    run = Evaluation(cell, [s.name for s in specs], url, num_records, stops, out or data_url,
                     inputs, weights, batch_size, seed, variant, plan, [], activation, params,
                     assume_order, storage_options=storage_options,
                     result=EvaluateResult(cell.name))
    if skipped:
        run.result.notes.append(f"skipped {', '.join(skipped)}: map-only, not recomputed for "
                                f"{activation} (the {DEFAULT_ACTIVATION} scores stand for "
                                "every activation)")
    maps = score_settings.maps_signature(url, storage_options)
    wanted = {s.name: settings_of(run, s, total, maps) for s in specs}
    done = check_written(run, wanted, overwrite)
    specs = [s for s in specs if s.name not in done]
    run.metrics = [s.name for s in specs]
    randomization = any(s.family == "randomization" for s in specs)
    keep = ("baseline",) if randomization and _needs_dataset_mean(cell) else ()
    started = {s.name: score_parts.start(run.score_url(s.name), wanted[s.name], overwrite,
                                         storage_options, keep) for s in specs}
    recorded = {name: record for name, (record, _) in started.items()}
    if keep:
        stored = next((r["baseline"] for r in recorded.values() if "baseline" in r), None)
        run.baseline = stored or _dataset_mean(cell, images, preprocess_url, layout, total,
                                               batch_size, storage_options).tolist()
        run.result.notes.append(f"{cell.explainer} baseline: per-channel mean of the "
                                f"{total} evaluated inputs {np.round(run.baseline, 4).tolist()}")
        for spec in specs:
            if spec.family == "randomization":
                recorded[spec.name]["baseline"] = run.baseline
    for spec in specs:
        score_parts.write_settings(run.score_url(spec.name), recorded[spec.name],
                                   started[spec.name][1], storage_options)
    run.records = recorded
    mine = parts_mod.shard(plan, k, n)
    have = {name: score_parts.present(run.score_url(name), storage_options)
            for name in run.metrics}
    run.todo = [p for p in mine if any(
        score_parts.part_name(*r) not in have[name]
        for name in run.metrics for r in run.ranges(name, [p]))]
    run.result.parts_skipped = len(mine) - len(run.todo)
    return run


def finish(run: Evaluation) -> EvaluateResult:
    """Join the parts of every metric whose parts are all there into its score file, with
    its cost record (the seconds of its parts) and settings file. Shards finishing together
    are safe: a shard whose parts were joined and removed by another notes it."""
    from dina_datasets.runs import cost

    result, options, cell = run.result, run.storage_options, run.cell
    layout = Layout(run.out)
    for name in run.metrics:
        url = run.score_url(name)
        ranges = run.ranges(name)
        try:
            joined = score_parts.join(url, ranges, options)
        except FileNotFoundError:
            joined = None
        if joined is None:
            if written_by_other(run, name, layout):
                continue
            done = len(score_parts.present(url, options))
            result.notes.append(f"{name}: {done} of {len(ranges)} parts scored; the other "
                                "shards must run before its score file is written")
            continue
        values, seconds, wall = joined
        record = score_settings.make(run.records[name], len(values), cost.versions())
        where = layout.settings(cell.model, cell.explainer, name, run.activation)
        old = score_settings.read(where, options)
        if old is not None and old != record:  # never a new score file beside old settings
            score_settings.remove(where, options)
        result.written.append(_write(name, [values], layout, cell, run.activation, options))
        cost.write(layout.cost(cell.model, cell.explainer, name, run.activation),
                   cost.record("evaluate", images=len(values), seconds=seconds,
                               batch_size=run.batch_size, model=cell.model,
                               explainer=cell.explainer, metric=name,
                               activation=run.activation, variant=run.variant,
                               weights=run.weights, wall_seconds=wall), options)
        score_settings.write(where, record, options)
        score_parts.remove(url, options)
    if result.mismatched:
        result.notes.append(f"{result.mismatched} targets differ from the predictions recorded "
                            "with the maps: were they made with other weights?")
    return result


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
