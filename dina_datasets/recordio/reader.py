"""Framed-record streams of one TFRecord file: where records lie, and their bytes in order.

Fixed-size files (DINA's) are read in large ranged chunks planned in advance, the next one
prefetched by a thread while the current one is checked and decoded. Other files are
scanned once (headers only) for random access, or streamed frame by frame.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets.errors import RecordError, RecordIndexError
from dina_datasets.recordio import framing as tfrecord
from dina_datasets.recordio import storage

CHUNK_BYTES = 32 << 20
_INDEX_CACHE: dict[tuple[str, int, str], np.ndarray] = {}


@dataclass(frozen=True)
class RecordFile:
    """Where the records of one TFRecord file lie.

    `record_size` is set for fixed-size files; `offsets` for scanned variable-size files;
    `num_records` is None only for a variable-size file that was not scanned.
    """

    url: str
    size: int
    num_records: int | None
    record_size: int | None
    offsets: np.ndarray | None = None

    def span(self, start: int, stop: int) -> tuple[int, int]:
        """Byte range [begin, end) of records [start, stop)."""
        if self.record_size is not None:
            return start * self.record_size, stop * self.record_size
        if self.offsets is None:
            raise ValueError(f"{self.url} was not scanned: record offsets are unknown")
        end = int(self.offsets[stop]) if stop < len(self.offsets) else self.size
        return int(self.offsets[start]) if start < len(self.offsets) else self.size, end


def header(buf: bytes | memoryview, pos: int, url: str, index: int, at: int) -> int:
    """Data length of the frame at buf[pos], or RecordError naming url, index and offset."""
    if len(buf) - pos < tfrecord.HEADER:
        raise RecordError(f"truncated record header ({len(buf) - pos} of {tfrecord.HEADER} "
                          "bytes)", url=url, index=index, offset=at)
    try:
        return tfrecord.parse_header(buf, pos)
    except tfrecord.FrameError as err:
        what = "not a TFRecord file: " if index == 0 and at == 0 else ""
        raise RecordError(f"{what}{err}", url=url, index=index, offset=at) from None


def inspect(url: str, storage_options: dict[str, Any] | None = None, *,
            scan: bool = True) -> RecordFile:
    """Size, record count and record size of a TFRecord file.

    A file whose first and last records have the same length, and whose size is a multiple
    of it, has fixed-size records; any other file is scanned once (headers only, CRC
    checked) and its offsets cached, unless `scan=False`.
    """
    fs, path = storage.filesystem(url, storage_options)
    size = storage.size(fs, path, url)
    if size == 0:
        return RecordFile(url, 0, 0, None, np.zeros(0, np.int64))
    head = storage.read_range(fs, path, 0, min(size, tfrecord.HEADER), url=url)
    length = header(head, 0, url, 0, 0)
    record_size = length + tfrecord.OVERHEAD
    if size % record_size == 0:
        last = size - record_size
        tail = head if last == 0 else storage.read_range(fs, path, last, last + tfrecord.HEADER,
                                                         url=url)
        try:
            same = len(tail) == tfrecord.HEADER and tfrecord.parse_header(tail, 0) == length
        except tfrecord.FrameError:
            same = False
        if same:
            return RecordFile(url, size, size // record_size, record_size)
    key = (url, size, str(fs.ukey(path)) if hasattr(fs, "ukey") else "")
    if key not in _INDEX_CACHE:
        if not scan:
            return RecordFile(url, size, None, None)
        _INDEX_CACHE[key] = _scan(fs, path, url, size)
    offsets = _INDEX_CACHE[key]
    return RecordFile(url, size, len(offsets), None, offsets)


def _scan(fs: Any, path: str, url: str, size: int) -> np.ndarray:
    offsets: list[int] = []
    for _, _, at in _stream(fs, path, url, size, 0, False, CHUNK_BYTES):
        offsets.append(at)
    return np.asarray(offsets, dtype=np.int64)


def check_range(info: RecordFile, start: Any, stop: Any) -> tuple[int, int | None]:
    """[start, stop) taken as a Python slice takes it: None for an end, a negative value
    counts from the end, past the end clamps, an empty range is empty; stop is None for an
    unscanned full read. Only non-integers are an error."""
    for name, value in (("start", start), ("stop", stop)):
        if value is not None and (not isinstance(value, (int, np.integer)) or
                                  isinstance(value, bool)):
            raise RecordIndexError(f"{name} must be an integer, got {value!r}")
    if info.num_records is None:  # not scanned: a full read from the start
        return int(start or 0), None
    begin, end, _ = slice(start, stop).indices(info.num_records)
    return begin, max(begin, end)


def iter_frames(info: RecordFile, start: int, stop: int | None, *, check_crc: bool = True,
                storage_options: dict[str, Any] | None = None,
                chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, memoryview, int]]:
    """(index, data, frame offset) of records [start, stop), CRC-checked, in order."""
    fs, path = storage.filesystem(info.url, storage_options)
    if info.record_size is None and info.offsets is None:
        yield from _stream(fs, path, info.url, info.size, 0, check_crc, chunk_bytes)
        return
    if stop is None or start >= stop:
        return
    plan = list(_plan(info, start, stop, chunk_bytes))
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dina-read") as pool:
        fetch = lambda c: pool.submit(storage.read_range, fs, path, c[2], c[3],  # noqa: E731
                                      url=info.url)
        pending = fetch(plan[0])
        try:
            for k, (first, last, begin, _) in enumerate(plan):
                data = pending.result()
                if k + 1 < len(plan):
                    pending = fetch(plan[k + 1])
                yield from _frames(info, memoryview(data), first, last, begin, check_crc)
        finally:
            pending.cancel()


def _plan(info: RecordFile, start: int, stop: int, chunk_bytes: int
          ) -> Iterator[tuple[int, int, int, int]]:
    """Chunks (first record, stop record, begin byte, end byte) of whole records."""
    if info.record_size:
        per = max(1, chunk_bytes // info.record_size)
        for first in range(start, stop, per):
            last = min(stop, first + per)
            yield first, last, *info.span(first, last)
        return
    first = start
    while first < stop:
        begin = info.span(first, first + 1)[0]
        last = first + 1
        while last < stop and info.span(first, last + 1)[1] - begin <= chunk_bytes:
            last += 1
        yield first, last, *info.span(first, last)
        first = last


def _frames(info: RecordFile, buf: memoryview, first: int, last: int, begin: int,
            check_crc: bool) -> Iterator[tuple[int, memoryview, int]]:
    local = 0
    for index in range(first, last):
        at = begin + local
        length = header(buf, local, info.url, index, at)
        expected = info.span(index, index + 1)
        if length + tfrecord.OVERHEAD != expected[1] - expected[0]:
            raise RecordError(f"record length {length} differs from the "
                              f"{expected[1] - expected[0] - tfrecord.OVERHEAD} bytes of the "
                              "file's other records: corrupted or changed while reading",
                              url=info.url, index=index, offset=at)
        yield _checked(buf, local, length, info.url, index, at, check_crc)
        local += length + tfrecord.OVERHEAD


def _checked(buf: memoryview, local: int, length: int, url: str, index: int, at: int,
             check_crc: bool) -> tuple[int, memoryview, int]:
    end = local + tfrecord.HEADER + length
    if end + tfrecord.FOOTER > len(buf):
        raise RecordError(f"truncated record: {length} data bytes announced, "
                          f"{max(0, len(buf) - local - tfrecord.HEADER)} present",
                          url=url, index=index, offset=at)
    if check_crc:
        try:
            tfrecord.check_data(buf, local + tfrecord.HEADER, length)
        except tfrecord.FrameError as err:
            raise RecordError(str(err), url=url, index=index,
                              offset=at - local + err.offset) from None
    return index, buf[local + tfrecord.HEADER:end], at


def _stream(fs: Any, path: str, url: str, size: int, pos: int, check_crc: bool,
            chunk_bytes: int) -> Iterator[tuple[int, memoryview, int]]:
    """Frames from `pos` to the end of a file whose record offsets are unknown."""
    index = length = 0
    while pos < size:
        want = min(size, pos + chunk_bytes)
        buf = memoryview(storage.read_range(fs, path, pos, want, url=url))
        final = len(buf) < want - pos or want == size
        local = 0
        while local < len(buf):
            if len(buf) - local < tfrecord.HEADER and not final:
                break
            length = header(buf, local, url, index, pos + local)
            if local + length + tfrecord.OVERHEAD > len(buf) and not final:
                break
            yield _checked(buf, local, length, url, index, pos + local, check_crc)
            local += length + tfrecord.OVERHEAD
            index += 1
        if local == 0:
            chunk_bytes = 2 * max(chunk_bytes, length + tfrecord.OVERHEAD)
        pos += local
        if final and local == len(buf):
            return
