"""TFRecord framing: `uint64 length, uint32 masked_crc(length), data, uint32 masked_crc(data)`.

`check_frame` is the one frame checker: every reader (streaming, chunks, random access, the
builder's fast path) checks a frame through it.
"""

from __future__ import annotations

import struct

import crc32c

from dina_datasets.errors import FrameError, RecordError

HEADER = 12
FOOTER = 4
OVERHEAD = HEADER + FOOTER
_MASK_DELTA = 0xA282EAD8
_LEN = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_HEAD = struct.Struct("<QI")


def masked_crc(data: bytes | memoryview) -> int:
    """TFRecord's masked CRC-32C (Castagnoli) of `data`."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def parse_header(buf: bytes | memoryview, pos: int, check: bool = True) -> int:
    """Length of the record whose frame starts at `buf[pos]` (header CRC checked)."""
    length, crc = _HEAD.unpack_from(buf, pos)
    if check and masked_crc(buf[pos:pos + 8]) != crc:
        raise FrameError("length CRC mismatch: not a TFRecord file, or corrupted", pos)
    return length


def frame(data: bytes) -> bytes:
    """One framed record."""
    head = _LEN.pack(len(data))
    return head + _U32.pack(masked_crc(head)) + data + _U32.pack(masked_crc(data))


def check_frame(buf: memoryview, pos: int, end: int | None, *, url: str, index: int,
                offset: int, check_crc: bool = True) -> memoryview:
    """The data of the frame at `buf[pos]`, checked: header CRC, length (it must end at
    `end` when the caller knows where the frame ends), truncation and, with `check_crc`,
    the data CRC. `offset` is the absolute position of `buf[pos]` in the file `url`;
    RecordError names the file, the record index and the byte offset."""
    if len(buf) - pos < HEADER:
        raise RecordError(f"truncated record header ({max(0, len(buf) - pos)} of {HEADER} "
                          "bytes)", url=url, index=index, offset=offset)
    try:
        length = parse_header(buf, pos)
    except FrameError as err:
        what = "not a TFRecord file: " if index == 0 and offset == 0 else ""
        raise RecordError(f"{what}{err}", url=url, index=index, offset=offset) from None
    stop = pos + HEADER + length
    if end is not None and stop + FOOTER != end:
        raise RecordError(f"record announces {length} data bytes but its frame holds "
                          f"{end - pos - OVERHEAD}: corrupted, or the file changed",
                          url=url, index=index, offset=offset)
    if stop + FOOTER > len(buf):
        raise RecordError(f"truncated record: {length} data bytes announced, "
                          f"{max(0, len(buf) - pos - HEADER)} present",
                          url=url, index=index, offset=offset)
    if check_crc:
        (crc,) = _U32.unpack_from(buf, stop)
        if masked_crc(buf[pos + HEADER:stop]) != crc:
            raise RecordError("data CRC mismatch: record corrupted", url=url, index=index,
                              offset=offset + HEADER + length)
    return buf[pos + HEADER:stop]
