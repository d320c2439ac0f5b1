"""Reading and writing DINA records (TFRecord of `tf.train.Example`) without TensorFlow.

Every record's length and data CRCs are checked; tensors come back as zero-copy, read-only
`np.frombuffer` views of the bytes read. Any fsspec URL works.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import crc32c
import numpy as np

from dina_datasets import storage
from dina_datasets.errors import RecordError, RecordIndexError
from dina_datasets.recordio import framing, planner, proto, reader
from dina_datasets.recordio import index as sidecar
from dina_datasets.recordio.fastpath import Template
from dina_datasets.recordio.planner import RecordFile
from dina_datasets.recordio.reader import inspect

__all__ = ["RecordFile", "RecordWriter", "check_indices", "decode_record",
           "explanation_record_size", "inspect", "read_explanation", "read_explanations",
           "read_explanations_at", "read_record", "read_records", "read_records_at",
           "write_explanations", "write_records"]

EXPLANATIONS = "explanations"
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
    decode = _MapDecoder(url)
    for index, data, offset in reader.iter_frames(info, start, stop, check_crc=check_crc,
                                                  storage_options=storage_options,
                                                  chunk_bytes=chunk_bytes, window=window):
        yield decode(index, data, offset)


class _MapDecoder:
    """The map of each record, through the template learned from the previous one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.template: Template | None = None

    def __call__(self, index: int, data: memoryview, offset: int) -> np.ndarray:
        if self.template is not None and self.template.matches(data):
            return self.template.view(data)
        array = _explanation(_decoded(self.url, index, data, offset,
                                      frozenset({EXPLANATIONS})), self.url, index)
        self.template = Template.learn(data, array)
        return array


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
    return _at(url, indices, storage_options, check_crc, window, lambda: _MapDecoder(url))


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
    for chunk in planner.fetch(info, planner.runs(info, unique), storage_options,
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


class RecordWriter:
    """Writes Examples to a TFRecord file atomically: nothing appears under `url` until
    `close()` (or the end of a `with` block) succeeds; an exception leaves no file. With
    `index=True` the sidecar index (`recordio.index`) is written beside it (see `close`)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None, *,
                 index: bool = False) -> None:
        self.url = url
        self.count = 0
        self._options = storage_options
        self._index = index
        self._offsets: list[int] = []
        self._keys: dict[str, list[Any]] = {}
        self._position = 0
        self._crc = 0
        self._ctx = storage.atomic_write(url, "wb", storage_options)
        self._handle = self._ctx.__enter__()

    def write(self, features: Mapping[str, Any]) -> None:
        """Append one record; numpy arrays become serialized tensors."""
        data = framing.frame(proto.encode_example(features))
        self._handle.write(data)
        if self._index:
            self._offsets.append(self._position)
            self._position += len(data)
            self._crc = crc32c.crc32c(data, self._crc)
            for name in sidecar.KEY_COLUMNS:
                if name in features:
                    self._keys.setdefault(name, [None] * self.count).append(
                        _key_value(features[name]))
            for column in self._keys.values():
                if len(column) == self.count:
                    column.append(None)
        self.count += 1

    def close(self) -> None:
        """Publish the file: with `index=True` its index first (without the file's version
        stamp, which a reader then replaces by a sample check), the file, then the index
        again with the stamp. A crash anywhere leaves no published file without its index;
        an index beside a file it does not describe is ignored by readers."""
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            layout = self._layout() if self._index else None
            if layout is not None:
                try:
                    sidecar.write(self.url, layout, self._options, stamp=False)
                except BaseException as err:
                    with contextlib.suppress(BaseException):
                        ctx.__exit__(type(err), err, err.__traceback__)
                    raise
            ctx.__exit__(None, None, None)
            if layout is not None:
                try:
                    sidecar.write(self.url, layout, self._options)
                except Exception as err:  # the unstamped index still describes the file
                    warnings.warn(f"the index of {self.url} carries no version stamp (it "
                                  f"could not be rewritten: {err!r}); readers check it "
                                  "against a sample of records instead", stacklevel=2)

    def _layout(self) -> sidecar.Index:
        offsets = np.asarray(self._offsets, np.int64)
        sizes = np.diff(np.append(offsets, self._position))
        fixed = len(sizes) > 0 and bool(np.all(sizes == sizes[0]))
        complete = {k: v for k, v in self._keys.items() if None not in v}
        return sidecar.Index(self.count, self._position, int(sizes[0]) if fixed else None,
                             None if fixed else offsets, f"{self._crc:08x}", None,
                             complete or None)

    def abort(self, exc: BaseException | None = None) -> None:
        """Drop everything written; nothing appears under `url`."""
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            err = exc or RuntimeError("aborted")
            try:
                ctx.__exit__(type(err), err, err.__traceback__)
            except BaseException as raised:
                if raised is not err:
                    raise

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)


def _key_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    return value.item() if isinstance(value, np.generic) else value


def write_records(url: str, records: Iterable[Mapping[str, Any]], *,
                  storage_options: dict[str, Any] | None = None, index: bool = False) -> int:
    """Write Examples atomically (and their sidecar index with `index=True`); returns the
    number of records."""
    with RecordWriter(url, storage_options, index=index) as writer:
        for record in records:
            writer.write(record)
    return writer.count


def write_explanations(url: str, arrays: Iterable[np.ndarray], *,
                       storage_options: dict[str, Any] | None = None,
                       **extra_features: Iterable[Any]) -> int:
    """Write DINA explanation records (readable by the original TensorFlow loader).

    The sidecar index (`recordio.index`) is written beside the file. Each keyword is an
    extra per-record feature, one value per array (e.g. `index=`,
    `image_id=`, `label=`, `prediction=`); ints, floats, str/bytes or numpy arrays.
    """
    extras = {name: iter(values) for name, values in extra_features.items()}

    def records() -> Iterator[dict[str, Any]]:
        for i, array in enumerate(arrays):
            features: dict[str, Any] = {EXPLANATIONS: np.asarray(array)}
            for name, values in extras.items():
                try:
                    features[name] = next(values)
                except StopIteration:
                    raise ValueError(f"extra feature {name!r} has {i} values but there are "
                                     "more arrays: give one value per array") from None
            yield features
        for name, values in extras.items():
            if next(values, _END) is not _END:
                raise ValueError(f"extra feature {name!r} has more values than there are "
                                 "arrays: give one value per array")

    return write_records(url, records(), storage_options=storage_options, index=True)


_END = object()
