"""Arrow arrays straight from record buffers: the maps of a chunk in one copy, no Python lists.

Files whose records are all explanation-only Examples with the same header (the published
bucket) take the fast path (`recordio.fastpath`): the maps sit at one fixed offset in every
record, so a strided numpy view of the whole chunk gives them all at once. Other files
(records carrying keys, or records of varying size) are decoded record by record.
"""

from __future__ import annotations

import functools
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from dina_datasets.errors import ProtoError, RecordError
from dina_datasets.recordio import framing
from dina_datasets.recordio.fastpath import Template
from dina_datasets.recordio.index import KEY_COLUMNS
from dina_datasets.recordio.planner import Chunk
from dina_datasets.recordio.records import EXPLANATIONS, decode_record


def decode_chunk(chunk: Chunk, shape: tuple[int, ...], *, check_crc: bool = True
                 ) -> tuple[np.ndarray, dict[str, list[Any]]]:
    """The maps of a chunk as one float32 array (n, *shape), and the keys its records carry.

    Keys: {feature: one value per record, None where a record lacks it}, only for the
    features of KEY_COLUMNS that at least one record carries. Chunks whose records hold
    nothing but the map take the fast path (`recordio.fastpath`): one strided copy.
    """
    if len(chunk) == 0:
        return np.zeros((0, *shape), np.float32), {}
    maps = np.empty((len(chunk), *shape), np.float32)
    keys: dict[str, list[Any]] = {}
    for i in range(len(chunk)):
        data = chunk.frame(i, check_crc)
        try:
            record = decode_record(data, frozenset({EXPLANATIONS}))
        except ProtoError as err:
            raise RecordError(f"undecodable Example: {err}", url=chunk.url,
                              index=chunk.start + i, offset=chunk.offset + int(chunk.frames[i])
                              + framing.HEADER + err.offset) from None
        maps[i] = _map(record, shape, chunk, i)
        if i == 0 and len(record) == 1:
            template = Template.learn(data, record[EXPLANATIONS])
            fast = template.maps(chunk, check_crc) if template is not None else None
            if fast is not None:
                np.copyto(maps, fast, casting="same_kind")  # a copy: the buffer is reused
                return maps, {}
        for name in KEY_COLUMNS:
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


def binary_maps(maps: np.ndarray) -> pa.BinaryArray:
    """One binary value per map (its float32 bytes, C order), zero-copy over `maps`."""
    n = len(maps)
    flat = np.ascontiguousarray(maps, dtype="<f4")
    width = flat[0].nbytes if n else 0
    offsets = np.arange(n + 1, dtype=np.int32) * width
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(flat)])

