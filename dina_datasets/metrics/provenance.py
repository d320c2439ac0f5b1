"""The provenance of an evaluation's score files: the settings a metric's scores depend on
(`settings_of`, recorded beside its parts and, once joined, beside its score file:
`dina_datasets.runs.settings`), whether a score file is already written with them or with
others (`check_written`), and whether a shard finishing at the same time joined the parts
(`written_by_other`)."""

from __future__ import annotations

import inspect
import json
from typing import Any

from dina_datasets import catalog, storage
from dina_datasets.errors import ConfigError
from dina_datasets.formats import read_scores
from dina_datasets.layout import Layout
from dina_datasets.metrics import metric_class
from dina_datasets.metrics.plan import Evaluation, _needs_dataset_mean
from dina_datasets.runs import score_parts
from dina_datasets.runs import settings as score_settings


def settings_of(run: Evaluation, spec: catalog.MetricSpec, total: int, maps: str
              ) -> dict[str, Any]:
    """What a metric's scores depend on, beyond the map they score (`runs.settings`)."""
    accepted = inspect.signature(metric_class(spec.name)).parameters
    defaults = {k: p.default for k, p in accepted.items()
                if p.default is not inspect.Parameter.empty and k not in _NOT_PARAMS}
    settings: dict[str, Any] = {"config": run.cell.name, "metric": spec.name,
                                "explanations": run.url, "maps": maps,
                                "num_records": run.num_records,
                                "params": _plain({**defaults, **run.params.get(spec.name, {})})}
    if spec.needs_model:
        constructor = run.cell.model_spec.constructor
        settings.update(weights=score_settings.weights_identity(run.weights, constructor),
                        inputs=list(run.inputs or ()), batch_size=run.batch_size,
                        activation=run.activation)
    settings.update({k: v for k, v in (("seed", run.seed), ("variant", run.variant))
                     if k in accepted})
    if spec.family == "randomization" and _needs_dataset_mean(run.cell):
        settings["baseline_samples"] = total
    return settings


# Metric arguments that are not parameters of its definition (recorded on their own).
_NOT_PARAMS = frozenset({"self", "model", "explainer", "batch_size", "activation", "seed",
                         "variant"})


def _plain(value: Any) -> Any:
    """`value` as JSON would give it back (tuples as lists), so that records compare."""
    return json.loads(json.dumps(value, default=repr))


def check_written(run: Evaluation, wanted: dict[str, dict[str, Any]], overwrite: bool
                   ) -> set[str]:
    """The metrics whose score file is already written with exactly these settings and
    length (nothing to do; noted). ConfigError, unless `overwrite`, when a score file to
    write was computed with other settings (`runs.settings.COMPARED`), or holds another
    number of scores than its settings file describes, naming them."""
    done, refused = set(), []
    layout, cell, options = Layout(run.out), run.cell, run.storage_options
    for name, record in wanted.items():
        url = run.score_url(name)
        if not storage.exists(url, options):
            continue
        old = score_settings.read(layout.settings(cell.model, cell.explainer, name,
                                                  run.activation), options)
        differ = score_settings.differences(old, record)
        if old is not None and not differ:
            # the settings file vouches for the file it was written with: a score file
            # replaced since (another length) is not described by it
            held = read_scores(url, options)
            if held is not None and len(held) != old.get("count"):
                differ = [f"count: the settings file describes {old.get('count')} scores, "
                          f"the file holds {len(held)} (replaced since it was written)"]
        if differ and not overwrite:
            refused.append(f"{url} ({'; '.join(differ)})")
        elif old is not None and not overwrite and _same_run(old, record, run.stops[name]):
            done.add(name)
            run.result.notes.append(f"{name}: already written with these settings "
                                    f"({old['count']} scores) -> {url}")
    if refused:
        raise ConfigError(f"{len(refused)} score file(s) were written with other settings: "
                          f"{', '.join(refused)}. Pass --overwrite (overwrite=True) to replace "
                          "them, or write elsewhere with --out DIR (out=)")
    return done


def _same_run(old: dict[str, Any], record: dict[str, Any], count: int) -> bool:
    """Whether a settings file describes the score file this run would write (same maps,
    settings and count; the randomization baseline is derived from them)."""
    ignore = {"format", "id", "count", "versions", "baseline"}
    mine = {k: v for k, v in record.items() if k not in ignore}
    return old.get("count") == count and \
        {k: v for k, v in old.items() if k not in ignore} == _plain(mine)


def written_by_other(run: Evaluation, name: str, layout: Layout) -> bool:
    """Whether another shard, finishing meanwhile, joined the parts of `name` into its score
    file with this run's settings; then any part left here is removed and a note says so."""
    options, cell = run.storage_options, run.cell
    old = score_settings.read(layout.settings(cell.model, cell.explainer, name,
                                              run.activation), options)
    if old is None or not _same_run(old, run.records[name], run.stops[name]):
        return False
    score_parts.remove(run.score_url(name), options)
    run.result.notes.append(f"{name}: joined by another shard finishing at the same time "
                            f"({old['count']} scores) -> {run.score_url(name)}")
    return True
