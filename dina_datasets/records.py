"""Reading and writing DINA records (TFRecord of `tf.train.Example`) without TensorFlow.

Every record's length and data CRCs are checked; tensors come back as zero-copy, read-only
`np.frombuffer` views of the bytes read. Any fsspec URL works.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import proto, storage, tfrecord
from dina_datasets.errors import RecordError, RecordIndexError

EXPLANATIONS = "explanations"
TENSOR_FEATURES = frozenset({"explanations", "preprocess_input", "one_hot_prediction"})
CHUNK_BYTES = 64 << 20

_INDEX_CACHE: dict[tuple[str, int, str], np.ndarray] = {}


@dataclass(frozen=True)
class RecordFile:
    """Where the records of one TFRecord file lie."""

    url: str
    size: int
    num_records: int
    record_size: int | None
    offsets: np.ndarray | None = None

    def span(self, start: int, stop: int) -> tuple[int, int]:
        """Byte range [begin, end) of records [start, stop)."""
        if self.record_size is not None:
            return start * self.record_size, stop * self.record_size
        assert self.offsets is not None
        return int(self.offsets[start]), int(self.offsets[stop]) if stop < self.num_records \
            else self.size


def inspect(url: str, storage_options: dict[str, Any] | None = None) -> RecordFile:
    """Size, record count and record size of a TFRecord file.

    A file whose first and last records have the same length, and whose size is a multiple
    of it, has fixed-size records; any other file is scanned once (headers only, CRC
    checked) and its record offsets cached.
    """
    fs, path = storage.filesystem(url, storage_options)
    size = storage.size(fs, path, url)
    if size == 0:
        return RecordFile(url, 0, 0, 0)
    head = storage.read_range(fs, path, 0, min(size, tfrecord.HEADER), url=url)
    length = _header(head, 0, url, 0, size)
    record_size = length + tfrecord.OVERHEAD
    if size % record_size == 0:
        last = size - record_size
        tail = head if last == 0 else storage.read_range(fs, path, last, last + tfrecord.HEADER,
                                                         url=url)
        try:
            same = tfrecord.parse_header(tail, 0) == length
        except tfrecord.FrameError:
            same = False
        if same:
            return RecordFile(url, size, size // record_size, record_size)
    key = (url, size, str(fs.ukey(path)) if hasattr(fs, "ukey") else "")
    if key not in _INDEX_CACHE:
        _INDEX_CACHE[key] = _scan(fs, path, url, size)
    offsets = _INDEX_CACHE[key]
    return RecordFile(url, size, len(offsets), None, offsets)


def _header(buf: bytes | memoryview, pos: int, url: str, index: int, at: int) -> int:
    if len(buf) - pos < tfrecord.HEADER:
        raise RecordError(f"truncated record header ({len(buf) - pos} of {tfrecord.HEADER} "
                          "bytes)", url=url, index=index, offset=at)
    try:
        return tfrecord.parse_header(buf, pos)
    except tfrecord.FrameError as err:
        what = "not a TFRecord file: " if index == 0 else ""
        raise RecordError(f"{what}{err}", url=url, index=index, offset=at) from None


def _scan(fs: Any, path: str, url: str, size: int) -> np.ndarray:
    offsets, pos, index = [], 0, 0
    while pos < size:
        head = storage.read_range(fs, path, pos, min(size, pos + tfrecord.HEADER), url=url)
        length = _header(head, 0, url, index, pos)
        end = pos + length + tfrecord.OVERHEAD
        if end > size:
            raise RecordError(f"truncated record: {length} data bytes announced, file ends "
                              f"{size - pos - tfrecord.HEADER} bytes later",
                              url=url, index=index, offset=pos)
        offsets.append(pos)
        pos, index = end, index + 1
    return np.asarray(offsets, dtype=np.int64)


def _check_range(info: RecordFile, start: int | None, stop: int | None) -> tuple[int, int]:
    n = info.num_records
    start = 0 if start is None else start
    stop = n if stop is None else stop
    for name, value in (("start", start), ("stop", stop)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise RecordIndexError(f"{name} must be an integer, got {value!r}")
        if value < 0 or value > n:
            raise RecordIndexError(f"{name}={value} is outside {info.url}, which holds {n} "
                                   f"records: use 0 <= start <= stop <= {n}")
    if start > stop:
        raise RecordIndexError(f"start={start} is after stop={stop}")
    return int(start), int(stop)


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


def read_records(url: str, start: int | None = None, stop: int | None = None, *,
                 tensors: frozenset[str] = TENSOR_FEATURES, check_crc: bool = True,
                 storage_options: dict[str, Any] | None = None,
                 chunk_bytes: int = CHUNK_BYTES) -> Iterator[dict[str, Any]]:
    """Decoded records [start, stop) of a TFRecord file of Examples, in order."""
    info = inspect(url, storage_options)
    start, stop = _check_range(info, start, stop)
    for index, data, offset in _iter_data(info, start, stop, check_crc, storage_options,
                                          chunk_bytes):
        try:
            yield decode_record(data, tensors)
        except proto.ProtoError as err:
            raise RecordError(f"undecodable Example: {err}", url=url, index=index,
                              offset=offset + tfrecord.HEADER + err.offset) from None


def _iter_data(info: RecordFile, start: int, stop: int, check_crc: bool,
               storage_options: dict[str, Any] | None, chunk_bytes: int
               ) -> Iterator[tuple[int, memoryview, int]]:
    """(index, data, frame offset) of records [start, stop), read in large ranged chunks."""
    if start >= stop:
        return
    fs, path = storage.filesystem(info.url, storage_options)
    pos, end = info.span(start, stop)
    index = start
    if info.record_size:
        chunk_bytes = max(1, chunk_bytes // info.record_size) * info.record_size
    while index < stop:
        want = min(end, pos + chunk_bytes)
        buf = memoryview(storage.read_range(fs, path, pos, want, url=info.url))
        complete = len(buf) == end - pos
        short = len(buf) < want - pos
        local = 0
        while index < stop:
            at = pos + local
            if len(buf) - local < tfrecord.HEADER and not (complete or short):
                break
            length = _header(buf, local, info.url, index, at)
            frame_end = local + length + tfrecord.OVERHEAD
            if frame_end > len(buf):
                if complete or short:
                    raise RecordError(f"truncated record: {length} data bytes announced, "
                                      f"{max(0, len(buf) - local - tfrecord.HEADER)} present",
                                      url=info.url, index=index, offset=at)
                break
            if check_crc:
                try:
                    tfrecord.check_data(buf, local + tfrecord.HEADER, length)
                except tfrecord.FrameError as err:
                    raise RecordError(str(err), url=info.url, index=index,
                                      offset=pos + err.offset) from None
            yield index, buf[local + tfrecord.HEADER:local + tfrecord.HEADER + length], at
            local, index = frame_end, index + 1
        if local == 0:
            chunk_bytes = max(2 * chunk_bytes, tfrecord.OVERHEAD + (
                length if len(buf) >= tfrecord.HEADER else 0))
        pos += local


@functools.lru_cache(maxsize=16)
def explanation_record_size(shape: tuple[int, ...], dtype: str = "float32") -> int:
    """Bytes of one explanations record (framing included) holding a map of `shape`."""
    example = proto.encode_example({EXPLANATIONS: np.zeros(shape, dtype)})
    return len(example) + tfrecord.OVERHEAD


def read_explanations(url: str, start: int | None = None, stop: int | None = None, *,
                      check_crc: bool = True, storage_options: dict[str, Any] | None = None
                      ) -> Iterator[np.ndarray]:
    """The explanation maps of records [start, stop), as read-only float arrays."""
    for index, record in enumerate(read_records(url, start, stop, tensors=frozenset(
            {EXPLANATIONS}), check_crc=check_crc, storage_options=storage_options),
            start or 0):
        yield _explanation(record, url, index)


def _explanation(record: Mapping[str, Any], url: str, index: int) -> np.ndarray:
    if EXPLANATIONS not in record:
        raise RecordError(f"record has no {EXPLANATIONS!r} feature (features present: "
                          f"{sorted(record) or 'none'}); is this an explanations file?",
                          url=url, index=index)
    return record[EXPLANATIONS]


def read_record(url: str, index: int, *, storage_options: dict[str, Any] | None = None,
                tensors: frozenset[str] = TENSOR_FEATURES) -> dict[str, Any]:
    """One decoded record, fetched with one ranged read when records have a fixed size."""
    info = inspect(url, storage_options)
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
        raise RecordIndexError(f"index must be an integer, got {index!r}")
    if not 0 <= index < info.num_records:
        raise RecordIndexError(f"index {index} is outside {url}, which holds "
                               f"{info.num_records} records: use 0 <= index < "
                               f"{info.num_records}")
    return next(read_records(url, index, index + 1, tensors=tensors,
                             storage_options=storage_options))


def read_explanation(url: str, index: int, *,
                     storage_options: dict[str, Any] | None = None) -> np.ndarray:
    """One explanation map, fetched with one ranged read of exactly that record."""
    record = read_record(url, index, storage_options=storage_options,
                         tensors=frozenset({EXPLANATIONS}))
    return _explanation(record, url, index)


class RecordWriter:
    """Writes Examples to a TFRecord file atomically: nothing appears under `url` until
    `close()` (or the end of a `with` block) succeeds; an exception leaves no file."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.count = 0
        self._ctx = storage.atomic_write(url, "wb", storage_options)
        self._handle = self._ctx.__enter__()

    def write(self, features: Mapping[str, Any]) -> None:
        """Append one record; numpy arrays become serialized tensors."""
        self._handle.write(tfrecord.frame(proto.encode_example(features)))
        self.count += 1

    def close(self) -> None:
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            ctx.__exit__(None, None, None)

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


def write_records(url: str, records: Iterable[Mapping[str, Any]], *,
                  storage_options: dict[str, Any] | None = None) -> int:
    """Write Examples atomically; returns the number of records."""
    with RecordWriter(url, storage_options) as writer:
        for record in records:
            writer.write(record)
    return writer.count


def write_explanations(url: str, arrays: Iterable[np.ndarray], *,
                       storage_options: dict[str, Any] | None = None,
                       **extra_features: Iterable[Any]) -> int:
    """Write DINA explanation records (readable by the original TensorFlow loader).

    Each keyword is an extra per-record feature, one value per array (e.g. `index=`,
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

    return write_records(url, records(), storage_options=storage_options)


_END = object()
