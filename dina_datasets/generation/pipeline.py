"""A generation run: images -> kecam preprocessing -> prediction -> explanation -> DINA records,
sharded and resumable.

The run writes one file per part under a temporary name and renames it when complete; a
re-run skips the complete parts and redoes the rest. Every part starts from the same random
seed, so a resumed run, a sharded run and an uninterrupted one write identical bytes. An
unsharded run merges its parts into the layout's `explanations.tfrecord` at the end; sharded
runs are merged with `dina merge`.

Each complete part leaves a cost record beside it (images, wall seconds, seconds per image
while explaining, batch size, device, library versions: `dina_datasets.runs.cost`); the merge
gathers them into the run's manifest beside the records.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dina_datasets import catalog, maps, storage
from dina_datasets.errors import ConfigError, check_positive_int
from dina_datasets.generation.explainers import DATASET_MEAN, explainer_params
from dina_datasets.generation.merge import PREPROCESS, MergeResult, merge
from dina_datasets.images import ImageEntry, image_root, list_images, relative_path
from dina_datasets.layout import Layout
from dina_datasets.recordio.records import RecordWriter, read_records
from dina_datasets.runs import parts as parts_mod

SEED = 0
BASELINE_FILE = "baseline.json"


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


def generate(model: str, explainer: str, images: str, out: str, *,
             weights: str = "pretrained", batch_size: int = 32, limit: int | None = None,
             shard: str | tuple[int, int] | None = None, part_size: int = parts_mod.PART_SIZE,
             write_preprocess: bool = False, params: dict[str, Any] | None = None,
             seed: int = SEED, overwrite: bool = False, keep_parts: bool = False,
             progress: bool = True, storage_options: dict[str, Any] | None = None
             ) -> GenerateResult:
    """Explain the images of `images` with `model` and `explainer`; write DINA records
    under the bucket layout at `out` (any fsspec URL).

    Records hold `explanations` (readable by the original loader) and the join keys `index`,
    `image_id`, `label`, `prediction`. `params` override the explainer's hyperparameters.
    """
    run = prepare(model, explainer, images, out, weights=weights, batch_size=batch_size,
                  limit=limit, shard=shard, part_size=part_size,
                  write_preprocess=write_preprocess, params=params, seed=seed,
                  overwrite=overwrite, keep_parts=keep_parts, storage_options=storage_options)
    if run.result.complete:
        return run.result
    if run.todo:
        from tqdm import tqdm

        writer = PartWriter(run, progress=progress)
        loop_started = time.perf_counter()
        with tqdm(total=sum(len(p) for p in run.todo), unit="img", desc=run.cell.name,
                  disable=not progress) as bar:
            degenerate = writer.write(run.todo, bar.update)
        run.result.loop_seconds = time.perf_counter() - loop_started
        wrote(run, degenerate)
    return finish(run)


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


def dataset_baseline(run: Run, progress: bool = False) -> np.ndarray | None:
    """The explainer's "dataset_mean" baseline of a run (per-channel mean of the inputs of
    all its images, cached beside its parts), or None when its explainer takes none."""
    if not run.needs_baseline:
        return None
    return _baseline(run.cell, run.entries, run.cell.model_spec.input_size, run.url,
                     run.batch_size, run.source, progress, run.storage_options)


def _baseline(cell: catalog.Cell, entries: list[ImageEntry], size: int, url: str,
              batch_size: int, source: str | None, progress: bool, options: dict | None
              ) -> np.ndarray:
    """Per-channel mean of the preprocessed inputs of the whole run (cached in the parts
    folder so that every shard and resume uses the same value); read from the preprocess
    file `source` when there is one."""
    cache = storage.join(parts_mod.parts_folder(url), BASELINE_FILE)
    fs, path = storage.filesystem(cache, options)
    if fs.exists(path):
        data = json.loads(fs.cat_file(path))
        if data.get("num_images") == len(entries):
            return np.asarray(data["mean"], np.float32)
    from dina_datasets.generation.preprocessing import dataset_mean

    mean = dataset_mean(cell.model, paths=[e.path for e in entries], preprocess_url=source,
                        input_size=size, batch_size=batch_size, progress=progress,
                        storage_options=options)
    with storage.atomic_write(cache, "w", options) as handle:
        json.dump({"num_images": len(entries), "mean": mean.tolist()}, handle)
    return mean


def _batches(entries: list[ImageEntry], todo: list[parts_mod.Part], batch_size: int
             ) -> Iterator[tuple[parts_mod.Part, int, list[ImageEntry]]]:
    for part in todo:
        for start in range(part.start, part.stop, batch_size):
            yield part, start, entries[start:min(part.stop, start + batch_size)]


class PartWriter:
    """The model, explainer and prediction function of a run, built once, writing any of
    its parts with their cost records (the unit a Ray worker runs; `generate` runs them all
    in one process).

    With `run.source` (a matching preprocess file) the inputs and predictions are read from
    it instead of decoding, preprocessing and predicting again. `net` reuses a model already
    built with the run's weights; `baseline` a dataset mean already computed.
    """

    def __init__(self, run: Run, net: Any = None, baseline: np.ndarray | None = None,
                 progress: bool = False) -> None:
        import tensorflow as tf

        from dina_datasets.generation.explainers import make_explainer
        from dina_datasets.generation.models import build_model, input_size

        cell = run.cell
        self.run = run
        net = build_model(cell.model, run.weights) if net is None else net
        self.size = size = input_size(net)
        if size != cell.model_spec.input_size:
            raise ConfigError(f"model {cell.model!r} takes {size}x{size} images but the "
                              f"catalog says {cell.model_spec.input_size}: register it with "
                              f"input_size={size}")
        if baseline is None and run.needs_baseline:
            baseline = _baseline(cell, run.entries, size, run.url, run.batch_size, run.source,
                                 progress, run.storage_options)
        self.explain = make_explainer(cell.explainer, net, model_name=cell.model,
                                      batch_size=run.batch_size, baseline=baseline,
                                      **run.params)
        self.predict = tf.function(lambda x: net(x, training=False), input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.float32)])  # one trace, any batch size
        self.num_classes = int(net.output_shape[-1])

    def _load(self, start: int, batch: list[ImageEntry]) -> tuple[np.ndarray, np.ndarray]:
        from dina_datasets.generation.preprocessing import preprocess_images

        run = self.run
        if run.source:
            rows = list(read_records(run.source, start, start + len(batch),
                                     storage_options=run.storage_options))
            return (np.stack([r["preprocess_input"] for r in rows]),
                    np.stack([r["one_hot_prediction"] for r in rows]))
        x = preprocess_images([e.path for e in batch], run.cell.model, input_size=self.size)
        return x, np.asarray(self.predict(x))

    def write(self, todo: list[parts_mod.Part], update: Callable[[int], Any] | None = None
              ) -> int:
        """Write the parts in `todo` and their cost records, each part under a temporary name
        renamed when complete; `update(n)` after every batch of n images. Returns the number
        of degenerate maps (a DegenerateMapWarning is issued at the first batch with one)."""
        import tensorflow as tf

        from dina_datasets.runs import cost

        run, options = self.run, self.run.storage_options
        url, kinds, shard = run.url, run.kinds, run.result.shard
        cost.environment()  # device and versions, looked up once TensorFlow is imported
        batches = list(_batches(run.entries, todo, run.batch_size))
        writers: dict[str, RecordWriter] = {}
        degenerate = 0
        part_started, explaining = time.perf_counter(), 0.0
        if not batches:
            return degenerate
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(self._load, *batches[0][1:])
            try:
                for i, (part, start, batch) in enumerate(batches):
                    x, probs = pending.result()
                    if i + 1 < len(batches):
                        pending = pool.submit(self._load, *batches[i + 1][1:])
                    if start == part.start:
                        parts_mod.remove_partial(url, part, kinds, options)
                        writers = {kind: RecordWriter(parts_mod.part_url(url, part, kind),
                                                      options, index=True) for kind in kinds}
                        tf.keras.utils.set_random_seed(run.seed)
                        part_started, explaining = time.perf_counter(), 0.0
                    flat, seconds = _write_batch(writers, batch, start, x, probs, self.explain,
                                                 self.num_classes)
                    explaining += seconds
                    if flat and not degenerate:
                        warnings.warn(maps.DegenerateMapWarning(
                            f"{run.cell.name}: {flat} of the {len(batch)} maps of images "
                            f"{start}-{start + len(batch) - 1} are degenerate (constant, e.g. "
                            "all zero): they rank no pixel (random weights? an explainer that "
                            "does not fit the model?); the run goes on and counts them"),
                            stacklevel=2)
                    degenerate += flat
                    if start + len(batch) == part.stop:
                        for kind in sorted(kinds, reverse=True):  # explanations renamed last
                            writers[kind].close()
                        cost.write(parts_mod.cost_url(url, part), cost.record(
                            "generate", images=len(part), seconds=explaining,
                            batch_size=run.batch_size, part=part.index,
                            wall_seconds=time.perf_counter() - part_started,
                            shard=f"{shard[0]}/{shard[1]}"), options)
                    if update:
                        update(len(batch))
            except BaseException as err:
                for writer in writers.values():  # closed writers ignore this
                    writer.abort(err)
                raise
        return degenerate


def _needs_baseline(cell: catalog.Cell, params: dict) -> bool:
    merged = {**cell.explainer_spec.params, **params}
    return any(isinstance(v, str) and v == DATASET_MEAN for v in merged.values())


def _write_batch(writers: dict[str, RecordWriter], batch: list[ImageEntry], start: int,
                 x: np.ndarray, probs: np.ndarray, explain: Any, num_classes: int
                 ) -> tuple[int, float]:
    """Explain and write one batch; returns how many of its maps are degenerate and the
    seconds spent explaining."""
    predictions = probs.argmax(axis=-1)
    one_hot = np.eye(num_classes, dtype=np.float32)[predictions]
    started = time.perf_counter()
    made = explain(x, one_hot)
    explaining = time.perf_counter() - started
    for j, entry in enumerate(batch):
        if PREPROCESS in writers:
            writers[PREPROCESS].write({"preprocess_input": x[j], "one_hot_prediction": one_hot[j]})
        writers[""].write({"explanations": made[j], "index": start + j, "image_id": entry.image_id,
                           "label": entry.label, "prediction": int(predictions[j])})
    return int(maps.degenerate(made).sum()), explaining

