"""Arrow arrays straight from record buffers: the maps of a chunk in one copy, no Python lists.

Files whose records are all explanation-only Examples with the same header (the published
bucket) take the fast path (`recordio.fastpath`): the maps sit at one fixed offset in every
record, so a strided numpy view of the whole chunk gives them all at once. Other files
(records carrying keys, or records of varying size) are decoded record by record. The
decoding is `recordio.records.MapDecoder`'s, the same as `read_explanations`'.
"""

from __future__ import annotations

import functools
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from dina_datasets.recordio.planner import Chunk
from dina_datasets.recordio.records import MapDecoder


def decode_chunk(chunk: Chunk, shape: tuple[int, ...], *, check_crc: bool = True,
                 decoder: MapDecoder | None = None
                 ) -> tuple[np.ndarray, dict[str, list[Any]]]:
    """The maps of a chunk as one float32 array (n, *shape), and the keys its records carry
    (`records.MapDecoder.chunk`: the one decoder of maps, shared with `read_explanations`).
    A `decoder` kept across chunks of a file keeps its learned template."""
    decoder = decoder if decoder is not None else MapDecoder(chunk.url, shape)
    return decoder.chunk(chunk, check_crc=check_crc)


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

