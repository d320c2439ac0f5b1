"""The one chunk planner: which records are read together, and where their bytes lie. Pure
arithmetic on a file's layout: the reads are `recordio.buffers`'.

Two sizes of record range, both whole records:
- a *span* (`spans`): a virtual record range of one file, about `SPAN_BYTES`, the unit that
  DataLoader workers, distributed nodes and Ray read tasks share out with no overlap and no
  loss (`datasets` calls the gen_kwargs lists built from them "shards");
- a *chunk* (`chunks`): the records fetched by one ranged read, about `CHUNK_BYTES`.

Byte positions follow from the fixed record size, or from the offsets of a scanned or indexed
file (`RecordFile.span`); `Chunk.frame(i)` checks the i-th frame of a chunk read through the
one frame checker (`framing.check_frame`).

On an object store a request's latency and one connection's bandwidth bound the speed, so
remote reads keep a *window* of ranged requests in flight (`WINDOW`): a stream's chunks are
single requests of about `REQUEST_BYTES`; a builder chunk is fetched as ranged requests of
about `RANGE_BYTES`; scattered records are read as runs of neighbours (`runs`),
`RANDOM_WINDOW` at a time.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from dina_datasets.errors import check_positive_int
from dina_datasets.recordio import framing

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
# Ranged requests in flight per remote file, measured by benchmarks/remote.py (2 shared
# cores): 4 -> 8 in flight +18 %, 8 -> 16 +12 %; 8 requests of 16 MB bound a stream's
# memory at 128 MB (WINDOW x REQUEST_BYTES).
WINDOW = 8
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


