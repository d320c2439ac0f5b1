"""Reading and writing DINA records (TFRecord of `tf.train.Example`) without TensorFlow.

Every record's length and data CRCs are checked; tensors come back as zero-copy, read-only
`np.frombuffer` views of the bytes read. Any fsspec URL works.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import crc32c
import numpy as np

from dina_datasets.errors import RecordError, RecordIndexError
from dina_datasets.recordio import framing, proto, reader, storage
from dina_datasets.recordio import index as sidecar
from dina_datasets.recordio.fastpath import Template
from dina_datasets.recordio.planner import RecordFile
from dina_datasets.recordio.reader import inspect

__all__ = ["RecordFile", "RecordWriter", "decode_record", "explanation_record_size", "inspect",
           "read_explanation", "read_explanations", "read_record", "read_records",
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
                 chunk_bytes: int | None = None) -> Iterator[dict[str, Any]]:
    """Decoded records [start, stop) of a TFRecord file of Examples, in order."""
    info = reader.inspect(url, storage_options, scan=start not in (None, 0) or stop is not None)
    start, stop = reader.check_range(info, start, stop)
    for index, data, offset in reader.iter_frames(info, start, stop, check_crc=check_crc,
                                                  storage_options=storage_options,
                                                  chunk_bytes=chunk_bytes):
        yield _decoded(url, index, data, offset, tensors)


@functools.lru_cache(maxsize=16)
def explanation_record_size(shape: tuple[int, ...], dtype: str = "float32") -> int:
    """Bytes of one explanations record (framing included) holding a map of `shape`."""
    example = proto.encode_example({EXPLANATIONS: np.zeros(shape, dtype)})
    return len(example) + framing.OVERHEAD


def read_explanations(url: str, start: int | None = None, stop: int | None = None, *,
                      check_crc: bool = True, storage_options: dict[str, Any] | None = None,
                      chunk_bytes: int | None = None) -> Iterator[np.ndarray]:
    """The explanation maps of records [start, stop), as read-only arrays (a stop past the
    end is clamped, as Python slices do).

    Records laid out like the previous one (DINA's files: same shape, same features first)
    are sliced at the same place without parsing them again (`fastpath.Template`).
    """
    info = reader.inspect(url, storage_options, scan=start not in (None, 0) or stop is not None)
    start, stop = reader.check_range(info, start, stop)
    template = None
    for index, data, offset in reader.iter_frames(info, start, stop, check_crc=check_crc,
                                                  storage_options=storage_options,
                                                  chunk_bytes=chunk_bytes):
        if template is not None and template.matches(data):
            yield template.view(data)
            continue
        array = _explanation(_decoded(url, index, data, offset, frozenset({EXPLANATIONS})),
                             url, index)
        template = Template.learn(data, array)
        yield array


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
    `index=True` the sidecar index (`recordio.index`) is written beside the file once it is
    published."""

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
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            ctx.__exit__(None, None, None)
            if self._index:
                sidecar.write(self.url, self._layout(), self._options)

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
