"""Virtual shards: record ranges of one TFRecord file, read in large ranged chunks.

One 30 GB file becomes many `(start, stop)` record ranges whose byte spans follow from the
fixed record size (or from the scanned offsets of a file with records of varying size), so
DataLoader workers and distributed nodes split one file with no overlap and no loss.
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets.errors import RecordError
from dina_datasets.recordio import framing as tfrecord
from dina_datasets.recordio import storage
from dina_datasets.recordio.records import RecordFile

SHARD_BYTES = 128 << 20
SHARD_MULTIPLE = 16
CHUNK_BYTES = 16 << 20
CHUNK_MULTIPLE = 32

Range = tuple[int, int]


def plan(info: RecordFile, num_shards: int | None = None,
         shard_bytes: int = SHARD_BYTES) -> list[Range]:
    """Split the records of a file into contiguous, near-equal ranges.

    By default about `shard_bytes` per range, rounded up to a multiple of 16 ranges (so 2, 4,
    8 or 16 workers or nodes split them evenly), and at most one range per record.
    """
    n = info.num_records
    if n == 0:
        return [(0, 0)]
    if num_shards is None:
        wanted = max(1, math.ceil(info.size / shard_bytes))
        num_shards = SHARD_MULTIPLE * math.ceil(wanted / SHARD_MULTIPLE)
    if not isinstance(num_shards, int) or isinstance(num_shards, bool) or num_shards < 1:
        raise ValueError(f"num_shards must be a positive integer, got {num_shards!r}")
    num_shards = min(num_shards, n)
    if info.record_size:
        bounds = np.linspace(0, n, num_shards + 1).round().astype(np.int64)
    else:
        assert info.offsets is not None
        targets = np.linspace(0, info.size, num_shards + 1)[1:-1]
        inner = np.searchsorted(info.offsets, targets)
        bounds = np.unique(np.concatenate([[0], inner, [n]]))
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


def split(info: RecordFile, start: int, stop: int, chunk_bytes: int = CHUNK_BYTES
          ) -> list[Range]:
    """Consecutive sub-ranges of [start, stop) spanning about `chunk_bytes` each.

    With fixed-size records a sub-range holds a multiple of CHUNK_MULTIPLE records when it
    holds more than half as many, so that batches of 8, 16 or 32 rows rarely straddle two
    tables (which costs a copy when they are formatted).
    """
    if stop <= start:
        return [(start, stop)]
    if info.record_size:
        per = max(1, chunk_bytes // info.record_size)
        if per * 2 > CHUNK_MULTIPLE:
            per = CHUNK_MULTIPLE * max(1, round(per / CHUNK_MULTIPLE))
        return [(a, min(a + per, stop)) for a in range(start, stop, per)]
    assert info.offsets is not None
    out, a = [], start
    while a < stop:
        limit = info.offsets[a] + chunk_bytes
        b = int(np.searchsorted(info.offsets, limit, side="right"))
        b = min(stop, max(b, a + 1))
        out.append((a, b))
        a = b
    return out


@dataclass(frozen=True)
class Chunk:
    """The frames of records [start, start + len(frames)) held in one buffer.

    `frames[i]` is the byte position of record `start + i` in `buf`; `ends[i]` its end.
    The buffer may be reused for the next chunk: copy what must outlive it.
    """

    start: int
    buf: bytes | memoryview
    frames: np.ndarray
    ends: np.ndarray
    url: str
    offset: int

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def stop(self) -> int:
        return self.start + len(self.frames)


_LOCAL = threading.local()


def read_chunk(info: RecordFile, a: int, b: int,
               storage_options: dict[str, Any] | None = None) -> Chunk:
    """Records [a, b) in one ranged read. Local files are read into a buffer that the same
    thread reuses for its next chunk (no fresh pages to fault in)."""
    begin, end = info.span(a, b)
    fs, path = storage.filesystem(info.url, storage_options)
    if _is_local(fs):
        scratch = getattr(_LOCAL, "scratch", None)
        if scratch is None or len(scratch) < end - begin:
            scratch = _LOCAL.scratch = bytearray(end - begin)
        buf = memoryview(scratch)[:end - begin]
        with open(path, "rb", buffering=0) as handle:
            handle.seek(begin)
            got = handle.readinto(buf)
        buf = buf[:got]
    else:
        buf = storage.read_range(fs, path, begin, end, url=info.url)
    if len(buf) != end - begin:
        raise RecordError(f"truncated file: records {a}-{b} need bytes {begin}-{end}, "
                          f"only {len(buf)} bytes read", url=info.url, index=a, offset=begin)
    if info.record_size:
        frames = np.arange(b - a, dtype=np.int64) * info.record_size
        ends = frames + info.record_size
    else:
        assert info.offsets is not None
        frames = info.offsets[a:b] - begin
        ends = np.append(frames[1:], end - begin)
    return Chunk(a, buf, frames, ends, info.url, begin)


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def check_frame(chunk: Chunk, i: int, check_crc: bool = True) -> memoryview:
    """The Example bytes of the chunk's i-th record, its framing (and CRCs) checked."""
    view = memoryview(chunk.buf)
    pos, end = int(chunk.frames[i]), int(chunk.ends[i])
    index, at = chunk.start + i, chunk.offset + pos
    try:
        length = tfrecord.parse_header(view, pos)
    except tfrecord.FrameError as err:
        raise RecordError(str(err), url=chunk.url, index=index, offset=at) from None
    if pos + length + tfrecord.OVERHEAD != end:
        raise RecordError(f"record announces {length} data bytes but its frame holds "
                          f"{end - pos - tfrecord.OVERHEAD}", url=chunk.url, index=index,
                          offset=at)
    if check_crc:
        try:
            tfrecord.check_data(view, pos + tfrecord.HEADER, length)
        except tfrecord.FrameError as err:
            raise RecordError(str(err), url=chunk.url, index=index,
                              offset=chunk.offset + err.offset) from None
    return view[pos + tfrecord.HEADER:pos + tfrecord.HEADER + length]
