"""Whole batches for a PyTorch DataLoader: no per-row work between the Arrow table and the
tensor.

`DataLoader(ds.with_format("torch"), batch_size=32)` formats and collates row by row, which
costs about a millisecond per row in `datasets`. `TorchBatches(ds, 32)` makes each worker
format whole Arrow batches of its share of the virtual shards instead:

    loader = DataLoader(TorchBatches(stream, 32), batch_size=None, num_workers=2)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import datasets

try:
    from torch.utils.data import IterableDataset as _TorchIterable
except ImportError:  # torch is optional: the class then works as a plain iterable
    _TorchIterable = object  # type: ignore[assignment, misc]


class TorchBatches(_TorchIterable):  # type: ignore[misc, valid-type]
    """Batches of `batch_size` rows (dicts of tensors) of a streaming dataset; DataLoader
    workers each take a share of its shards (give the DataLoader `batch_size=None`).

    Unlike the IterableDataset itself, it has no `state_dict()` to resume from.
    """

    def __init__(self, dataset: datasets.IterableDataset, batch_size: int, *,
                 drop_last_batch: bool = False, format_type: str = "torch") -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = dataset.with_format(format_type)
        self.batch_size = batch_size
        self.drop_last_batch = drop_last_batch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        dataset = self.dataset
        try:
            from torch.utils.data import get_worker_info
        except ImportError:
            info = None
        else:
            info = get_worker_info()
        if info is not None:
            import fsspec.asyn

            fsspec.asyn.reset_lock()  # a forked worker must not reuse the parent's event loop
        if info is not None and info.num_workers > 1:
            if info.id >= dataset.num_shards:
                return
            dataset = dataset.shard(num_shards=min(info.num_workers, dataset.num_shards),
                                    index=info.id)
        yield from dataset.iter(batch_size=self.batch_size, drop_last_batch=self.drop_last_batch)
