"""Chunks of a record file read into buffers: the reads that the planner (`planner`: pure
arithmetic) plans.

`read_chunk` reads one chunk in one ranged read (a local file straight into a recycled
buffer of a `BufferPool`; a large remote chunk as several ranged requests through the
reader's window); `fetch` reads planned chunks in order, a window of them ahead of the
caller (`readahead.Window`). A local stream reads small chunks (`stream_chunk_bytes`): a
chunk still in the CPU cache when its CRCs are checked, in a recycled buffer, is read and
checked faster than the raw read of the same file plus a separate CRC pass
(benchmarks/read.py). Every remote request is a whole number of records read with
`storage.read_range`'s retries; memory is bounded by the window.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from dina_datasets import storage
from dina_datasets.errors import RecordError, check_positive_int
from dina_datasets.readahead import Window
from dina_datasets.recordio import planner
from dina_datasets.recordio.planner import WINDOW, Chunk, Range, RecordFile, chunks


def stream_chunk_bytes(url: str, storage_options: dict[str, Any] | None = None) -> int:
    """The chunk size of a record stream: small for local files, one ranged request of
    about planner.REQUEST_BYTES for remote ones."""
    fs, _ = storage.filesystem(url, storage_options)
    return planner.LOCAL_STREAM_CHUNK_BYTES if storage.is_local(fs) else planner.REQUEST_BYTES


def stream_window(url: str, storage_options: dict[str, Any] | None = None) -> int:
    """Chunks a record stream keeps in flight: one read ahead for local files (already
    faster than a raw read), WINDOW ranged requests for remote ones."""
    fs, _ = storage.filesystem(url, storage_options)
    return 1 if storage.is_local(fs) else planner.WINDOW


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
    pool = Window(window, name="dina-fetch")
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
    chunks larger than planner.RANGE_BYTES are fetched as several ranged requests (whole records
    each) through `window` when it is given, and joined."""
    begin, end = info.span(a, b)
    fs = path = None
    if handle is None:
        fs, path = storage.filesystem(info.url, storage_options)
    local = handle is not None or storage.is_local(fs)
    pieces = chunks(info, a, b, planner.RANGE_BYTES, multiple=1) if window is not None and \
        end - begin > planner.RANGE_BYTES and not local else []
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
