"""The one chunk planner: which records are read together, and where their bytes lie.

Two sizes of record range, both whole records:
- a *span* (`spans`): a virtual record range of one file, about `SPAN_BYTES`, the unit that
  DataLoader workers, distributed nodes and Ray read tasks share out with no overlap and no
  loss (`datasets` calls the gen_kwargs lists built from them "shards");
- a *chunk* (`chunks`): the records fetched by one ranged read, about `CHUNK_BYTES`.

A local record stream (`reader.iter_frames`) reads smaller chunks (`stream_chunk_bytes`): a
chunk still in the CPU cache when its CRCs are checked, in a recycled buffer
(`BufferPool`), is read and checked faster than the raw read of the same file plus a separate
CRC pass (benchmarks/read.py). Byte positions follow from the fixed record size, or from the
offsets of a scanned or indexed file (`RecordFile.span`). `read_chunk` fetches one chunk;
`Chunk.frame(i)` checks its i-th frame through the one frame checker (`framing.check_frame`).

On an object store a request's latency and one connection's bandwidth bound the speed, so
remote reads keep a *window* of ranged requests in flight (`Window`, `fetch`): a stream's
chunks are single requests of about `REQUEST_BYTES`, `WINDOW` of them in flight; a builder
chunk is fetched as ranged requests of about `RANGE_BYTES` through its reader's window;
scattered records are read as runs of neighbours (`runs`), `RANDOM_WINDOW` at a time. Every
request is a whole number of records read with `storage.read_range`'s retries; memory is
bounded by the window.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import storage
from dina_datasets.errors import RecordError, check_positive_int
from dina_datasets.recordio import framing
from dina_datasets.recordio.window import WINDOW, Window

SPAN_BYTES = 128 << 20
SPAN_MULTIPLE = 16
CHUNK_BYTES = 32 << 20  # one Arrow table of the builder (one ranged read of a local file)
LOCAL_STREAM_CHUNK_BYTES = 2 << 20  # a local stream's read, checked while in the CPU cache
CHUNK_MULTIPLE = 32
# Remote reads (benchmarks/remote.py: 30 ms per request, 40 MB/s per connection): with
# requests of 16 MB, one and two in flight reach 0.86 and 0.84 of the link (inspect included).
REQUEST_BYTES = 16 << 20  # a request of a remote stream
RANGE_BYTES = CHUNK_BYTES // 4  # a request of a remote builder chunk (2 chunks read at once
# fill the window), or the longest run of neighbouring records read by one request
# WINDOW (recordio.window): ranged requests in flight per remote file, so that memory stays
# under WINDOW x REQUEST_BYTES
RANDOM_WINDOW = 32  # scattered records are small: latency-bound, so more requests in flight

Range = tuple[int, int]


@dataclass(frozen=True)
class RecordFile:
    """Where the records of one TFRecord file lie.

    `record_size` is set for fixed-size files, `offsets` (one frame offset per record) for
    variable-size ones; `num_records` is None only for a variable-size file that was not
    scanned. `exact` is False when the fixed size is a guess from the first and last records
    (a remote file without an index): a reader that finds it contradicted rescans the file.
    `keys` are the join keys of an index (see `recordio.index`), when it has them.
    """

    url: str
    size: int
    num_records: int | None
    record_size: int | None
    offsets: np.ndarray | None = None
    exact: bool = True
    keys: dict[str, np.ndarray] | None = None

    def span(self, start: int, stop: int) -> tuple[int, int]:
        """Byte range [begin, end) of records [start, stop)."""
        if self.record_size is not None:
            return start * self.record_size, stop * self.record_size
        if self.offsets is None:
            raise ValueError(f"{self.url} was not scanned: record offsets are unknown")
        n = len(self.offsets)
        begin = int(self.offsets[start]) if start < n else self.size
        return begin, int(self.offsets[stop]) if stop < n else self.size


def spans(info: RecordFile, num_spans: int | None = None,
          span_bytes: int = SPAN_BYTES) -> list[Range]:
    """Contiguous, near-equal record ranges covering the file.

    By default about `span_bytes` each, rounded up to a multiple of 16 ranges (so 2, 4, 8 or
    16 workers or nodes split them evenly), and at most one range per record.
    """
    n = info.num_records
    if not n:
        return [(0, 0)]
    if num_spans is None:
        wanted = max(1, math.ceil(info.size / span_bytes))
        num_spans = SPAN_MULTIPLE * math.ceil(wanted / SPAN_MULTIPLE)
    num_spans = min(check_positive_int("num_spans", num_spans), n)
    if info.record_size:
        bounds = np.linspace(0, n, num_spans + 1).round().astype(np.int64)
    else:
        assert info.offsets is not None
        targets = np.linspace(0, info.size, num_spans + 1)[1:-1]
        inner = np.searchsorted(info.offsets, targets)
        bounds = np.unique(np.concatenate([[0], inner, [n]]))
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


def stream_chunk_bytes(url: str, storage_options: dict[str, Any] | None = None) -> int:
    """The chunk size of a record stream: small for local files, one ranged request of
    about REQUEST_BYTES for remote ones."""
    fs, _ = storage.filesystem(url, storage_options)
    return LOCAL_STREAM_CHUNK_BYTES if storage.is_local(fs) else REQUEST_BYTES


def stream_window(url: str, storage_options: dict[str, Any] | None = None) -> int:
    """Chunks a record stream keeps in flight: one read ahead for local files (already
    faster than a raw read), WINDOW ranged requests for remote ones."""
    fs, _ = storage.filesystem(url, storage_options)
    return 1 if storage.is_local(fs) else WINDOW


def chunks(info: RecordFile, start: int, stop: int, chunk_bytes: int = CHUNK_BYTES, *,
           multiple: int = CHUNK_MULTIPLE) -> list[Range]:
    """Consecutive sub-ranges of [start, stop) of about `chunk_bytes` each (at least one
    record each).

    With fixed-size records a chunk holds a multiple of `multiple` records when it holds
    more than half as many, so that batches of 8, 16 or 32 rows rarely straddle two tables
    (which costs a copy when they are formatted); requests that make no table use 1.
    """
    if stop <= start:
        return []
    if info.record_size:
        per = max(1, chunk_bytes // info.record_size)
        if per * 2 > multiple:
            per = multiple * max(1, round(per / multiple))
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


def runs(info: RecordFile, indices: np.ndarray, max_bytes: int = RANGE_BYTES
         ) -> list[Range]:
    """Runs of consecutive records among sorted, unique `indices`, each one ranged read of at
    most `max_bytes` (at least one record): neighbours are coalesced, nothing else is read."""
    indices = np.asarray(indices, np.int64)
    if len(indices) == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    out: list[Range] = []
    for group in np.split(indices, breaks):
        out += chunks(info, int(group[0]), int(group[-1]) + 1, max_bytes, multiple=1)
    return out


@dataclass(frozen=True)
class Chunk:
    """The frames of records [start, start + len(frames)) held in one buffer.

    `frames[i]` is the byte position of record `start + i` in `buf`; `ends[i]` its end;
    `offset` the position of `buf[0]` in the file.
    """

    start: int
    buf: memoryview
    frames: np.ndarray
    ends: np.ndarray
    url: str
    offset: int

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def stop(self) -> int:
        return self.start + len(self.frames)

    def frame(self, i: int, check_crc: bool = True) -> memoryview:
        """The Example bytes of the i-th record, its frame (and CRC) checked."""
        pos = int(self.frames[i])
        return framing.check_frame(self.buf, pos, int(self.ends[i]), url=self.url,
                                   index=self.start + i, offset=self.offset + pos,
                                   check_crc=check_crc)


class BufferPool:
    """Chunk buffers recycled once nothing refers to them any more; safe across threads.

    Ownership is explicit: `take` hands each caller a lease of its own (a fresh array over
    one pooled buffer) and the buffer belongs to that lease until the lease, and every view,
    memoryview or array made from it, is gone; only then does it go back to the free list
    (a `weakref.finalize` of the lease, not a reference count). The arrays a stream yields
    are views of its chunk buffers, which the caller may keep: a caller that drops each map
    before the next reads into the same few buffers (no fresh pages to fault in: a fresh
    32 MB buffer faults its pages in at about 1 GB/s here), and one that keeps them loses
    nothing. At most `size` free buffers are kept.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = check_positive_int("size", size)
        self._free: list[np.ndarray] = []
        self._lock = threading.RLock()  # RLock: a lease may be finalised inside `take`

    def take(self, nbytes: int) -> np.ndarray:
        """A writable uint8 array of at least `nbytes` bytes that no other lease shares."""
        with self._lock:
            k = next((k for k, b in enumerate(self._free) if len(b) >= nbytes), None)
            buf = None if k is None else self._free.pop(k)
        if buf is None:
            buf = np.empty(nbytes, np.uint8)  # numpy asks for huge pages: few faults
        # the lease's base is a memoryview, not an array: numpy views of the lease keep the
        # lease itself alive (numpy collapses view chains only through arrays)
        lease = np.frombuffer(memoryview(buf), np.uint8)
        weakref.finalize(lease, self._give_back, buf)
        return lease

    def _give_back(self, buf: np.ndarray) -> None:
        with self._lock:
            if len(self._free) < self.size:
                self._free.append(buf)

    @property
    def free(self) -> int:
        """Buffers held by no lease, ready to be taken."""
        with self._lock:
            return len(self._free)


def fetch(info: RecordFile, ranges: Iterable[Range],
          storage_options: dict[str, Any] | None = None, *, window: int | Window = WINDOW,
          buffers: BufferPool | None = None, handle: Any = None) -> Iterator[Chunk]:
    """The chunks of record ranges, in order, each one ranged read, `window` of them in
    flight ahead of the caller (a `Window` of the caller's, or a new one of that size).
    Local files: `buffers` (one reader thread) recycles the buffers they are read into,
    `handle` is the open file (see `read_chunk`)."""
    def read(ab: Range) -> Chunk:
        a, b = ab
        into = None
        if buffers is not None:
            begin, end = info.span(a, b)
            into = buffers.take(end - begin)
        return read_chunk(info, a, b, storage_options, into=into, handle=handle)

    if isinstance(window, Window):
        yield from window.map(read, ranges)
        return
    pool = Window(window)
    try:
        yield from pool.map(read, ranges)
    finally:
        pool.close(wait=handle is not None)  # no read of a handle its owner closes next


def read_chunk(info: RecordFile, a: int, b: int,
               storage_options: dict[str, Any] | None = None, *,
               into: bytearray | np.ndarray | None = None, handle: Any = None,
               window: Window | None = None) -> Chunk:
    """Records [a, b) in one ranged read. Local files are read straight into `into` when it
    is given and large enough (a buffer the caller reuses), else into a fresh buffer;
    `handle`, an open unbuffered local file, saves opening it for every chunk. Remote
    chunks larger than RANGE_BYTES are fetched as several ranged requests (whole records
    each) through `window` when it is given, and joined."""
    begin, end = info.span(a, b)
    fs = path = None
    if handle is None:
        fs, path = storage.filesystem(info.url, storage_options)
    local = handle is not None or storage.is_local(fs)
    pieces = chunks(info, a, b, RANGE_BYTES, multiple=1) if window is not None and \
        end - begin > RANGE_BYTES and not local else []
    if len(pieces) > 1:
        buf = memoryview(_read_pieces(info, fs, path, pieces, begin, end, window)).toreadonly()
    elif local:
        if into is None or len(into) < end - begin:
            into = np.empty(end - begin, np.uint8)  # numpy asks for huge pages: few faults
        buf = memoryview(into).cast("B")[:end - begin]
        if handle is not None:
            got = os.preadv(handle.fileno(), [buf], begin)
        else:
            with open(path, "rb", buffering=0) as opened:
                got = os.preadv(opened.fileno(), [buf], begin)
        buf = buf[:got].toreadonly()
    else:
        buf = memoryview(storage.read_range(fs, path, begin, end, url=info.url))
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


def _read_pieces(info: RecordFile, fs: Any, path: str, pieces: list[Range], begin: int,
                end: int, window: Window) -> np.ndarray:
    """Bytes [begin, end) fetched as the byte spans of record ranges `pieces`, concurrently."""
    out = np.empty(end - begin, np.uint8)
    spans_ = [info.span(c, d) for c, d in pieces]
    futures = [window.submit(storage.read_range, fs, path, lo, hi, url=info.url)
               for lo, hi in spans_]
    got = begin
    try:
        for (lo, hi), future in zip(spans_, futures, strict=True):
            data = future.result()
            out[lo - begin:lo - begin + len(data)] = np.frombuffer(data, np.uint8)
            got = lo + len(data)
            if len(data) < hi - lo:  # a truncated file: what precedes the cut is kept
                return out[:got - begin]
    finally:
        for future in futures:
            future.cancel()
    return out
