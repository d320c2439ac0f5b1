"""What a generation run is: its settings checked and its manifest recorded (or the one it
resumes checked), the parts of its shard left to write, and its end (the merge of an
unsharded run, or what is left to do). `generation.writer` writes the parts;
`generation.pipeline.generate` runs the whole in one process, `dina_datasets.ray` on a
cluster.

The run writes one file per part under a temporary name and renames it when complete; a
re-run skips the complete parts and redoes the rest. Every part starts from the same random
seed, so a resumed run, a sharded run and an uninterrupted one write identical bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dina_datasets import catalog, storage
from dina_datasets.errors import ConfigError, check_positive_int
from dina_datasets.generation.explainers import DATASET_MEAN, explainer_params
from dina_datasets.generation.merge import PREPROCESS, MergeResult, merge
from dina_datasets.images import ImageEntry, image_root, list_images, relative_path
from dina_datasets.layout import Layout
from dina_datasets.runs import parts as parts_mod

SEED = 0


@dataclass
class GenerateResult:
    """What a run did: images explained now, wall time, parts written or found complete."""

    url: str
    config: str
    num_images: int
    images: int = 0
    seconds: float = 0.0
    loop_seconds: float = 0.0
    parts_written: int = 0
    parts_skipped: int = 0
    shard: tuple[int, int] = (1, 1)
    complete: bool = False
    merged: MergeResult | None = None
    degenerate: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / self.loop_seconds if self.loop_seconds > 0 else 0.0

    def summary(self) -> str:
        text = (f"{self.config}: {self.images} images in {self.seconds:.1f} s "
                f"({self.images_per_second:.2f} images/s while explaining); "
                f"{self.parts_written} part(s) written, {self.parts_skipped} already complete")
        return "\n".join([text, *self.notes])


@dataclass
class Run:
    """One config's generation run, checked and started: its settings, its parts and the
    parts left to write (picklable: it travels to Ray workers)."""

    cell: catalog.Cell
    entries: list[ImageEntry]
    out: str
    url: str
    weights: str
    batch_size: int
    params: dict[str, Any]
    seed: int
    kinds: list[str]
    source: str | None
    plan: list[parts_mod.Part]
    todo: list[parts_mod.Part]
    result: GenerateResult
    keep_parts: bool = False
    storage_options: dict[str, Any] | None = None
    started: float = 0.0

    @property
    def needs_baseline(self) -> bool:
        return _needs_baseline(self.cell, self.params)


def prepare(model: str, explainer: str, images: str, out: str, *,
            weights: str = "pretrained", batch_size: int = 32, limit: int | None = None,
            shard: str | tuple[int, int] | None = None, part_size: int = parts_mod.PART_SIZE,
            write_preprocess: bool = False, params: dict[str, Any] | None = None,
            seed: int = SEED, overwrite: bool = False, keep_parts: bool = False,
            storage_options: dict[str, Any] | None = None) -> Run:
    """Check a run's settings, record its manifest (or check the one it resumes) and find
    the parts of its shard left to write (`run.todo`); `run.result.complete` when the
    merged file is already there. Arguments as `generate`."""
    started = time.perf_counter()
    cell = catalog.Cell(model, explainer, allow_missing=True)
    if cell.explainer_spec.needs_conv and not cell.model_spec.has_conv:
        raise ConfigError(f"{cell.name}: {cell.explainer} needs a convolutional layer and "
                          f"{cell.model} has none")
    check_positive_int("batch size", batch_size)
    check_positive_int("part size", part_size)
    check_positive_int("limit", limit, allow_none=True)
    k, n = parts_mod.parse_shard(shard)
    from dina_datasets.generation.models import check_weights

    weights = check_weights(weights)
    params = dict(params or {})
    explainer_params(cell.explainer, baseline=np.zeros(3), **params)  # unknown-name check
    entries = list_images(images)[:limit]
    layout = Layout(out)
    url, source = layout.explanations(cell.model, cell.explainer), layout.preprocess(cell.model)
    root = image_root(images)
    manifest = parts_mod.make_manifest(
        cell.name, cell.model, cell.explainer,
        [(e.image_id, e.label, relative_path(e.path, root)) for e in entries],
        weights=weights, batch_size=batch_size, part_size=part_size, seed=seed, params=params,
        images_source=images, explainer_params={**cell.explainer_spec.params, **params},
        model_source=_model_source(cell.model_spec))
    if not parts_mod.describes(source, manifest, storage_options):
        source = None
    write_preprocess = manifest["preprocess"] = write_preprocess and source is None
    result = GenerateResult(url, cell.name, len(entries), shard=(k, n))
    if source:
        result.notes.append(f"read the preprocessed inputs and predictions from {source}")
    parts_mod.start_run(url, manifest, overwrite, storage_options)
    plan = parts_mod.plan(len(entries), part_size)
    kinds = [""] + ([PREPROCESS] if write_preprocess else [])
    run = Run(cell, entries, out, url, weights, batch_size, params, seed, kinds, source, plan,
              [], result, keep_parts, storage_options, started)
    done = parts_mod.complete_parts(url, plan, kinds, storage_options)
    if not done and storage.exists(url, storage_options) and not overwrite:
        from dina_datasets.recordio.records import inspect

        if inspect(url, storage_options).num_records == len(entries):
            result.complete = True
            result.notes.append(f"{url} is already complete" + (
                "; no preprocess file was written (pass --overwrite to redo the run)"
                if write_preprocess else ""))
            result.seconds = time.perf_counter() - started
            return run
    mine = parts_mod.shard(plan, k, n)
    run.todo = [p for p in mine if p.index not in done]
    result.parts_skipped = len(mine) - len(run.todo)
    return run


def wrote(run: Run, degenerate: int) -> None:
    """Count the parts of `run.todo` as written, with their degenerate maps."""
    result = run.result
    result.images = sum(len(p) for p in run.todo)
    result.parts_written = len(run.todo)
    result.degenerate = degenerate
    if degenerate:
        result.notes.append(f"{degenerate} of {result.images} maps are degenerate "
                            "(constant, e.g. all zero): they rank no pixel")


def finish(run: Run) -> GenerateResult:
    """After the parts are written: merge when every part is complete and the run is not
    sharded, and say what is left otherwise."""
    result, url, options = run.result, run.url, run.storage_options
    cell, out, plan = run.cell, run.out, run.plan
    complete = parts_mod.complete_parts(url, plan, run.kinds, options)
    result.complete = len(complete) == len(plan)
    if result.complete and result.shard[1] == 1:
        result.merged = merge(out, cell.model, cell.explainer, keep_parts=run.keep_parts,
                              storage_options=options)
        result.notes.append(f"wrote {result.merged.url} ({result.merged.num_records} records)")
        if result.merged.preprocess_url:
            result.notes.append(f"wrote {result.merged.preprocess_url}")
    elif result.complete:
        result.notes.append(f"all {len(plan)} parts are complete: run `dina merge --model "
                            f"{cell.model} --explainer {cell.explainer} --out {out}`")
    else:
        result.notes.append(f"{len(complete)} of {len(plan)} parts complete; the other shards "
                            "must run before `dina merge`")
    result.seconds = time.perf_counter() - run.started
    return result


def _model_source(spec: catalog.ModelSpec) -> str:
    """What builds the model, for the manifest: kecam's constructor call or the factory."""
    if callable(spec.constructor):
        return f"{getattr(spec.constructor, '__module__', '?')}:" \
               f"{getattr(spec.constructor, '__qualname__', repr(spec.constructor))}"
    kwargs = ", ".join(f"{k}={v!r}" for k, v in spec.kwargs.items())
    return spec.constructor if spec.contributed else \
        f"keras_cv_attention_models.{spec.constructor}({kwargs})"


def _needs_baseline(cell: catalog.Cell, params: dict) -> bool:
    merged = {**cell.explainer_spec.params, **params}
    return any(isinstance(v, str) and v == DATASET_MEAN for v in merged.values())
