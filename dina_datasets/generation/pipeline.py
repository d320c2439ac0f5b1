"""A generation run: images -> kecam preprocessing -> prediction -> explanation -> DINA records,
sharded and resumable.

The run writes one file per part under a temporary name and renames it when complete; a
re-run skips the complete parts and redoes the rest. Every part starts from the same random
seed, so a resumed run, a sharded run and an uninterrupted one write identical bytes. An
unsharded run merges its parts into the layout's `explanations.tfrecord` at the end; sharded
runs are merged with `dina merge`.

Each complete part leaves a cost record beside it (images, wall seconds, seconds per image
while explaining, batch size, device, library versions: `dina_datasets.cost`); the merge
gathers them into the run's manifest beside the records.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dina_datasets import catalog, maps
from dina_datasets.errors import ConfigError, check_positive_int
from dina_datasets.generation import parts as parts_mod
from dina_datasets.generation.explainers import DATASET_MEAN, explainer_params
from dina_datasets.generation.images import ImageEntry, image_root, list_images, relative_path
from dina_datasets.generation.merge import PREPROCESS, MergeResult, merge
from dina_datasets.layout import Layout
from dina_datasets.recordio import storage
from dina_datasets.recordio.records import RecordWriter, read_records

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
    done = parts_mod.complete_parts(url, plan, kinds, storage_options)
    if not done and storage.exists(url, storage_options) and not overwrite:
        from dina_datasets.recordio.records import inspect

        if inspect(url, storage_options).num_records == len(entries):
            result.complete = True
            result.notes.append(f"{url} is already complete" + (
                "; no preprocess file was written (pass --overwrite to redo the run)"
                if write_preprocess else ""))
            result.seconds = time.perf_counter() - started
            return result
    mine = parts_mod.shard(plan, k, n)
    todo = [p for p in mine if p.index not in done]
    result.parts_skipped = len(mine) - len(todo)
    if todo:
        loop_started, result.degenerate = _run_parts(
            cell, entries, todo, url, weights=weights, batch_size=batch_size, params=params,
            seed=seed, kinds=kinds, source=source, progress=progress, options=storage_options,
            shard=(k, n))
        result.loop_seconds = time.perf_counter() - loop_started
        result.images = sum(len(p) for p in todo)
        result.parts_written = len(todo)
        if result.degenerate:
            result.notes.append(f"{result.degenerate} of {result.images} maps are degenerate "
                                "(constant, e.g. all zero): they rank no pixel")
    complete = parts_mod.complete_parts(url, plan, kinds, storage_options)
    result.complete = len(complete) == len(plan)
    if result.complete and n == 1:
        result.merged = merge(out, cell.model, cell.explainer, keep_parts=keep_parts,
                              storage_options=storage_options)
        result.notes.append(f"wrote {result.merged.url} ({result.merged.num_records} records)")
        if result.merged.preprocess_url:
            result.notes.append(f"wrote {result.merged.preprocess_url}")
    elif result.complete:
        result.notes.append(f"all {len(plan)} parts are complete: run `dina merge --model "
                            f"{cell.model} --explainer {cell.explainer} --out {out}`")
    else:
        result.notes.append(f"{len(complete)} of {len(plan)} parts complete; the other shards "
                            "must run before `dina merge`")
    result.seconds = time.perf_counter() - started
    return result


def _model_source(spec: catalog.ModelSpec) -> str:
    """What builds the model, for the manifest: kecam's constructor call or the factory."""
    if callable(spec.constructor):
        return f"{getattr(spec.constructor, '__module__', '?')}:" \
               f"{getattr(spec.constructor, '__qualname__', repr(spec.constructor))}"
    kwargs = ", ".join(f"{k}={v!r}" for k, v in spec.kwargs.items())
    return spec.constructor if spec.contributed else \
        f"keras_cv_attention_models.{spec.constructor}({kwargs})"


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


def _run_parts(cell: catalog.Cell, entries: list[ImageEntry], todo: list[parts_mod.Part],
               url: str, *, weights: str, batch_size: int, params: dict, seed: int,
               kinds: list[str], source: str | None, progress: bool, options: dict | None,
               shard: tuple[int, int] = (1, 1)) -> tuple[float, int]:
    """Write the parts in `todo` and their cost records; returns the time the explaining
    loop started and the number of degenerate maps (a DegenerateMapWarning is issued at the
    first batch with one).

    With `source` (a matching preprocess file) the inputs and predictions are read from it
    instead of decoding, preprocessing and predicting again.
    """
    import tensorflow as tf
    from tqdm import tqdm

    from dina_datasets.generation.explainers import make_explainer
    from dina_datasets.generation.models import build_model, input_size
    from dina_datasets.generation.preprocessing import preprocess_images

    net = build_model(cell.model, weights)
    size = input_size(net)
    if size != cell.model_spec.input_size:
        raise ConfigError(f"model {cell.model!r} takes {size}x{size} images but the catalog "
                          f"says {cell.model_spec.input_size}: register it with "
                          f"input_size={size}")
    baseline = None
    if _needs_baseline(cell, params):
        baseline = _baseline(cell, entries, size, url, batch_size, source, progress, options)
    explain = make_explainer(cell.explainer, net, model_name=cell.model, batch_size=batch_size,
                             baseline=baseline, **params)
    predict = tf.function(lambda x: net(x, training=False), input_signature=[
        tf.TensorSpec([None, size, size, 3], tf.float32)])  # one trace, any batch size
    num_classes = int(net.output_shape[-1])

    def load(start: int, batch: list[ImageEntry]) -> tuple[np.ndarray, np.ndarray]:
        if source:
            rows = list(read_records(source, start, start + len(batch), storage_options=options))
            return (np.stack([r["preprocess_input"] for r in rows]),
                    np.stack([r["one_hot_prediction"] for r in rows]))
        x = preprocess_images([e.path for e in batch], cell.model, input_size=size)
        return x, np.asarray(predict(x))

    from dina_datasets import cost

    cost.environment()  # device and versions, looked up once TensorFlow is imported
    loop_started = time.perf_counter()
    batches = list(_batches(entries, todo, batch_size))
    writers: dict[str, RecordWriter] = {}
    degenerate = 0
    part_started, explaining = loop_started, 0.0
    with ThreadPoolExecutor(1) as pool, tqdm(total=sum(len(p) for p in todo), unit="img",
                                              desc=cell.name, disable=not progress) as bar:
        pending = pool.submit(load, *batches[0][1:])
        try:
            for i, (part, start, batch) in enumerate(batches):
                x, probs = pending.result()
                if i + 1 < len(batches):
                    pending = pool.submit(load, *batches[i + 1][1:])
                if start == part.start:
                    parts_mod.remove_partial(url, part, kinds, options)
                    writers = {kind: RecordWriter(parts_mod.part_url(url, part, kind),
                                                  options, index=True) for kind in kinds}
                    tf.keras.utils.set_random_seed(seed)
                    part_started, explaining = time.perf_counter(), 0.0
                flat, seconds = _write_batch(writers, batch, start, x, probs, explain,
                                             num_classes)
                explaining += seconds
                if flat and not degenerate:
                    warnings.warn(maps.DegenerateMapWarning(
                        f"{cell.name}: {flat} of the {len(batch)} maps of images "
                        f"{start}-{start + len(batch) - 1} are degenerate (constant, e.g. all "
                        "zero): they rank no pixel (random weights? an explainer that does not "
                        "fit the model?); the run goes on and counts them"), stacklevel=2)
                degenerate += flat
                if start + len(batch) == part.stop:
                    for kind in sorted(kinds, reverse=True):  # explanations renamed last
                        writers[kind].close()
                    cost.write(parts_mod.cost_url(url, part), cost.record(
                        "generate", images=len(part), seconds=explaining,
                        batch_size=batch_size, part=part.index,
                        wall_seconds=time.perf_counter() - part_started,
                        shard=f"{shard[0]}/{shard[1]}"), options)
                bar.update(len(batch))
        except BaseException as err:
            for writer in writers.values():  # closed writers ignore this
                writer.abort(err)
            raise
    return loop_started, degenerate


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

