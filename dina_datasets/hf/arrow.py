"""Arrow arrays straight from record buffers: the maps of a chunk in one copy, no Python lists.

Files whose records are all explanation-only Examples with the same header (the published
bucket) take the fast path: the maps sit at one fixed offset in every record, so a strided
numpy view of the whole chunk gives them all at once. Other files (records carrying keys, or
records of varying size) are decoded record by record, then stacked once.
"""

from __future__ import annotations

import functools
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from dina_datasets.errors import RecordError
from dina_datasets.recordio import framing as tfrecord
from dina_datasets.recordio import proto
from dina_datasets.recordio.planner import Chunk, check_frame
from dina_datasets.recordio.records import EXPLANATIONS, decode_record

KEY_FEATURES = ("index", "image_id", "label", "prediction")


def decode_chunk(chunk: Chunk, shape: tuple[int, ...], *, check_crc: bool = True
                 ) -> tuple[np.ndarray, dict[str, list[Any]]]:
    """The maps of a chunk as one float32 array (n, *shape), and the keys its records carry.

    Keys: {feature: one value per record, None where a record lacks it}, only for the
    features of KEY_FEATURES that at least one record carries.
    """
    if len(chunk) == 0:
        return np.zeros((0, *shape), np.float32), {}
    fast = _fast_maps(chunk, shape, check_crc)
    if fast is not None:
        return fast, {}
    maps = np.empty((len(chunk), *shape), np.float32)
    keys: dict[str, list[Any]] = {}
    for i in range(len(chunk)):
        data = check_frame(chunk, i, check_crc)
        try:
            record = decode_record(data, frozenset({EXPLANATIONS}))
        except proto.ProtoError as err:
            raise RecordError(f"undecodable Example: {err}", url=chunk.url,
                              index=chunk.start + i, offset=chunk.offset + int(chunk.frames[i])
                              + tfrecord.HEADER + err.offset) from None
        maps[i] = _map(record, shape, chunk, i)
        for name in KEY_FEATURES:
            if name in record:
                keys.setdefault(name, [None] * len(chunk))[i] = _scalar(record[name])
    return maps, keys


def _map(record: dict[str, Any], shape: tuple[int, ...], chunk: Chunk, i: int) -> np.ndarray:
    array = record.get(EXPLANATIONS)
    if not isinstance(array, np.ndarray):
        raise RecordError(f"record has no {EXPLANATIONS!r} tensor (features present: "
                          f"{sorted(record) or 'none'}); is this an explanations file?",
                          url=chunk.url, index=chunk.start + i)
    if array.shape != tuple(shape):
        raise RecordError(f"explanation of shape {array.shape}, this config expects {shape}",
                          url=chunk.url, index=chunk.start + i)
    return array


def _scalar(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _fast_maps(chunk: Chunk, shape: tuple[int, ...], check_crc: bool) -> np.ndarray | None:
    """All maps at once when every record is the same explanation-only Example, else None."""
    size = int(chunk.ends[0] - chunk.frames[0])
    if not np.all(chunk.ends - chunk.frames == size):
        return None
    data = check_frame(chunk, 0, check_crc)
    try:
        record = decode_record(data, frozenset({EXPLANATIONS}))
    except proto.ProtoError:
        return None
    array = _map(record, shape, chunk, 0)
    base = np.frombuffer(chunk.buf, np.uint8)
    begin = array.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    begin -= int(chunk.frames[0])
    end = begin + array.nbytes
    if len(record) != 1 or end != size - tfrecord.FOOTER:
        return None
    first = int(chunk.frames[0])
    if not np.all(np.diff(chunk.frames) == size):
        return None
    rows = base[first:first + size * len(chunk)].reshape(len(chunk), size)
    if not np.array_equal(rows[:, :begin], np.broadcast_to(rows[0, :begin], (len(chunk), begin))):
        return None
    if check_crc:
        for i in range(1, len(chunk)):
            check_frame(chunk, i, True)
    maps = rows[:, begin:end].copy().view(array.dtype)  # a copy: the buffer is reused
    return maps.reshape(len(chunk), *shape).astype(np.float32, copy=False)


@functools.lru_cache(maxsize=8)
def _offsets(step: int, count: int) -> pa.Array:
    """List offsets 0, step, ..., count * step; full chunks share one cached array."""
    return pa.array(np.arange(0, (count + 1) * step, step, dtype=np.int32))


def array3d(maps: np.ndarray) -> pa.ExtensionArray:
    """A `datasets.Array3D` float32 Arrow array over maps of shape (n, H, W, C), zero-copy."""
    n, h, w, c = maps.shape
    flat = np.ascontiguousarray(maps, dtype=np.float32).reshape(-1)
    values = pa.array(flat, type=pa.float32())
    storage = values
    for step, count in ((c, n * h * w), (w, n * h), (h, n)):
        storage = pa.ListArray.from_arrays(_offsets(step, count), storage)
    ext = datasets.features.features.Array3DExtensionType(shape=(h, w, c), dtype="float32")
    return pa.ExtensionArray.from_storage(ext, storage)


def maps_from_array3d(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The (n, H, W, C) float32 maps of an Array3D column, without Python lists."""
    if isinstance(column, pa.ChunkedArray):
        parts = [maps_from_array3d(c) for c in column.chunks]
        shape = tuple(column.type.shape) if hasattr(column.type, "shape") else None
        if not parts:
            return np.zeros((0, *(shape or (0, 0, 0))), np.float32)
        return np.concatenate(parts)
    storage = column.storage if isinstance(column, pa.ExtensionArray) else column
    n = len(storage)
    values = storage
    dims = []
    for _ in range(3):
        dims.append(values.value_lengths()[0].as_py() if len(values) else 0)
        values = values.flatten()
    return values.to_numpy(zero_copy_only=False).reshape(n, *dims)


def binary_maps(maps: np.ndarray) -> pa.BinaryArray:
    """One binary value per map (its float32 bytes, C order), zero-copy over `maps`."""
    n = len(maps)
    flat = np.ascontiguousarray(maps, dtype="<f4")
    width = flat[0].nbytes if n else 0
    offsets = np.arange(n + 1, dtype=np.int32) * width
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(flat)])

