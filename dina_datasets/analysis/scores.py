"""The scores table: every per-image score under a bucket-shaped folder in one long-format
Parquet file, one row per (model, explainer, metric, activation, image).

Columns (`COLUMNS`): `model, explainer, metric, activation` (string; `activation` is
"softmax" for the published `{Metric}_scores.json`, else the `{activation}` of
`{Metric}_scores.{activation}.json`), `index` (int64, the record's position), `image_id`
(string, "" when unknown), `label`, `prediction` (int64, -1 when unknown), `score` (float64,
null where the file holds null: an undefined value), `settings` (string: the id of the
settings the file was computed with, from the settings file `dina evaluate` writes beside it
(`dina_datasets.runs.settings`); "published" for a file without one). The Parquet schema's
metadata `dina.settings` maps each id to the settings it stands for (JSON).

Only the small score files are read, and the keys of each cell: those its records carry,
from the sidecar index beside its explanations (`recordio.index`), else from kecam's
`imagenet_data.json`; never the maps. Files are fetched concurrently (a bounded window of
threads: gs:// requests overlap) and written as they come, in row groups of about
`ROW_GROUP_ROWS` rows, so memory stays bounded whatever the number of files. The file is
written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from dina_datasets import formats, storage
from dina_datasets.analysis.score_files import (
    CONCURRENCY,
    ScoreFile,
    find_score_files,
    select,
    settings_ids,
)
from dina_datasets.errors import AlignmentError, LayoutError
from dina_datasets.layout import Layout
from dina_datasets.readahead import Window
from dina_datasets.runs.settings import PUBLISHED, TABLE_METADATA

COLUMNS = ("model", "explainer", "metric", "activation", "index", "image_id", "label",
           "prediction", "score", "settings")
SCHEMA = pa.schema([("model", pa.string()), ("explainer", pa.string()),
                    ("metric", pa.string()), ("activation", pa.string()),
                    ("index", pa.int64()), ("image_id", pa.string()), ("label", pa.int64()),
                    ("prediction", pa.int64()), ("score", pa.float64()),
                    ("settings", pa.string())])
ROW_GROUP_ROWS = 1_000_000
UNKNOWN = -1


@dataclass
class Keys:
    """The record keys of a cell, one entry per record: `index`, `image_id`, `label`,
    `prediction` (numpy columns) and where they came from."""

    columns: dict[str, np.ndarray]
    source: str

    def __len__(self) -> int:
        return len(self.columns["index"])


@dataclass
class Built:
    """What `build` wrote."""

    out: str
    rows: int
    files: list[ScoreFile] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        configs = len({f.config for f in self.files})
        return (f"{self.out}: {self.rows:,} scores from {len(self.files)} score files of "
                f"{configs} configs in {self.seconds:.1f} s")


def imagenet_keys(url: str, storage_options: dict[str, Any] | None = None) -> Keys:
    """Keys from kecam's `imagenet_data.json` (record order): image ids and true labels;
    predictions unknown."""
    refs = formats.read_imagenet_json(url, storage_options)
    n = len(refs)
    return Keys({"index": np.arange(n, dtype=np.int64),
                 "image_id": np.array([r.image_id for r in refs], dtype=object),
                 "label": np.array([r.label for r in refs], dtype=np.int64),
                 "prediction": np.full(n, UNKNOWN, np.int64)}, url)


def cell_keys(layout: Layout, model: str, explainer: str, fallback: Keys | None,
              storage_options: dict[str, Any] | None = None) -> Keys | None:
    """The keys of a cell: those its records carry, from the sidecar index beside its
    explanations (no map is read), column by column; the others from `fallback` (kecam's
    json); None when neither has any (positions only)."""
    from dina_datasets.recordio.index import index_url, read_index

    url = layout.explanations(model, explainer)
    try:
        found = read_index(url, storage_options)
    except FileNotFoundError:  # scores without their maps
        found = None
    if found is None or not found.keys:
        return fallback
    n = found.num_records
    defaults = {"index": np.arange(n, dtype=np.int64), "image_id": np.full(n, "", object),
                "label": np.full(n, UNKNOWN, np.int64),
                "prediction": np.full(n, UNKNOWN, np.int64)}
    columns = {}
    for name, default in defaults.items():
        if name in found.keys:
            columns[name] = found.keys[name]
        elif fallback is not None and len(fallback) >= n:
            columns[name] = fallback.columns[name][:n]
        else:
            columns[name] = default
    return Keys(columns, index_url(url))


def _repeat(text: str, n: int) -> pa.StringArray:
    """`text` n times, built from its buffers (pa.repeat is far slower)."""
    data = text.encode()
    offsets = np.arange(n + 1, dtype=np.int32) * len(data)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))


def table(file: ScoreFile, values: np.ndarray, keys: Keys | None,
          settings: str = PUBLISHED) -> pa.Table:
    """The rows of one score file (`settings`: the id of its settings)."""
    n = len(values)
    if keys is not None and n > len(keys):
        raise AlignmentError(f"{file.url} holds {n:,} scores but {keys.source} has only "
                             f"{len(keys):,} records: the keys do not belong to this cell")
    if keys is None:
        index = pa.array(np.arange(n, dtype=np.int64))
        image_id, label = _repeat("", n), pa.array(np.full(n, UNKNOWN, np.int64))
        prediction = label
    else:
        cols = keys.columns
        index = pa.array(cols["index"][:n], pa.int64())
        image_id = pa.array(cols["image_id"][:n], pa.string())
        label = pa.array(cols["label"][:n], pa.int64())
        prediction = pa.array(cols["prediction"][:n], pa.int64())
    name = [_repeat(v, n) for v in (file.model, file.explainer, file.metric, file.activation)]
    return pa.Table.from_arrays([*name, index, image_id, label, prediction,
                                 pa.array(values, pa.float64(), from_pandas=True),
                                 _repeat(settings, n)], schema=SCHEMA)


def read_files(files: list[ScoreFile], storage_options: dict[str, Any] | None = None,
               concurrency: int = CONCURRENCY) -> Iterator[tuple[ScoreFile, np.ndarray]]:
    """(file, values) of each file in order; at most `2 * concurrency` files in flight."""
    if not files:
        return

    def fetch(file: ScoreFile) -> bytes:
        fs, path = storage.filesystem(file.url, storage_options)
        try:
            return storage.read_file(fs, path, url=file.url)  # retried like any read
        except FileNotFoundError:
            raise LayoutError(f"score file {file.url} vanished while reading") from None

    window = Window(max(1, concurrency), name="dina-scores")
    blobs = window.map(fetch, files, ahead=2 * max(1, concurrency))
    try:
        for file, blob in zip(files, blobs, strict=True):
            yield file, formats.parse_scores(blob, file.url)
    finally:
        blobs.close()  # the reads not started are cancelled
        window.close()


def build(data_url: str, out: str, *, configs: Iterable[str] | None = None,
          metrics: Iterable[str] | None = None, activations: Iterable[str] | None = None,
          imagenet_json: str | None = None, storage_options: dict[str, Any] | None = None,
          layout: Layout | None = None, concurrency: int = CONCURRENCY,
          row_group_rows: int = ROW_GROUP_ROWS, progress: bool = False,
          files: list[ScoreFile] | None = None, strict: bool = False) -> Built:
    """Write the scores table of every score file under `data_url` to `out` (Parquet, any
    fsspec URL); returns what was written. `configs`, `metrics`, `activations`: names or
    patterns to keep. `imagenet_json` (kecam's json of the cells' images) fills `image_id`
    and `label`. `files`: the score files to read (found under `data_url` otherwise).
    `strict`: fail on unknown files named like score files instead of skipping them with a
    warning (`find_score_files`)."""
    import pyarrow.parquet as pq
    from tqdm import tqdm

    started = time.perf_counter()
    layout = layout or Layout(data_url)
    if files is None:
        files = find_score_files(data_url, storage_options, layout=layout, strict=strict)
    if not files:
        glob = layout.scores_template.format(model="*", explainer="*", metric="*")
        raise LayoutError(f"no score files under {data_url} (looked for {glob})")
    files = select(files, configs, metrics, activations)
    fallback = imagenet_keys(imagenet_json, storage_options) if imagenet_json else None
    cells = list(dict.fromkeys((f.model, f.explainer) for f in files))
    position = {cell: i for i, cell in enumerate(cells)}
    keys: dict[tuple[str, str], Future[Keys | None]] = {}
    rows = 0
    buffer: list[pa.Table] = []
    ids, described = settings_ids(files, storage_options, concurrency)
    schema = SCHEMA.with_metadata({TABLE_METADATA: json.dumps(described, sort_keys=True)})
    with storage.atomic_write(out, "wb", storage_options) as handle, \
            pq.ParquetWriter(handle, schema, compression="zstd",
                             use_dictionary=["model", "explainer", "metric", "activation",
                                             "image_id", "settings"]) as writer, \
            ThreadPoolExecutor(max_workers=2) as pool, \
            tqdm(total=len(files), unit="file", desc="scores", disable=not progress) as bar:
        def flush() -> None:
            if buffer:
                merged = pa.concat_tables(buffer)
                writer.write_table(merged, row_group_size=len(merged))
                buffer.clear()

        def keys_of(cell: tuple[str, str]) -> Keys | None:
            """This cell's keys; the next cell's are fetched meanwhile; older ones freed."""
            at = position[cell]
            for nxt in cells[at:at + 2]:
                if nxt not in keys:
                    keys[nxt] = pool.submit(cell_keys, layout, *nxt, fallback,
                                            storage_options)
            for old in [c for c in keys if position[c] < at]:
                del keys[old]
            return keys[cell].result()

        for file, values in read_files(files, storage_options, concurrency):
            buffer.append(table(file, values, keys_of((file.model, file.explainer)),
                                ids[file.url]))
            rows += len(values)
            if sum(len(t) for t in buffer) >= row_group_rows:
                flush()
            bar.update()
        flush()
    return Built(out, rows, files, time.perf_counter() - started)
