"""DINA configs as a Ray Dataset: a Ray Datasource on the project's record reader.

Each config's explanations file is cut into virtual record ranges ("spans") by the chunk
planner, one read task each, so a cluster reads one 30 GB file in parallel with no overlap
and no loss. A read task opens its config with `Source.open` (once per worker process:
the score files and the ImageNet json are read there, not shipped with every task) and
yields `Source.tables(start, stop)`: Arrow tables in the builder's schema, plus a `config`
column when several configs are read.
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import cachetools
import pyarrow as pa
import ray
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from dina_datasets import catalog
from dina_datasets.errors import ConfigError
from dina_datasets.hf.export import ROW_OVERHEAD, present_configs, resolve_configs
from dina_datasets.hf.features import ENCODINGS
from dina_datasets.hf.source import Source
from dina_datasets.layout import DEFAULT_DATA_URL
from dina_datasets.recordio import planner

CONFIG_COLUMN = "config"


@dataclass(frozen=True)
class Opening:
    """How a read task opens one config (small and picklable: it travels with every task)."""

    config: str
    data_url: str
    imagenet_json: str | None = None
    preprocess_url: str | None = None
    storage_options: dict[str, Any] | None = None
    check_crc: bool = True
    read: str = ""  # one per `read_dina` call: a worker reopens the files for a new read

    @property
    def key(self) -> tuple:
        return (self.config, self.data_url, self.imagenet_json, self.preprocess_url,
                json.dumps(self.storage_options, sort_keys=True, default=repr),
                self.check_crc, self.read)

    def open(self) -> Source:
        return Source.open(catalog.Cell.from_name(self.config), self.data_url,
                           imagenet_json=self.imagenet_json,
                           preprocess_url=self.preprocess_url,
                           storage_options=self.storage_options, check_crc=self.check_crc)


OPENED_MAX = 32
_OPENED: cachetools.LRUCache[tuple, Source] = cachetools.LRUCache(OPENED_MAX)


@cachetools.cached(_OPENED, key=lambda opening: opening.key, lock=threading.Lock())
def _source(opening: Opening) -> Source:
    """The config's Source, opened once per worker process and read (the OPENED_MAX most
    recently read are kept)."""
    return opening.open()


def _read_span(opening: Opening, start: int, stop: int, encoding: str, tag: bool
               ) -> Iterator[pa.Table]:
    for table in _source(opening).tables(start, stop, encoding):
        if tag:
            table = table.append_column(CONFIG_COLUMN,
                                        pa.array([opening.config] * len(table), pa.string()))
        yield table


class DinaDatasource(Datasource):
    """Configs of a bucket-shaped folder as read tasks, one per span of each file.

    `num_spans` sets the spans per file (default: the planner's, about 128 MB each, a
    multiple of 16); Ray's `override_num_blocks` does not change them.
    """

    def __init__(self, openings: Sequence[Opening], *, encoding: str = "array",
                 num_spans: int | None = None) -> None:
        super().__init__()
        if encoding not in ENCODINGS:
            raise ConfigError(f"encoding must be one of {', '.join(ENCODINGS)}, got "
                              f"{encoding!r}")
        self.openings = list(openings)
        self.encoding = encoding
        self.num_spans = num_spans
        self.tag = len(self.openings) > 1
        self._sources = [o.open() for o in self.openings]  # checks every config now

    def get_name(self) -> str:
        return "DINA"

    def schema(self, source: Source) -> pa.Schema:
        """The tables' schema: the builder's, plus `config` when several configs are read."""
        schema = source.schema(self.encoding)
        return schema.append(pa.field(CONFIG_COLUMN, pa.string())) if self.tag else schema

    def spans(self, source: Source) -> list[tuple[int, int]]:
        """The record ranges of a config's file, one read task each."""
        return [s for s in planner.spans(source.info, self.num_spans) if s[1] > s[0]]

    def estimate_inmemory_data_size(self) -> int:
        return sum(s.num_records * _row_bytes(s.cell) for s in self._sources)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list[ReadTask]:
        tasks = []
        for opening, source in zip(self.openings, self._sources, strict=True):
            schema = self.schema(source)
            for start, stop in self.spans(source):
                metadata = BlockMetadata(num_rows=stop - start,
                                         size_bytes=(stop - start) * _row_bytes(source.cell),
                                         input_files=[source.info.url], exec_stats=None)
                read = partial(_read_span, opening, start, stop, self.encoding, self.tag)
                tasks.append(ReadTask(read, metadata, schema=schema,
                                      per_task_row_limit=per_task_row_limit))
        return tasks


def _row_bytes(cell: catalog.Cell) -> int:
    return 4 * math.prod(cell.shape) + ROW_OVERHEAD


def read_dina(configs: str | Iterable[str], *, data_url: str = DEFAULT_DATA_URL,
              imagenet_json: str | None = None, preprocess_url: str | None = None,
              storage_options: dict[str, Any] | None = None, check_crc: bool = True,
              encoding: str = "array", num_spans: int | None = None,
              **read_args: Any) -> ray.data.Dataset:
    """Configs of a bucket-shaped folder (names, or patterns like "DinoV2-*" and "all" among
    the configs present there) as a `ray.data.Dataset` in the builder's schema, plus a
    `config` column when several configs are read; one read task per span of each file.
    Every config is opened (and its lengths checked) here; `read_args` go to
    `ray.data.read_datasource`.
    """
    names = resolve_configs([configs] if isinstance(configs, str) else configs,
                            present_configs(data_url, storage_options), data_url)
    read = uuid.uuid4().hex
    openings = [Opening(name, data_url, imagenet_json, preprocess_url, storage_options,
                        check_crc, read) for name in names]
    return ray.data.read_datasource(DinaDatasource(openings, encoding=encoding,
                                                   num_spans=num_spans), **read_args)
