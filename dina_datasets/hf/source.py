"""Everything the rows of one config come from, resolved and checked once: the explanations
file, its score files, and the optional ImageNet json and preprocess file.

`Source.open` reads the small files (scores, json) and checks every length against the
explanations file (AlignmentError); `Source.tables(start, stop)` then yields the Arrow
tables of any record range, in the schema of `dina_datasets.hf.features`.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from dina_datasets import catalog, formats, storage
from dina_datasets.errors import (
    AlignmentError,
    DinaError,
    LayoutError,
    NetworkError,
    ProtoError,
    RecordError,
)
from dina_datasets.formats import UNKNOWN_LABEL
from dina_datasets.hf import arrow
from dina_datasets.hf.features import UNKNOWN_IMAGE_ID, features, metric_columns, score_columns
from dina_datasets.hf.readahead import ReadAhead
from dina_datasets.layout import Layout
from dina_datasets.readahead import Window
from dina_datasets.recordio import buffers, planner, proto, reader
from dina_datasets.recordio.planner import RecordFile
from dina_datasets.recordio.reader import inspect
from dina_datasets.recordio.records import MapDecoder

PREDICTION_TENSOR = "one_hot_prediction"
DECODE_THREADS = 2


@dataclass
class Source:
    """The inputs of one config's rows (picklable: it travels to DataLoader workers)."""

    cell: catalog.Cell
    info: RecordFile
    scores: dict[str, pa.Array | None]
    image_ids: pa.Array | None = None
    labels: np.ndarray | None = None
    preprocess: RecordFile | None = None
    storage_options: dict[str, Any] | None = None
    check_crc: bool = True
    chunk_bytes: int = planner.CHUNK_BYTES
    _schemas: dict[str, pa.Schema] = field(default_factory=dict, repr=False)
    _ahead: ReadAhead = field(default_factory=lambda: ReadAhead(DECODE_THREADS), repr=False,
                              compare=False)
    _window: Window = field(default_factory=lambda: Window(planner.WINDOW, name="dina-fetch"),
                            repr=False, compare=False)
    _decoder: MapDecoder | None = field(default=None, repr=False, compare=False)

    @classmethod
    def open(cls, cell: catalog.Cell, data_url: str, *, imagenet_json: str | None = None,
             preprocess_url: str | None = None, storage_options: dict[str, Any] | None = None,
             check_crc: bool = True, chunk_bytes: int = planner.CHUNK_BYTES) -> Source:
        """Resolve a config under a bucket-shaped `data_url`; lengths are checked here."""
        layout = Layout(data_url)
        url = layout.explanations(cell.model, cell.explainer)
        try:
            info = inspect(url, storage_options)
        except LayoutError as err:
            raise LayoutError(f"no explanations for {cell.name} under {data_url}: {err}. "
                              "data_url must be a bucket-shaped folder "
                              "({Model}/{Explainer}/explanations.tfrecord)") from None
        n = info.num_records
        if not n:
            raise RecordError(f"the explanations file of {cell.name} is empty (0 records): a "
                              "run that wrote nothing, or a copy that failed; regenerate or "
                              "copy it again", url=url)
        scores = {column: _scores(layout.scores(cell.model, cell.explainer, metric, activation),
                                  n, url, storage_options)
                  for column, metric, activation in score_columns()}
        source = cls(cell, info, scores, storage_options=storage_options, check_crc=check_crc,
                     chunk_bytes=chunk_bytes)
        if imagenet_json:
            source.image_ids, source.labels = _imagenet(imagenet_json, n, url, storage_options)
        if preprocess_url:
            pre = preprocess_url if preprocess_url.endswith(".tfrecord") else \
                Layout(preprocess_url).preprocess(cell.model)
            source.preprocess = inspect(pre, storage_options)
            if source.preprocess.num_records != n:
                raise AlignmentError(f"{pre} holds {source.preprocess.num_records} records but "
                                     f"{url} holds {n}: they must describe the same images in "
                                     "the same order")
        return source

    @property
    def decoder(self) -> MapDecoder:
        """The file's map decoder, kept across chunks (its learned template with it)."""
        if self._decoder is None:
            self._decoder = MapDecoder(self.info.url, self.cell.shape)
        return self._decoder

    @property
    def num_records(self) -> int:
        return self.info.num_records

    def schema(self, encoding: str = "array") -> pa.Schema:
        """The Arrow schema of the tables (`encoding="binary"`: maps as float32 bytes)."""
        if encoding not in self._schemas:
            self._schemas[encoding] = features(self.cell, encoding).arrow_schema
        return self._schemas[encoding]

    def tables(self, start: int = 0, stop: int | None = None, encoding: str = "array"
               ) -> Iterator[pa.Table]:
        """Arrow tables of records [start, stop), one per ranged read (~chunk_bytes).

        The next tables are read and decoded in background threads while the caller works
        on the current one (see `range_tables`).
        """
        stop = self.num_records if stop is None else stop
        return (table for _, _, table in self.range_tables([(start, stop)], encoding))

    def range_tables(self, ranges: list[tuple[int, int]], encoding: str = "array"
                     ) -> Iterator[tuple[int, int, pa.Table]]:
        """(range number, table number, table) over several record ranges, in order.

        Chunks are read and decoded ahead by DECODE_THREADS threads, across range boundaries
        and, when calls follow each other through the file, across calls (`ReadAhead`).
        """
        schema = self.schema(encoding)
        tasks = [(k, i, a, b) for k, (start, stop) in enumerate(ranges) if stop > start
                 for i, (a, b) in enumerate(planner.chunks(self.info, start, stop,
                                                         self.chunk_bytes))]
        if not tasks:
            return iter(())
        first, end = tasks[0][2], tasks[-1][3]
        following = None
        if end < self.num_records:  # a next shard about as long as this call's records
            guess_stop = min(self.num_records, 2 * end - first + 1)
            following = planner.chunks(self.info, end, guess_stop, self.chunk_bytes)[0]

        def run(key: tuple[int, int, str]) -> pa.Table:
            a, b, _ = key
            return self.chunk_table(a, b, schema, encoding)

        def part(guess: tuple[int, int, str], key: tuple[int, int, str]
                 ) -> Callable[[pa.Table], pa.Table] | None:
            """The guessed chunk holds the first chunk of a next shard that starts where it
            does and is no longer (shards differ by a record)."""
            (a, b, kind), (c, d, wanted) = guess, key
            if a != c or d > b or kind != wanted:
                return None
            return lambda table: table.slice(0, d - c)

        tables = self._ahead.map(run, [(a, b, encoding) for _, _, a, b in tasks],
                                 start=first, stop=end, part=part,
                                 following=following and (*following, encoding))
        return ((k, i, table) for (k, i, _, _), table in zip(tasks, tables, strict=True))

    def tables_at(self, indices: np.ndarray, encoding: str = "array") -> Iterator[pa.Table]:
        """Arrow tables of the records at `indices` (in range, no repeats), in that order:
        batches of about `planner.WINDOW x planner.RANGE_BYTES` bytes, neighbouring records
        coalesced into one ranged read, the next batch read while the caller works."""
        wanted = np.asarray(indices, np.int64)
        record = max(1, self.info.size // max(1, self.num_records))
        per = max(1, planner.WINDOW * planner.RANGE_BYTES // record)
        batches = [wanted[k:k + per] for k in range(0, len(wanted), per)]
        with Window(1) as ahead:
            yield from ahead.map(lambda batch: self._table_at(batch, encoding), batches)

    def _table_at(self, batch: np.ndarray, encoding: str) -> pa.Table:
        try:
            return self._take(batch, encoding)
        except RecordError:
            if self.info.exact:
                raise
            # a remote file without an index whose fixed record size was only a guess
            self.info = reader.rescan(self.info, self.storage_options)
            return self._take(batch, encoding)

    def _take(self, batch: np.ndarray, encoding: str) -> pa.Table:
        schema = self.schema(encoding)
        parts, positions = [], []
        for chunk in buffers.fetch(self.info, planner.runs(self.info, np.unique(batch)),
                                   self.storage_options, window=self._window):
            maps, keys = arrow.decode_chunk(chunk, self.cell.shape, check_crc=self.check_crc,
                                            decoder=self.decoder)
            parts.append(self.table(chunk.start, chunk.stop, maps, keys, schema, encoding))
            positions.append(np.arange(chunk.start, chunk.stop))
        if not parts:
            return schema.empty_table()
        where = np.concatenate(positions)
        order = np.argsort(where, kind="stable")
        return pa.concat_tables(parts).take(order[np.searchsorted(where, batch, sorter=order)])

    def chunk_table(self, a: int, b: int, schema: pa.Schema, encoding: str) -> pa.Table:
        """The table of records [a, b), read in one ranged read (remote files: in requests of
        whole records, the reader's window of them in flight: `buffers.read_chunk`)."""
        chunk = buffers.read_chunk(self.info, a, b, self.storage_options, window=self._window)
        maps, keys = arrow.decode_chunk(chunk, self.cell.shape, check_crc=self.check_crc,
                                        decoder=self.decoder)
        return self.table(a, b, maps, keys, schema, encoding)

    def table(self, start: int, stop: int, maps: np.ndarray, keys: dict[str, list[Any]],
              schema: pa.Schema, encoding: str) -> pa.Table:
        """The rows of records [start, stop) from their decoded maps and keys
        (`arrow.decode_chunk`), joined with the scores, json and preprocess file."""
        k = stop - start
        positions = np.arange(start, stop, dtype=np.int64)
        columns: dict[str, pa.Array] = {
            "index": pa.array(_ints(keys.get("index"), positions)),
            "model": pa.array([self.cell.model] * k, pa.string()),
            "explainer": pa.array([self.cell.explainer] * k, pa.string()),
            "explanation": arrow.array3d(maps) if encoding == "array" else
            arrow.binary_maps(maps),
        }
        if self.image_ids is not None:
            ids = self.image_ids.slice(start, k)
        else:
            ids = pa.array([UNKNOWN_IMAGE_ID] * k, pa.string())
        if "image_id" in keys:  # the record's own id wins; never null
            ids = pa.array([v if v is not None else ids[i].as_py()
                            for i, v in enumerate(keys["image_id"])], pa.string())
        columns["image_id"] = ids
        unknown = np.full(k, UNKNOWN_LABEL, np.int64)
        labels = self.labels[start:stop] if self.labels is not None else unknown
        columns["label"] = pa.array(_ints(keys.get("label"), labels))
        predictions = self._predictions(start, stop) if "prediction" not in keys and \
            self.preprocess is not None else unknown
        columns["prediction"] = pa.array(_ints(keys.get("prediction"), predictions))
        for name in metric_columns():
            columns[name] = _window(self.scores.get(name), start, stop)
        return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)

    def _predictions(self, start: int, stop: int) -> np.ndarray:
        """The model's predicted classes of records [start, stop) of the preprocess file:
        its `prediction` feature, else the argmax of `one_hot_prediction` (the 602 KB input
        beside it is neither decoded nor copied)."""
        assert self.preprocess is not None
        url = self.preprocess.url
        out = np.empty(stop - start, np.int64)
        frames = reader.iter_frames(self.preprocess, start, stop, check_crc=self.check_crc,
                                    storage_options=self.storage_options)
        for i, (index, data, offset) in enumerate(frames):
            try:
                features = proto.decode_example(data)
                if "prediction" in features:
                    out[i] = int(features["prediction"][1][0])
                elif PREDICTION_TENSOR in features:
                    out[i] = int(np.argmax(proto.decode_tensor(
                        features[PREDICTION_TENSOR][1][0])))
                else:
                    raise RecordError(f"preprocess record has neither {PREDICTION_TENSOR!r} "
                                      f"nor 'prediction' (features: {sorted(features)})",
                                      url=url, index=index)
            except ProtoError as err:
                raise RecordError(f"undecodable Example: {err}", url=url, index=index,
                                  offset=offset) from None
        return out


def input_fingerprint(cell: catalog.Cell, data_url: str, *, imagenet_json: str | None = None,
                      preprocess_url: str | None = None,
                      storage_options: dict[str, Any] | None = None) -> str | None:
    """A digest of the size and version stamp (mtime, generation or etag) of every file a
    config's rows come from: the cell's folder (explanations, index, score files), the
    ImageNet json and the preprocess file. None when the cell's folder cannot be listed (the
    error is then raised, with its explanation, when the rows are read); NetworkError when
    an input is remote and cannot be reached (or offline mode is on)."""
    layout = Layout(data_url)
    folder = posixpath.dirname(layout.explanations(cell.model, cell.explainer).replace(
        "\\", "/"))
    stamps = []
    try:
        fs, path = storage.filesystem(folder, storage_options)
        entries = fs.ls(path, detail=True)
    except NetworkError:
        raise
    except (FileNotFoundError, NotADirectoryError, DinaError):
        return None
    for entry in sorted(entries, key=lambda e: e["name"]):
        stamps.append((posixpath.basename(entry["name"]), entry.get("size"),
                       storage.signature(entry)))
    if preprocess_url and not preprocess_url.endswith(".tfrecord"):
        preprocess_url = Layout(preprocess_url).preprocess(cell.model)
    for url in (imagenet_json, preprocess_url):
        if url:
            try:
                fs, path = storage.filesystem(url, storage_options)
                found = fs.info(path)
                stamps.append((url, found.get("size"), storage.signature(found)))
            except NetworkError:
                raise
            except (FileNotFoundError, DinaError):
                stamps.append((url, None, None))
    return hashlib.sha256(repr(stamps).encode()).hexdigest()[:16]


def _ints(values: list[Any] | None, default: np.ndarray) -> np.ndarray:
    """Per-record ints where records carry them, `default` elsewhere."""
    if values is None:
        return default
    out = default.copy()
    for i, value in enumerate(values):
        if value is not None:
            out[i] = int(value)
    return out


def _window(values: pa.Array | None, start: int, stop: int) -> pa.Array:
    """values[start:stop], null-padded where the array is shorter (or missing)."""
    k = stop - start
    if values is None or start >= len(values):
        return pa.nulls(k, pa.float64())
    part = values.slice(start, k)
    if len(part) == k:
        return part
    return pa.concat_arrays([part, pa.nulls(k - len(part), pa.float64())])


def _scores(url: str, n: int, explanations: str, storage_options: dict[str, Any] | None
            ) -> pa.Array | None:
    """A score file as float64 (null where undefined); None when the file is missing."""
    values = formats.read_scores(url, storage_options)
    if values is None:
        return None
    if len(values) > n:
        raise AlignmentError(f"{url} holds {len(values)} scores but {explanations} holds only "
                             f"{n} explanations: the score file does not belong to this file")
    return pa.array(values, pa.float64(), from_pandas=True)


def _imagenet(url: str, n: int, explanations: str, storage_options: dict[str, Any] | None
              ) -> tuple[pa.Array, np.ndarray]:
    """Image ids and true labels, in record order, from kecam's imagenet_data.json."""
    refs = formats.read_imagenet_json(url, storage_options)
    if len(refs) != n:
        raise AlignmentError(f"{url} lists {len(refs)} images but {explanations} holds "
                             f"{n} records: use the imagenet_data.json that produced this data")
    return (pa.array([r.image_id for r in refs], pa.string()),
            np.array([r.label for r in refs], np.int64))
