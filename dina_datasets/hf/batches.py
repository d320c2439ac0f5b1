"""Whole batches for a PyTorch DataLoader: the maps go from the Arrow table to the tensor in
one copy in the worker and one in the main process.

`DataLoader(ds.with_format("torch"), batch_size=32)` formats and collates row by row, which
costs about a millisecond per row in `datasets`. `TorchBatches(ds, 32)` makes each worker
take whole Arrow batches of its share of the virtual shards instead:

    loader = DataLoader(TorchBatches(stream, 32), batch_size=None, num_workers=2)

Fixed-shape array columns (`Array2D`...`Array5D`, and binary columns of float32 maps named in
`binary_shapes`) skip `datasets`' formatting: a worker copies them from the Arrow buffers
straight into the batch's tensors, which the DataLoader hands over in shared memory. Every
other column is formatted by `datasets`' own torch formatter, so batches equal those of
`ds.with_format("torch").iter(batch_size)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from dina_datasets.errors import check_positive_int

try:
    from torch.utils.data import IterableDataset as _TorchIterable
except ImportError:  # torch is optional to import this module; iterating needs it
    _TorchIterable = object  # type: ignore[assignment, misc]


class TorchBatches(_TorchIterable):  # type: ignore[misc, valid-type]
    """Batches of `batch_size` rows (dicts of tensors) of a streaming dataset; DataLoader
    workers each take a share of its shards (give the DataLoader `batch_size=None`).

    `binary_shapes` names binary columns of float32 maps (`dina export --encoding binary`)
    and their shape, e.g. `{"explanation": (224, 224, 3)}`: they come out as tensors too.
    Unlike the IterableDataset itself, it has no `state_dict()` to resume from.
    """

    def __init__(self, dataset: datasets.IterableDataset, batch_size: int, *,
                 drop_last_batch: bool = False,
                 binary_shapes: Mapping[str, tuple[int, ...]] | None = None) -> None:
        self.dataset = dataset
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.drop_last_batch = drop_last_batch
        self.binary_shapes = {name: _shape(name, shape)
                              for name, shape in (binary_shapes or {}).items()}
        features = dataset.features
        if features is not None:
            for name in self.binary_shapes:
                if name not in features:
                    raise ValueError(f"binary_shapes names {name!r}, which is not a column "
                                     f"of the dataset (columns: {sorted(features)})")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from torch.utils.data import get_worker_info

        dataset, info = self.dataset, get_worker_info()
        if info is not None and info.num_workers > 1:
            if info.id >= dataset.num_shards:
                return
            dataset = dataset.shard(num_shards=min(info.num_workers, dataset.num_shards),
                                    index=info.id)
        formatter = None
        tables = dataset.with_format("arrow").iter(batch_size=self.batch_size,
                                                   drop_last_batch=self.drop_last_batch)
        for table in tables:
            dense = {name: parts for name in table.column_names
                     if (parts := self._dense(table.column(name), name)) is not None}
            rest = table.drop_columns(list(dense))
            if formatter is None:
                formatter = _formatter(dataset.features, rest.column_names)
            formatted = formatter.format_batch(rest) if rest.num_columns else {}
            yield _merge(table.column_names, dense, formatted)

    def _dense(self, column: pa.ChunkedArray, name: str) -> list[np.ndarray] | None:
        """The column as numpy views over its Arrow buffers, one per chunk, or None."""
        parts = []
        for chunk in column.chunks:
            if name in self.binary_shapes:
                part = _binary_maps(chunk, name, self.binary_shapes[name])
            else:
                part = _fixed_shape(chunk)
            if part is None:
                return None
            parts.append(part)
        return parts if parts else None


def _shape(name: str, shape: Any) -> tuple[int, ...]:
    """A binary_shapes entry as a tuple of positive ints, or a ValueError saying why not."""
    try:
        dims = tuple(shape)
    except TypeError:
        dims = ()
    if not dims or not all(isinstance(d, int | np.integer) and not isinstance(d, bool)
                           and d > 0 for d in dims):
        raise ValueError(f"binary_shapes[{name!r}] must be a shape of positive integers, "
                         f"e.g. (224, 224, 3); got {shape!r}")
    return tuple(int(d) for d in dims)


def _fixed_shape(chunk: pa.Array) -> np.ndarray | None:
    """An Array2D-5D chunk of fixed shape and no nulls, as a zero-copy (n, *shape) view."""
    shape = getattr(chunk.type, "shape", None)
    if not isinstance(chunk, pa.ExtensionArray) or not shape or None in shape:
        return None
    values = chunk.storage
    for _ in shape:
        if values.null_count or not (pa.types.is_list(values.type) or
                                     pa.types.is_fixed_size_list(values.type)):
            return None
        values = values.flatten()
    if values.null_count or not (pa.types.is_integer(values.type) or
                                 pa.types.is_floating(values.type)):
        return None
    if len(values) != len(chunk) * math.prod(shape):
        return None
    return values.to_numpy(zero_copy_only=True).reshape(len(chunk), *shape)


def _binary_maps(chunk: pa.Array, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A binary chunk of float32 maps (C order) as a zero-copy (n, *shape) view."""
    if not (pa.types.is_binary(chunk.type) or pa.types.is_large_binary(chunk.type)):
        raise ValueError(f"binary_shapes names {name!r}, a column of {chunk.type}, not binary")
    if chunk.null_count:
        raise ValueError(f"column {name!r} holds {chunk.null_count} null maps in a batch")
    width = 4 * math.prod(shape)
    kind = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32
    _, offsets, data = chunk.buffers()
    bounds = np.frombuffer(offsets, kind)[chunk.offset:chunk.offset + len(chunk) + 1]
    sizes = np.diff(bounds)
    if np.any(sizes != width):
        bad = int(np.argmax(sizes != width))
        raise ValueError(f"column {name!r}: a row holds {sizes[bad]} bytes, but a float32 map "
                         f"of shape {shape} (binary_shapes) takes {width}")
    raw = np.frombuffer(data, np.uint8)[bounds[0]:bounds[-1]]
    return raw.view("<f4").reshape(len(chunk), *shape)


def _formatter(features: datasets.Features | None, names: list[str]) -> Any:
    from datasets.formatting import get_formatter

    if features is not None:
        features = datasets.Features({name: features[name] for name in names
                                      if name in features})
    return get_formatter("torch", features=features)


def _merge(names: list[str], dense: dict[str, list[np.ndarray]], formatted: Mapping[str, Any]
           ) -> dict[str, Any]:
    """The batch in column order, the dense columns copied into tensors of their own."""
    import torch

    out = {}
    for name in names:
        if name in dense:
            parts = dense[name]
            out[name] = torch.from_numpy(np.concatenate(parts) if len(parts) > 1
                                         else parts[0].copy())
        else:
            out[name] = formatted[name]
    return out
