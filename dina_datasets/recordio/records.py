"""Reading and writing DINA records (TFRecord of `tf.train.Example`) without TensorFlow.

Every record's length and data CRCs are checked; tensors come back as zero-copy, read-only
`np.frombuffer` views of the bytes read. Any fsspec URL works.

`MapDecoder` is the one decoder of maps: the readers here and the builder's Arrow tables
(`hf.arrow`). Writing: `recordio.writer`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from dina_datasets.errors import RecordError, RecordIndexError
from dina_datasets.recordio import buffers, framing, planner, proto, reader
from dina_datasets.recordio import index as sidecar
from dina_datasets.recordio.fastpath import Template
from dina_datasets.recordio.planner import RecordFile
from dina_datasets.recordio.reader import inspect
from dina_datasets.recordio.writer import (
    EXPLANATIONS,
    RecordWriter,
    write_explanations,
    write_records,
)

__all__ = ["RecordFile", "RecordWriter", "check_indices", "decode_record",
           "explanation_record_size", "inspect", "read_explanation", "read_explanations",
           "read_explanations_at", "read_record", "read_records", "read_records_at",
           "write_explanations", "write_records"]

TENSOR_FEATURES = frozenset({"explanations", "preprocess_input", "one_hot_prediction"})


def decode_record(data: bytes | memoryview, tensors: frozenset[str] = TENSOR_FEATURES
                  ) -> dict[str, Any]:
    """Decode one Example: tensor features to arrays, one-value lists to scalars."""
    out: dict[str, Any] = {}
    for name, (kind, values) in proto.decode_example(data).items():
        if kind == "bytes":
            if name in tensors:
                if len(values) != 1:
                    raise proto.ProtoError(f"feature {name!r} holds {len(values)} values, "
                                           "expected one serialized tensor", 0)
                out[name] = proto.decode_tensor(values[0])
            else:
                out[name] = bytes(values[0]) if len(values) == 1 else [bytes(v) for v in values]
        else:
            out[name] = values[0].item() if len(values) == 1 else values
    return out


def _decoded(url: str, index: int, data: memoryview, offset: int,
             tensors: frozenset[str]) -> dict[str, Any]:
    try:
        return decode_record(data, tensors)
    except proto.ProtoError as err:
        raise RecordError(f"undecodable Example: {err}", url=url, index=index,
                          offset=offset + framing.HEADER + err.offset) from None


def read_records(url: str, start: int | None = None, stop: int | None = None, *,
                 tensors: frozenset[str] = TENSOR_FEATURES, check_crc: bool = True,
                 storage_options: dict[str, Any] | None = None,
                 chunk_bytes: int | None = None, window: int | None = None
                 ) -> Iterator[dict[str, Any]]:
    """Decoded records [start, stop) of a TFRecord file of Examples, in order (`window`:
    ranged reads in flight, see `reader.iter_frames`)."""
    info = reader.inspect(url, storage_options, scan=start not in (None, 0) or stop is not None)
    start, stop = reader.check_range(info, start, stop)
    for index, data, offset in reader.iter_frames(info, start, stop, check_crc=check_crc,
                                                  storage_options=storage_options,
                                                  chunk_bytes=chunk_bytes, window=window):
        yield _decoded(url, index, data, offset, tensors)


@functools.lru_cache(maxsize=16)
def explanation_record_size(shape: tuple[int, ...], dtype: str = "float32") -> int:
    """Bytes of one explanations record (framing included) holding a map of `shape`."""
    example = proto.encode_example({EXPLANATIONS: np.zeros(shape, dtype)})
    return len(example) + framing.OVERHEAD


def read_explanations(url: str, start: int | None = None, stop: int | None = None, *,
                      check_crc: bool = True, storage_options: dict[str, Any] | None = None,
                      chunk_bytes: int | None = None, window: int | None = None
                      ) -> Iterator[np.ndarray]:
    """The explanation maps of records [start, stop), as read-only arrays (a stop past the
    end is clamped, as Python slices do).

    Remote files are read with `window` ranged requests in flight (default
    `planner.WINDOW`; local files: one chunk read ahead). Records laid out like the previous
    one (DINA's files: same shape, same features first) are sliced at the same place without
    parsing them again (`fastpath.Template`).
    """
    info = reader.inspect(url, storage_options, scan=start not in (None, 0) or stop is not None)
    start, stop = reader.check_range(info, start, stop)
    decode = MapDecoder(url)
    for index, data, offset in reader.iter_frames(info, start, stop, check_crc=check_crc,
                                                  storage_options=storage_options,
                                                  chunk_bytes=chunk_bytes, window=window):
        yield decode(index, data, offset)


class MapDecoder:
    """The one decoder of explanation maps: each map sliced out of its record through a
    `fastpath.Template` learned from the last record decoded in full, one record at a time
    (`__call__`: the readers) or a planned chunk at once (`chunk`: the builder's Arrow
    tables, with the join keys the records carry). Records laid out otherwise are decoded
    in full (and teach the next template). `shape`: the map shape a config expects
    (RecordError otherwise); None accepts any."""

    def __init__(self, url: str, shape: tuple[int, ...] | None = None) -> None:
        self.url = url
        self.shape = None if shape is None else tuple(shape)
        self.template: Template | None = None

    def __call__(self, index: int, data: memoryview, offset: int) -> np.ndarray:
        """The map of one record (a read-only view of `data` where the template applies)."""
        template = self.template
        if template is not None and template.matches(data):
            return template.view(data)
        return self._decode(index, data, offset)[0]

    def _decode(self, index: int, data: memoryview, offset: int
                ) -> tuple[np.ndarray, dict[str, Any]]:
        record = _decoded(self.url, index, data, offset, frozenset({EXPLANATIONS}))
        array = _explanation(record, self.url, index)
        if self.shape is not None and array.shape != self.shape:
            raise RecordError(f"explanation of shape {array.shape}, this config expects "
                              f"{self.shape}", url=self.url, index=index)
        self.template = Template.learn(data, array)
        return array, record

    def chunk(self, chunk: planner.Chunk, *, check_crc: bool = True
              ) -> tuple[np.ndarray, dict[str, list[Any]]]:
        """The maps of a chunk as one new float32 array (n, *shape), and the keys its
        records carry: {key column: one value per record, None where a record lacks it},
        only for the `index.KEY_COLUMNS` that at least one record carries. Chunks whose
        records hold nothing but the map, laid out alike, take one strided copy."""
        if self.shape is None:
            raise ValueError("MapDecoder.chunk needs the map shape: MapDecoder(url, shape)")
        n = len(chunk)
        maps = np.empty((n, *self.shape), np.float32)
        if n == 0:
            return maps, {}
        template, first = self.template, None
        data = chunk.frame(0, check_crc)
        if template is None or not template.map_only or not template.matches(data):
            first = self._decode(chunk.start, data, chunk.offset + int(chunk.frames[0]))
            template = self.template
        if template is not None and template.map_only and template.shape == self.shape:
            fast = template.maps(chunk, check_crc)
            if fast is not None:
                np.copyto(maps, fast, casting="same_kind")  # a copy: the buffer is reused
                return maps, {}
        keys: dict[str, list[Any]] = {}
        for i in range(n):
            if i == 0 and first is not None:
                array, record = first
            else:
                data = chunk.frame(i, check_crc)
                template = self.template
                if template is not None and template.map_only and template.matches(data):
                    maps[i] = template.view(data)
                    continue
                array, record = self._decode(chunk.start + i, data,
                                             chunk.offset + int(chunk.frames[i]))
            maps[i] = array
            for name in sidecar.KEY_COLUMNS:
                if name in record:
                    keys.setdefault(name, [None] * n)[i] = _scalar(record[name])
        return maps, keys


def _scalar(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def check_indices(indices: Any, num_records: int, url: str, *, negative: bool = False
                  ) -> np.ndarray:
    """`indices` (a sequence of integers) as an int64 array, each in [0, num_records) (with
    `negative`, -n..-1 count from the end, as Python sequences do); RecordIndexError naming
    the first bad one."""
    values = indices if isinstance(indices, np.ndarray) else \
        list(indices) if isinstance(indices, Iterable) and not isinstance(indices, (str, bytes)) \
        else None
    array = np.asarray(values) if values is not None else None
    if array is None or array.ndim != 1 or (len(array) and (
            not np.issubdtype(array.dtype, np.integer) or
            any(isinstance(v, (bool, np.bool_)) for v in values))):
        raise RecordIndexError(f"indices must be a sequence of integers, got {indices!r:.80}")
    array = array.astype(np.int64)
    if negative:
        array = np.where(array < 0, array + num_records, array)
    bad = np.flatnonzero((array < 0) | (array >= num_records))
    if len(bad):
        valid = f"-{num_records} <= index < {num_records}" if negative else \
            f"0 <= index < {num_records}"
        raise RecordIndexError(f"index {int(values[bad[0]])} is outside {url}, which holds "
                               f"{num_records} records (position {bad[0]} of the indices): "
                               f"use {valid}")
    return array


def read_explanations_at(url: str, indices: Iterable[int], *,
                         storage_options: dict[str, Any] | None = None,
                         check_crc: bool = True, window: int = planner.RANDOM_WINDOW
                         ) -> list[np.ndarray]:
    """The explanation maps of the records at `indices`, in the caller's order.

    Neighbouring records are coalesced into one ranged read (`planner.runs`), and the reads
    go `window` at a time; only the records asked for are fetched. An index outside
    [0, number of records) raises RecordIndexError before any record is read; a duplicate
    index is read once and its (read-only) array returned at each of its positions.
    """
    return _at(url, indices, storage_options, check_crc, window, lambda: MapDecoder(url))


def read_records_at(url: str, indices: Iterable[int], *,
                    tensors: frozenset[str] = TENSOR_FEATURES,
                    storage_options: dict[str, Any] | None = None, check_crc: bool = True,
                    window: int = planner.RANDOM_WINDOW) -> list[dict[str, Any]]:
    """The decoded records at `indices`, in the caller's order, read as
    `read_explanations_at` reads them (a duplicate index gives the same dict twice)."""
    return _at(url, indices, storage_options, check_crc, window,
               lambda: lambda index, data, offset: _decoded(url, index, data, offset, tensors))


def _at(url: str, indices: Iterable[int], storage_options: dict[str, Any] | None,
        check_crc: bool, window: int, decoder: Any) -> list[Any]:
    info = reader.inspect(url, storage_options)
    wanted = check_indices(indices, info.num_records, url)
    unique = np.unique(wanted)
    try:
        found = _decode_at(info, unique, storage_options, check_crc, window, decoder())
    except RecordError:
        if info.exact:
            raise
        info = reader.rescan(info, storage_options)  # a guessed fixed size was wrong
        found = _decode_at(info, unique, storage_options, check_crc, window, decoder())
    return [found[i] for i in wanted.tolist()]


def _decode_at(info: RecordFile, unique: np.ndarray, storage_options: dict[str, Any] | None,
               check_crc: bool, window: int, decode: Any) -> dict[int, Any]:
    found: dict[int, Any] = {}
    for chunk in buffers.fetch(info, planner.runs(info, unique), storage_options,
                               window=window):
        for i in range(len(chunk)):
            found[chunk.start + i] = decode(chunk.start + i, chunk.frame(i, check_crc),
                                            chunk.offset + int(chunk.frames[i]))
    return found


def _explanation(record: Mapping[str, Any], url: str, index: int) -> np.ndarray:
    if EXPLANATIONS not in record:
        raise RecordError(f"record has no {EXPLANATIONS!r} feature (features present: "
                          f"{sorted(record) or 'none'}); is this an explanations file?",
                          url=url, index=index)
    return record[EXPLANATIONS]


def read_record(url: str, index: int, *, storage_options: dict[str, Any] | None = None,
                tensors: frozenset[str] = TENSOR_FEATURES) -> dict[str, Any]:
    """One decoded record, fetched with one ranged read when records have a fixed size."""
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
        raise RecordIndexError(f"index must be an integer, got {index!r}")
    info = reader.inspect(url, storage_options)
    if not 0 <= index < info.num_records:
        raise RecordIndexError(f"index {index} is outside {url}, which holds "
                               f"{info.num_records} records: use 0 <= index < "
                               f"{info.num_records}")
    frames = reader.iter_frames(info, index, index + 1, storage_options=storage_options)
    try:
        _, data, offset = next(frames)
    finally:
        frames.close()
    return _decoded(url, index, data, offset, tensors)


def read_explanation(url: str, index: int, *,
                     storage_options: dict[str, Any] | None = None) -> np.ndarray:
    """One explanation map, fetched with one ranged read of exactly that record."""
    record = read_record(url, index, storage_options=storage_options,
                         tensors=frozenset({EXPLANATIONS}))
    return _explanation(record, url, index)
