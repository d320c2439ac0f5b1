"""The writer of a generation run's parts: the model, explainer and prediction function,
built once, explaining batch after batch into the part files (each under a temporary name,
renamed when complete) with their cost records; and the "dataset_mean" baseline some
explainers need, computed once per run and cached beside its parts.

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
from typing import Any

import numpy as np

from dina_datasets import catalog, maps, storage
from dina_datasets.errors import ConfigError
from dina_datasets.generation.merge import PREPROCESS
from dina_datasets.generation.run import Run
from dina_datasets.images import ImageEntry
from dina_datasets.recordio.records import RecordWriter, read_records
from dina_datasets.runs import parts as parts_mod

BASELINE_FILE = "baseline.json"


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
        from dina_datasets.generation.runtime import tensorflow

        tf = tensorflow()

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
        from dina_datasets.generation.runtime import tensorflow

        tf = tensorflow()

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
