"""A DataLoader worker's ring of shared-memory slots for handing big arrays to the main
process without fresh shared memory per batch.

A DataLoader moves each tensor a worker yields into new shared memory, whose page faults
(about 1 GB/s here) cost more than the copy itself. A worker instead copies a batch's
arrays into a free slot of its ring and sends a `SharedBatch`; unpickling it in the main
process copies the arrays out into tensors of their own and frees the slot, so the caller
may keep every batch while the worker reuses the slots.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

SLOTS = 4
HEAD = 64  # bytes before the first slot: one busy flag per slot
MAX_RINGS = 32
_RINGS: OrderedDict[tuple[int, int], Any] = OrderedDict()  # main process: rings in use
_IDS = itertools.count()

Layout = list[tuple[str, int, tuple[int, ...], str]]  # (column, offset, shape, dtype)


class Ring:
    """A worker's slots, allocated at its first batch (and again for a larger one)."""

    def __init__(self) -> None:
        self.storage: Any = None
        self.slot_bytes = 0
        self.next = 0
        self.pid = os.getpid()
        self.key = (self.pid, -1)
        self.busy = 0  # batches sent the usual way: their slot was not free yet

    def pack(self, names: list[str], arrays: Mapping[str, list[np.ndarray]],
             others: Mapping[str, Any], last: bool) -> SharedBatch | None:
        """The batch (columns `names`: `arrays` in parts to concatenate, `others` as they
        are) in the next slot, or None if the main process has not taken that slot's batch.
        `last`: the worker sends no more batches through this ring in this iteration."""
        import torch

        need = sum(part.nbytes for parts in arrays.values() for part in parts)
        if self.storage is None or need > self.slot_bytes:
            self.slot_bytes = max(need, 1)
            self.storage = torch.UntypedStorage._new_shared(HEAD + SLOTS * self.slot_bytes)
            self.key = (self.pid, next(_IDS))
        memory = _bytes(self.storage)
        slot = self.next
        if memory[slot]:
            self.busy += 1
            return None
        self.next = (slot + 1) % SLOTS
        at = HEAD + slot * self.slot_bytes
        layout: Layout = []
        for name, parts in arrays.items():
            shape = (sum(len(p) for p in parts), *parts[0].shape[1:])
            layout.append((name, at, shape, parts[0].dtype.str))
            for part in parts:
                memory[at:at + part.nbytes] = part.reshape(-1).view(np.uint8)
                at += part.nbytes
        memory[slot] = 1
        small = {name: _array(value) for name, value in others.items()}
        return SharedBatch(self.storage, self.key, slot, names, layout, small, last)


class SharedBatch:
    """What a worker sends: a slot of its ring; unpickled as a dict of tensors."""

    def __init__(self, storage: Any, key: tuple[int, int], slot: int, names: list[str],
                 layout: Layout, others: dict[str, Any], last: bool) -> None:
        self.args = (storage, key, slot, names, layout, others, last)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return unpack, self.args


def unpack(storage: Any, key: tuple[int, int], slot: int, names: list[str], layout: Layout,
           others: dict[str, Any], last: bool) -> dict[str, Any]:
    """The batch of a slot, copied into tensors of its own; the slot is then free again."""
    import torch

    for old in [k for k in _RINGS if k[0] == key[0] and k != key]:
        del _RINGS[old]  # the worker has moved on to a new ring
    _RINGS[key] = storage  # keeps torch's mapping of the ring alive between batches
    _RINGS.move_to_end(key)
    while len(_RINGS) > MAX_RINGS:
        _RINGS.popitem(last=False)
    memory = _bytes(storage)
    arrays = {}
    for name, at, shape, dtype in layout:
        size = math.prod(shape) * np.dtype(dtype).itemsize
        out = np.empty(shape, dtype)  # numpy's allocator reuses freed pages, torch's faults
        out.reshape(-1).view(np.uint8)[:] = memory[at:at + size]
        arrays[name] = torch.from_numpy(out)
    memory[slot] = 0
    if last:
        _RINGS.pop(key, None)
    return {name: arrays[name] if name in arrays else _tensor(others[name]) for name in names}


def _bytes(storage: Any) -> np.ndarray:
    import torch

    return torch.empty(0, dtype=torch.uint8).set_(storage).numpy()


def _array(value: Any) -> Any:
    """Small tensors travel pickled as numpy arrays: each tensor would take shared memory."""
    import torch

    if isinstance(value, torch.Tensor) and value.device.type == "cpu":
        return value.numpy()
    return value


def _tensor(value: Any) -> Any:
    import torch

    return torch.from_numpy(value) if isinstance(value, np.ndarray) else value
