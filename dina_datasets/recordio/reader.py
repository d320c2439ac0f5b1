"""Framed-record streams of one TFRecord file: where its records lie, and their bytes in order.

`inspect` finds where the records lie, cheapest first: the file's sidecar index when it is
valid (`recordio.index`); else a fixed record size (first and last records the same size,
the file size a multiple of it), checked against every record header for local files and
taken as a guess for remote ones; else a scan of the headers. Layouts are kept (bounded)
per file version (size and generation or mtime), so that random reads of an unchanged file
cost one metadata call and the ranged reads, not the index or a scan again. The index and the
sampled headers are read with the retries of any ranged read (`storage`); a layout built
because an index was there but unreadable is not kept.
`iter_frames` then reads the planned chunks in order, a window of them in flight ahead of the
caller (`buffers.fetch`: one for local files, several ranged requests for remote ones), and
falls back to a scan when a guessed fixed size is contradicted.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import cachetools
import numpy as np

from dina_datasets import storage
from dina_datasets.errors import RecordError, RecordIndexError
from dina_datasets.recordio import buffers, framing, index, planner
from dina_datasets.recordio.planner import RecordFile

LAYOUT_CACHE_SIZE = 64
SAMPLE_HEADERS = 16
_LAYOUTS: cachetools.LRUCache[tuple[Any, ...], RecordFile] = \
    cachetools.LRUCache(LAYOUT_CACHE_SIZE)
_LAYOUTS_LOCK = threading.Lock()


def inspect(url: str, storage_options: dict[str, Any] | None = None, *,
            scan: bool = True, use_index: bool = True) -> RecordFile:
    """Size, record count and record layout of a TFRecord file (see the module docstring).

    With `scan=False` a variable-size file without an index is not scanned: its
    `num_records` is None and it can only be streamed from the start.
    """
    fs, path = storage.filesystem(url, storage_options)
    meta = storage.info(fs, path, url)
    size = int(meta["size"])
    version = storage.signature(meta)
    key = (url, getattr(fs, "_fs_token", None), size, version, use_index)
    with _LAYOUTS_LOCK:
        kept = _LAYOUTS.get(key)  # a hit counts as a use
    if kept is not None:
        return kept
    found, settled = _layout(fs, path, url, size, scan, use_index, meta)
    if found.num_records is not None and version is not None and settled:
        _keep(key, found)
    return found


def _keep(key: tuple[Any, ...], layout: RecordFile) -> None:
    with _LAYOUTS_LOCK:
        _LAYOUTS[key] = layout  # the least recently used layout goes beyond the size


def _layout(fs: Any, path: str, url: str, size: int, scan: bool, use_index: bool,
            meta: dict[str, Any]) -> tuple[RecordFile, bool]:
    """The layout, and whether it may be kept: not when an index was there but unreadable
    (a layout built because of an error)."""
    settled = True
    if use_index:
        found, settled = index.lookup(url, fs, path, meta)
        if found is not None:
            return RecordFile(url, size, found.num_records, found.record_size, found.offsets,
                              keys=found.keys), True
    return _headers(fs, path, url, size, scan), settled


def _headers(fs: Any, path: str, url: str, size: int, scan: bool) -> RecordFile:
    """The layout read from the record headers: a fixed size, else a scan (with `scan`)."""
    if size == 0:
        return RecordFile(url, 0, 0, None, np.zeros(0, np.int64))
    head = memoryview(storage.read_range(fs, path, 0, min(size, framing.HEADER), url=url))
    record_size = _length_at(head, 0, url, 0, 0) + framing.OVERHEAD
    if size % record_size == 0:
        fixed = _fixed(fs, path, url, size, record_size)
        if fixed is not None:
            return fixed
    if not scan:
        return RecordFile(url, size, None, None)
    offsets = _scan(fs, path, url, size)
    return RecordFile(url, size, len(offsets), None, offsets)


def _fixed(fs: Any, path: str, url: str, size: int, record_size: int) -> RecordFile | None:
    """A fixed-size layout when the headers agree: every header for local files (cheap,
    exact); up to SAMPLE_HEADERS of them, spread over the file and the last one included,
    fetched in one concurrent call, for remote files (a guess unless that is all of them)."""
    n = size // record_size
    if storage.is_local(fs):
        mapped = np.memmap(path, np.uint8, mode="r", shape=(size,))
        lengths = mapped.reshape(n, record_size)[:, :8].copy().view("<u8").ravel()
        del mapped
        if np.all(lengths == record_size - framing.OVERHEAD):
            return RecordFile(url, size, n, record_size)
        return None
    picks = np.unique(np.linspace(1, n - 1, min(n - 1, SAMPLE_HEADERS)).round()
                      .astype(np.int64)) if n > 1 else np.zeros(0, np.int64)
    starts = [int(k) * record_size for k in picks]
    heads = storage.read_ranges(fs, path, starts, [a + framing.HEADER for a in starts],
                                url=url)  # a failed or short read is retried
    for head in heads:
        try:
            if framing.parse_header(head, 0) != record_size - framing.OVERHEAD:
                return None
        except Exception:  # not a header there: not a fixed-size file
            return None
    return RecordFile(url, size, n, record_size, exact=n <= SAMPLE_HEADERS + 1)


def _scan(fs: Any, path: str, url: str, size: int) -> np.ndarray:
    offsets = [at for _, _, at in _stream(fs, path, url, size, False, planner.CHUNK_BYTES)]
    return np.asarray(offsets, dtype=np.int64)


def rescan(info: RecordFile, storage_options: dict[str, Any] | None = None) -> RecordFile:
    """The layout of a file whose guessed fixed size was contradicted: scanned (and kept in
    place of the guess)."""
    fs, path = storage.filesystem(info.url, storage_options)
    offsets = _scan(fs, path, info.url, info.size)
    found = RecordFile(info.url, info.size, len(offsets), None, offsets)
    with _LAYOUTS_LOCK:
        stale = [k for k, v in _LAYOUTS.items() if v is info]
    for key in stale:
        _keep(key, found)
    return found


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
                chunk_bytes: int | None = None, window: int | None = None
                ) -> Iterator[tuple[int, memoryview, int]]:
    """(index, data, frame offset) of records [start, stop), checked, in order.

    The planned chunks are read `window` ahead of the caller (`buffers.fetch`; default
    `buffers.stream_window`: one for local files, several ranged requests for remote ones).
    The data views stay valid as long as the caller keeps them: a local chunk buffer is
    reused only when nothing refers to it any more (`buffers.BufferPool`)."""
    fs, path = storage.filesystem(info.url, storage_options)
    chunk_bytes = chunk_bytes or buffers.stream_chunk_bytes(info.url, storage_options)
    if info.record_size is None and info.offsets is None:
        yield from _stream(fs, path, info.url, info.size, check_crc, chunk_bytes)
        return
    if stop is None or start >= stop:
        return
    window = window or buffers.stream_window(info.url, storage_options)
    local = storage.is_local(fs)
    plan = planner.chunks(info, start, stop, chunk_bytes,
                          **({} if local else {"multiple": 1}))  # requests: no table rows
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(open(path, "rb", buffering=0)) if local else None
        chunks = stack.enter_context(contextlib.closing(buffers.fetch(
            info, plan, storage_options, window=window, handle=handle,
            buffers=buffers.BufferPool(window + 3) if local else None)))
        for chunk in chunks:
            for i in range(len(chunk)):
                try:
                    data = chunk.frame(i, check_crc)
                except RecordError:
                    if info.exact:
                        raise
                    again = rescan(info, storage_options)
                    if again.num_records == info.num_records and \
                            np.array_equal(again.offsets, np.arange(info.num_records)
                                           * info.record_size):
                        raise
                    chunks.close()
                    end = again.num_records if stop == info.num_records else stop
                    yield from iter_frames(again, chunk.start + i, end, check_crc=check_crc,
                                           storage_options=storage_options,
                                           chunk_bytes=chunk_bytes, window=window)
                    return
                yield chunk.start + i, data, chunk.offset + int(chunk.frames[i])


def _stream(fs: Any, path: str, url: str, size: int, check_crc: bool,
            chunk_bytes: int) -> Iterator[tuple[int, memoryview, int]]:
    """Frames from the start to the end of a file whose record offsets are unknown."""
    pos = index = length = 0
    while pos < size:
        want = min(size, pos + chunk_bytes)
        buf = memoryview(storage.read_range(fs, path, pos, want, url=url))
        final = len(buf) < want - pos or want == size
        local = 0
        while local < len(buf):
            if len(buf) - local < framing.HEADER and not final:
                break
            if len(buf) - local >= framing.HEADER:
                length = _length_at(buf, local, url, index, pos + local)
                if local + length + framing.OVERHEAD > len(buf) and not final:
                    break
            data = framing.check_frame(buf, local, None, url=url, index=index,
                                       offset=pos + local, check_crc=check_crc)
            yield index, data, pos + local
            local += len(data) + framing.OVERHEAD
            index += 1
        if local == 0:
            chunk_bytes = 2 * max(chunk_bytes, length + framing.OVERHEAD)
        pos += local
        if final and local == len(buf):
            return


def _length_at(buf: memoryview, pos: int, url: str, index: int, offset: int) -> int:
    if len(buf) - pos < framing.HEADER:
        raise RecordError(f"truncated record header ({len(buf) - pos} of {framing.HEADER} "
                          "bytes)", url=url, index=index, offset=offset)
    try:
        return framing.parse_header(buf, pos)
    except Exception as err:
        what = "not a TFRecord file: " if index == 0 and offset == 0 else ""
        raise RecordError(f"{what}{err}", url=url, index=index, offset=offset) from None


def file_index(url: str, storage_options: dict[str, Any] | None = None) -> index.Index:
    """The index of a record file: its valid sidecar, else what `inspect` finds (a scan for
    variable-size files), without keys or checksum."""
    found = index.read_index(url, storage_options)
    if found is not None:
        return found
    info = inspect(url, storage_options)
    return index.Index(info.num_records or 0, info.size, info.record_size, info.offsets)
