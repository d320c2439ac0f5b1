"""TFRecord framing: `uint64 length, uint32 masked_crc(length), data, uint32 masked_crc(data)`."""

from __future__ import annotations

import struct

import crc32c

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


class FrameError(ValueError):
    """A malformed frame; `offset` is relative to the buffer being parsed."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def parse_header(buf: bytes | memoryview, pos: int, check: bool = True) -> int:
    """Length of the record whose frame starts at `buf[pos]` (header CRC checked)."""
    length, crc = _HEAD.unpack_from(buf, pos)
    if check and masked_crc(buf[pos:pos + 8]) != crc:
        raise FrameError("length CRC mismatch: not a TFRecord file, or corrupted", pos)
    return length


def check_data(buf: memoryview, pos: int, length: int) -> None:
    """Check the data CRC of the record whose data starts at `buf[pos]`."""
    (crc,) = _U32.unpack_from(buf, pos + length)
    if masked_crc(buf[pos:pos + length]) != crc:
        raise FrameError("data CRC mismatch: record corrupted", pos + length)


def frame(data: bytes) -> bytes:
    """One framed record."""
    head = _LEN.pack(len(data))
    return head + _U32.pack(masked_crc(head)) + data + _U32.pack(masked_crc(data))
