"""A map-style dataset over one config, read by batched ranged requests: no Arrow cache, no
download, a true global shuffle over a remote file.

`RandomAccessDataset("DinoV2-Rise", data_url="gs://xai-deel")` gives `len(ds)`, `ds[i]` (one
row), `ds[[i, j, ...]]`, `ds[a:b]` and `ds.__getitems__(indices)` (a list of rows, read in one
batch: neighbouring records coalesced into one range, the rest fetched concurrently, see
`planner.runs` and `buffers.fetch`). It is a PyTorch map-style `Dataset` (a DataLoader hands
`__getitems__` the sampler's indices of a batch) and a grain `RandomAccessDataSource`
(`_getitems` is grain's batched read). It pickles small, so DataLoader and grain worker
processes open their own connections.

A row holds the builder's columns (`hf.features`), built by the builder's own code
(`Source.table`), with values as the builder's `with_format("numpy")` gives them:
`explanation` a float32 array (224, 224, C), ints and strings as Python values, and a score
that is null in the builder (missing or shorter score file) as NaN, so that batches collate
in torch and jax.

Imports neither torch nor grain.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import datasets
import numpy as np

from dina_datasets import catalog
from dina_datasets.errors import RecordError, check_positive_int
from dina_datasets.hf import arrow
from dina_datasets.hf.features import features, metric_columns
from dina_datasets.hf.source import Source
from dina_datasets.layout import DEFAULT_DATA_URL
from dina_datasets.readahead import Window
from dina_datasets.recordio import buffers, planner, reader
from dina_datasets.recordio.records import check_indices

Row = dict[str, Any]
ITER_BATCH = 64


class RandomAccessDataset:
    """Rows of one DINA config by index, fetched with ranged reads (see the module
    docstring).

    Args:
        config: a config name, e.g. `"DinoV2-Rise"` (or a `catalog.Cell`).
        data_url: bucket-shaped folder or URL (`gs://xai-deel` by default).
        storage_options: fsspec options (credentials, `endpoint_url`, ...).
        imagenet_json: kecam's `imagenet_data.json`: fills `image_id` and `label`.
        preprocess_url: the preprocess file or a bucket holding them: fills `prediction`.
        check_crc: check every record's data CRC.
        window: ranged reads in flight, for all the batches being read at once.

    Indices follow Python's sequence rules: -len(ds) <= i < len(ds), else RecordIndexError
    (an IndexError). A batch may repeat an index: the record is read once and each position
    gets its own row dict (the same read-only-shared map array).
    """

    def __init__(self, config: str | catalog.Cell, *, data_url: str = DEFAULT_DATA_URL,
                 storage_options: dict[str, Any] | None = None,
                 imagenet_json: str | None = None, preprocess_url: str | None = None,
                 check_crc: bool = True, window: int = planner.RANDOM_WINDOW) -> None:
        cell = config if isinstance(config, catalog.Cell) else catalog.Cell.from_name(config)
        self.data_url = data_url
        self.window = check_positive_int("window", window)
        self._window = Window(self.window, name="dina-fetch")  # shared by the threads that call us
        self.source = Source.open(cell, data_url, imagenet_json=imagenet_json,
                                  preprocess_url=preprocess_url,
                                  storage_options=storage_options, check_crc=check_crc)

    @property
    def config_name(self) -> str:
        return self.source.cell.name

    @property
    def features(self) -> datasets.Features:
        """The builder's `datasets.Features` of these rows."""
        return features(self.source.cell)

    @property
    def column_names(self) -> list[str]:
        return list(self.features)

    def __len__(self) -> int:
        return self.source.num_records

    def __repr__(self) -> str:  # grain's checkpoints name the source by its repr
        return (f"RandomAccessDataset({self.config_name!r}, data_url={self.data_url!r}, "
                f"num_rows={len(self)})")

    def __getitem__(self, key: int | slice | Iterable[int]) -> Row | list[Row]:
        """One row for an integer; a list of rows for a slice or a sequence of indices."""
        if isinstance(key, slice):
            return self.__getitems__(range(*key.indices(len(self))))
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return self.__getitems__([key])[0]
        return self.__getitems__(key)

    def __getitems__(self, indices: Iterable[int]) -> list[Row]:
        """The rows at `indices`, in their order, read in one batch."""
        wanted = check_indices(indices, len(self), self.source.info.url, negative=True)
        try:
            found = self._rows(np.unique(wanted))
        except RecordError:
            if self.source.info.exact:
                raise
            # a remote file without an index whose fixed record size was only a guess
            self.source.info = reader.rescan(self.source.info, self.source.storage_options)
            found = self._rows(np.unique(wanted))
        return [dict(found[i]) for i in wanted.tolist()]

    _getitems = __getitems__  # grain's batched read (SupportsBatchedReadRandomAccessDataSource)

    def __iter__(self) -> Iterator[Row]:
        """Every row in order, read ITER_BATCH rows at a time."""
        for start in range(0, len(self), ITER_BATCH):
            yield from self.__getitems__(range(start, min(len(self), start + ITER_BATCH)))

    def _rows(self, unique: np.ndarray) -> dict[int, Row]:
        source = self.source
        schema = source.schema("binary")
        scores = set(metric_columns())
        rows: dict[int, Row] = {}
        for chunk in buffers.fetch(source.info, planner.runs(source.info, unique),
                                   source.storage_options, window=self._window):
            maps, keys = arrow.decode_chunk(chunk, source.cell.shape,
                                            check_crc=source.check_crc)
            table = source.table(chunk.start, chunk.stop, maps, keys, schema, "binary")
            columns = table.drop_columns(["explanation"]).to_pydict()
            for i in range(len(chunk)):
                rows[chunk.start + i] = {
                    name: maps[i] if name == "explanation" else
                    _nan_if_none(columns[name][i]) if name in scores else columns[name][i]
                    for name in schema.names}
        return rows


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value
