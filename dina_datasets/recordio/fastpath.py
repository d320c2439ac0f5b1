"""The fixed-offset fast path: maps sliced out of records without parsing them again.

DINA's files hold one map shape per file, so every record's Example has the same bytes before
the tensor content. A `Template` learned from one decoded record slices the map of any record
whose length and prefix bytes are the same: one record at a time (`view`), or every record of
a chunk at once as a strided view (`maps`) when the records hold nothing but the map.
Kept beside the hand-written decoder (`proto`) because it is measured faster still: see there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dina_datasets.recordio import framing
from dina_datasets.recordio.planner import Chunk


@dataclass(frozen=True)
class Template:
    """Where the map lies in a record of `size` bytes whose first bytes are `prefix`."""

    size: int
    prefix: bytes
    end: int
    dtype: np.dtype
    shape: tuple[int, ...]

    @classmethod
    def learn(cls, data: memoryview, array: np.ndarray) -> Template | None:
        """The template of a record whose decoded map `array` is a view of `data`."""
        if array.size == 0 or array.base is None:
            return None
        base = np.frombuffer(data, np.uint8).__array_interface__["data"][0]
        begin = array.__array_interface__["data"][0] - base
        end = begin + array.nbytes
        if not 0 < begin <= end <= len(data):
            return None
        return cls(len(data), bytes(data[:begin]), end, array.dtype, array.shape)

    @property
    def begin(self) -> int:
        return len(self.prefix)

    @property
    def map_only(self) -> bool:
        """Whether the records hold nothing after the map (no keys to decode)."""
        return self.end == self.size

    def matches(self, data: memoryview) -> bool:
        return len(data) == self.size and data[:self.begin] == self.prefix

    def view(self, data: memoryview) -> np.ndarray:
        """The map of a record that `matches`, a read-only view of its bytes."""
        return np.frombuffer(data[self.begin:self.end], self.dtype).reshape(self.shape)

    def maps(self, chunk: Chunk, check_crc: bool = True) -> np.ndarray | None:
        """Every map of the chunk as one strided (n, *shape) view of its buffer, when every
        record is laid out like this template and holds nothing else; else None. Each frame
        is checked (framing.check_frame) first."""
        frame = self.size + framing.OVERHEAD
        n = len(chunk)
        if not self.map_only or n == 0 or not np.all(chunk.ends - chunk.frames == frame):
            return None
        first = int(chunk.frames[0])
        if n > 1 and not np.all(np.diff(chunk.frames) == frame):
            return None
        rows = np.frombuffer(chunk.buf, np.uint8)[first:first + frame * n].reshape(n, frame)
        head = framing.HEADER
        prefix = np.frombuffer(self.prefix, np.uint8)
        if not np.array_equal(rows[:, head:head + self.begin],
                              np.broadcast_to(prefix, (n, self.begin))):
            return None
        for i in range(n):
            chunk.frame(i, check_crc)
        maps = rows[:, head + self.begin:head + self.end]
        return maps.view(self.dtype).reshape(n, *self.shape)
