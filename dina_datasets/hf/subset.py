"""A small multi-config DINA cut from a large one: the same records of every config (e.g. the
first 1,000 images of the 117 cells, the LATEC-sized slice that researchers pass around).

`output="records"` writes the bucket layout (`layout.Layout`), a file per config:
- `{Model}/{Explainer}/explanations.tfrecord` (+ its sidecar index, `write_explanations`):
  the records at `indices`, in that order. Each carries `index` = the full row's `index` (its
  position in the full file, or the record's own `index`), so subset rows stay joinable with
  the full dataset; and `image_id`, `label`, `prediction` as the full rows had them (`""` /
  -1 when unknown).
- every `{Metric}_scores.json` (and `{Metric}_scores.{activation}.json`) of the config,
  sliced to the same indices (null where the full file is shorter, as the randomization
  metrics are).
The builder, `RandomAccessDataset`, `dina leaderboard` and `dina show` read it as any DINA
folder. `output="parquet"` writes the Hub export of those rows instead
(`{config}/validation-*.parquet` + README.md, see `hf.export`), straight from the records'
Arrow tables (`Source.tables_at`).

Configs (names, patterns, "all") are matched against those present under `data_url`.
Index ranges follow Python's slice rules against the shortest of the configs' files (`0:1000`
on files of 4 records gives those 4), so that every config holds the same records.

Rows are read in batches of about `planner.WINDOW x planner.RANGE_BYTES` bytes
(`RandomAccessDataset.__getitems__`: neighbouring records coalesced, a window of ranged reads
in flight), the next batch read while the current one is written; `jobs` configs at a time.

Resumable: every file is written atomically, and `subset.json` at the root records the
source, the indices and each config once it is complete; a rerun skips complete configs. A
folder holding a subset of another source or of other indices is refused (ConfigError).
"""

from __future__ import annotations

import itertools
import posixpath
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import catalog, formats, storage
from dina_datasets.errors import ConfigError
from dina_datasets.hf.subset_manifest import (  # noqa: F401 - MANIFEST, FORMAT: named here
    FORMAT,
    MANIFEST,
    Manifest,
    check_no_shards,
    check_unused,
)
from dina_datasets.layout import ACTIVATIONS, DEFAULT_DATA_URL, Layout
from dina_datasets.readahead import Window
from dina_datasets.recordio import planner
from dina_datasets.recordio.reader import inspect
from dina_datasets.recordio.records import check_indices, write_explanations

OUTPUTS = ("records", "parquet")


@dataclass(frozen=True)
class SubsetConfig:
    """One config of a subset run: its rows, and whether it was already complete."""

    name: str
    rows: int
    skipped: bool


@dataclass(frozen=True)
class Indices:
    """Record indices as given: `(start, stop, step)` ranges, taken as Python slices take
    them (a negative value counts from the end, None is an end, past the end clamps), and
    single integers, which must be in range (-n <= i < n)."""

    parts: tuple[tuple[int | None, int | None, int | None] | int, ...]
    text: str

    def resolve(self, num_records: int, url: str) -> np.ndarray:
        """The indices into a file of `num_records` records; ConfigError when they select
        nothing or a record twice, RecordIndexError for a single integer out of range."""
        out = [np.arange(*slice(*part).indices(num_records), dtype=np.int64)
               if isinstance(part, tuple) else
               check_indices([part], num_records, url, negative=True) for part in self.parts]
        array = np.concatenate(out) if out else np.zeros(0, np.int64)
        if not len(array):
            raise ConfigError(f"the indices {self.text!r} select no record of {url}, which "
                              f"holds {num_records}")
        values, counts = np.unique(array, return_counts=True)
        if np.any(counts > 1):
            raise ConfigError(f"index {int(values[counts > 1][0])} is given "
                              f"{counts.max()} times (in {self.text!r} over {num_records} "
                              "records): a subset holds each record once")
        return array


def parse_indices(specs: str | Iterable[str]) -> Indices:
    """Record indices from `START:STOP[:STEP]` ranges (Python slice rules: `0:1000` on a
    file of 4 records gives its 4) and single integers, comma- or space-separated (e.g.
    "0:1000", "0:50000:50", "3,17,42", "-10:"); ConfigError on anything else."""
    text = specs if isinstance(specs, str) else ",".join(specs)
    parts = [p for p in text.replace(" ", ",").split(",") if p]
    out: list[tuple[int | None, int | None, int | None] | int] = []
    for part in parts:
        try:
            numbers = [int(v) if v else None for v in part.split(":")]
        except ValueError:
            numbers = []
        if not 1 <= len(numbers) <= 3 or (len(numbers) == 1 and numbers[0] is None):
            raise ConfigError(f"cannot read the indices {part!r}: use START:STOP[:STEP] or "
                              "integers, comma-separated (e.g. 0:1000 or 3,17,42)")
        if len(numbers) == 1:
            out.append(numbers[0])
            continue
        start, stop, step = [*numbers, None][:3]
        if step == 0:
            raise ConfigError(f"the range {part!r} has a step of 0: use a positive step")
        out.append((start, stop, step))
    if not out:
        raise ConfigError(f"no indices in {text!r}: use START:STOP (e.g. 0:1000)")
    return Indices(tuple(out), ",".join(parts))


def subset(configs: Iterable[str], out: str, indices: Indices | str | Iterable[int], *,
           data_url: str = DEFAULT_DATA_URL, output: str = "records",
           storage_options: dict[str, Any] | None = None, imagenet_json: str | None = None,
           preprocess_url: str | None = None, encoding: str = "array", check_crc: bool = True,
           jobs: int = 2, done: Callable[[SubsetConfig], Any] | None = None,
           overwrite: bool = False) -> list[SubsetConfig]:
    """Write the records at `indices` of each config under `out` (see the module docstring);
    `done(result)` is called as each config completes, one call at a time.

    `configs`: names, patterns or "all", matched against the configs present under
    `data_url`. `indices`: an `Indices` (or its text, see `parse_indices`), resolved against
    the shortest file of the configs so that every config gets the same records; or plain
    integers, each in [0, n). Everything is checked before anything is written: a folder
    holding another subset, or (records) files of a config at the paths to write without a
    `subset.json` of this subset, is refused (ConfigError) unless `overwrite` (start over)."""
    from dina_datasets.hf.export import present_configs, resolve_configs

    if output not in OUTPUTS:
        raise ConfigError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if out.rstrip("/") == data_url.rstrip("/"):
        raise ConfigError(f"--out {out} is the folder read: write the subset elsewhere")
    names = resolve_configs(configs, present_configs(data_url, storage_options), data_url)
    cells = [catalog.Cell.from_name(name) for name in names]
    layout = Layout(data_url)
    with ThreadPoolExecutor(max(1, jobs)) as pool:  # index ranges, before any write
        infos = list(pool.map(lambda c: inspect(layout.explanations(c.model, c.explainer),
                                                storage_options), cells))
    shortest = min(infos, key=lambda info: info.num_records)
    if isinstance(indices, str):
        indices = parse_indices(indices)
    if isinstance(indices, Indices):
        wanted = indices.resolve(shortest.num_records, shortest.url)
    else:
        wanted = check_indices(indices, shortest.num_records, shortest.url)
    manifest = Manifest(out, data_url, output, wanted, storage_options, fresh=overwrite)
    if manifest.fresh and not overwrite:
        for cell in cells:
            if output == "records":
                check_unused(Layout(out), cell, storage_options)
            else:
                check_no_shards(out, cell, storage_options)

    reporting = threading.Lock()  # `done` prints: one line at a time, whole

    def run(cell: catalog.Cell) -> SubsetConfig:
        if manifest.complete(cell.name):
            result = SubsetConfig(cell.name, len(wanted), True)
        else:
            kw = dict(imagenet_json=imagenet_json, preprocess_url=preprocess_url,
                      check_crc=check_crc)
            if output == "records":
                _write_records(cell, data_url, out, wanted, storage_options, **kw)
            else:
                _write_parquet(cell, data_url, out, wanted, storage_options, encoding, **kw)
            manifest.add(cell.name, len(wanted))
            result = SubsetConfig(cell.name, len(wanted), False)
        if done:
            with reporting:
                done(result)
        return result

    with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="dina-subset") as pool:
        futures = [pool.submit(run, cell) for cell in cells]
        try:
            results = [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()
    if output == "parquet":
        from dina_datasets.hf import card, export, staging

        staging.recover_all(out, storage_options)  # configs an earlier run left mid-swap
        export.write_readme(out, export.scan(out, storage_options),
                            card.read_template(None), storage_options)
    return results


def _rows(cell: catalog.Cell, data_url: str, indices: np.ndarray,
          storage_options: dict[str, Any] | None, **options: Any) -> Iterator[dict[str, Any]]:
    """The builder's rows at `indices`, in order, a batch read ahead of the caller."""
    from dina_datasets.hf.random_access import RandomAccessDataset

    ds = RandomAccessDataset(cell, data_url=data_url, storage_options=storage_options,
                             **options)
    record = max(1, ds.source.info.size // max(1, len(ds)))
    per = max(1, planner.WINDOW * planner.RANGE_BYTES // record)
    batches = [indices[k:k + per] for k in range(0, len(indices), per)]
    with Window(1) as ahead:
        for batch in ahead.map(ds.__getitems__, batches):
            yield from batch


def _write_records(cell: catalog.Cell, data_url: str, out: str, indices: np.ndarray,
                   storage_options: dict[str, Any] | None, **options: Any) -> None:
    """The config's sliced score files, then its records (the file a rerun checks last)."""
    source, target = Layout(data_url), Layout(out)
    for metric, activation, values in _score_files(source, cell, storage_options):
        sliced = np.full(len(indices), np.nan)
        inside = indices < len(values)
        sliced[inside] = values[indices[inside]]
        formats.write_scores(target.scores(cell.model, cell.explainer, metric, activation),
                             sliced, storage_options)
    keys = ("explanation", "index", "image_id", "label", "prediction")
    streams = dict(zip(keys, itertools.tee(_rows(cell, data_url, indices, storage_options,
                                                 **options), len(keys)), strict=True))
    columns = {k: _column(rows, k) for k, rows in streams.items()}
    write_explanations(target.explanations(cell.model, cell.explainer),
                       columns.pop("explanation"), storage_options=storage_options,
                       **columns)


def _column(rows: Iterator[dict[str, Any]], name: str) -> Iterator[Any]:
    return (row[name] for row in rows)


def _score_files(layout: Layout, cell: catalog.Cell, storage_options: dict[str, Any] | None
                 ) -> Iterator[tuple[str, str, np.ndarray]]:
    """(metric, activation, values) of every score file of the cell (one listing of its
    folder)."""
    folder = posixpath.dirname(layout.explanations(cell.model, cell.explainer))
    fs, path = storage.filesystem(folder, storage_options)
    try:
        present = {posixpath.basename(p) for p in fs.ls(path, detail=False)}
    except FileNotFoundError:
        present = set()
    for metric in catalog.METRICS:
        for activation in ACTIVATIONS:
            url = layout.scores(cell.model, cell.explainer, metric, activation)
            if posixpath.basename(url) in present:
                values = formats.read_scores(url, storage_options)
                if values is not None:
                    yield metric, activation, values


def _write_parquet(cell: catalog.Cell, data_url: str, out: str, indices: np.ndarray,
                   storage_options: dict[str, Any] | None, encoding: str, **options: Any
                   ) -> None:
    """The config's Parquet shards, written straight from the Arrow tables of the records."""
    from dina_datasets.hf import export
    from dina_datasets.hf.source import Source

    source = Source.open(cell, data_url, storage_options=storage_options, **options)
    export.write_config(source, out, encoding=encoding, storage_options=storage_options,
                        rows=indices)
