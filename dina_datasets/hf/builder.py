"""The `datasets` builder of DINA: one config per model/explainer cell, split `validation`.

Works in process with datasets >= 5.1 (`download_and_prepare`, `as_dataset`,
`as_streaming_dataset`); there is no loading script (datasets >= 4 does not run them, and
older versions cannot import this builder: it needs `datasets.builder.Key`). Arrow tables
are built straight from the record buffers (`dina_datasets.hf.arrow`);
streaming reads the explanations file in record ranges ("virtual shards",
`dina_datasets.recordio.planner`) that DataLoader workers and `split_dataset_by_node` share out.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import datasets
from datasets.builder import Key
from datasets.exceptions import DatasetGenerationError
from datasets.utils.file_utils import is_remote_url
from datasets.utils.py_utils import classproperty

from dina_datasets import catalog
from dina_datasets.errors import ConfigError, DinaError, NetworkError
from dina_datasets.hf import caches
from dina_datasets.hf.features import features
from dina_datasets.hf.source import Source, input_fingerprint
from dina_datasets.layout import DEFAULT_DATA_URL
from dina_datasets.recordio import planner

BUILDER_NAME = "dina"
VERSION = "1.1.0"  # of the prepared rows: a new version gives a new cache
HOMEPAGE = "https://github.com/deel-ai/dina"
DESCRIPTION = ("DINA (DEEL ImageNet Attributions): attribution maps of 14 explanation methods "
               "for 9 ImageNet classifiers on the 50,000 ImageNet validation images, with "
               "per-image fidelity, complexity and randomization scores.")


@dataclass
class DinaConfig(datasets.BuilderConfig):
    """One model/explainer cell: `DinaConfig(model="DinoV2", explainer="Rise")` is named
    `"DinoV2-Rise"`; `DinaConfig("dinov2-rise")` is the same config.

    Give `model` and `explainer`, or a `name` (case-insensitive); unknown names raise
    ConfigError (a ValueError) listing close valid ones.

    Attributes:
        data_url: bucket-shaped folder (any fsspec URL) holding
            `{Model}/{Explainer}/explanations.tfrecord` and its `{Metric}_scores.json`.
        imagenet_json: kecam's `imagenet_data.json` that produced the data: adds `image_id`
            and `label`.
        preprocess_url: a `preprocess_dataset.tfrecord`, or a bucket-shaped folder holding
            `{Model}/preprocess_dataset.tfrecord`: adds `prediction`.
        num_shards: record spans the file is split into, the shards `datasets` shares
            out (default: ~128 MB each, a multiple of 16).
        check_crc: check every record's CRCs while reading.
        fingerprint: a digest of the inputs' sizes and version stamps, set by the builder
            (`source.input_fingerprint`): a changed input gives a new cache.
    """

    name: str = "default"
    model: str | None = None
    explainer: str | None = None
    data_url: str = DEFAULT_DATA_URL
    imagenet_json: str | None = None
    preprocess_url: str | None = None
    num_shards: int | None = None
    check_crc: bool = True
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        cell = self.cell
        self.model, self.explainer, self.name = cell.model, cell.explainer, cell.name
        if self.description is None:
            self.description = (f"{cell.explainer} attribution maps {cell.shape} of {cell.model}"
                                " on the ImageNet validation images")
        super().__post_init__()

    @property
    def cell(self) -> catalog.Cell:
        """The catalog cell; ConfigError when the fields or the name are not a valid config."""
        named = self.name not in (None, "", "default")
        if self.model is None and self.explainer is None:
            if not named:
                raise ConfigError("a DINA config needs a name like 'DinoV2-Rise' (or model= and "
                                  f"explainer=); valid: {', '.join(catalog.config_names())}")
            return catalog.Cell.from_name(self.name)
        if self.model is None or self.explainer is None:
            raise ConfigError(f"give both model and explainer, got model={self.model!r}, "
                              f"explainer={self.explainer!r}")
        cell = catalog.Cell(self.model, self.explainer)
        if named and catalog.Cell.from_name(self.name) != cell:
            raise ConfigError(f"config name {self.name!r} does not match model={self.model!r} "
                              f"and explainer={self.explainer!r} ({cell.name!r})")
        return cell


_CONFIGS: dict[tuple[str, ...], list[DinaConfig]] = {}


def builder_configs() -> list[DinaConfig]:
    """One DinaConfig per available cell of the catalog (published, then contributed)."""
    names = tuple(catalog.config_names())
    if names not in _CONFIGS:
        _CONFIGS.clear()
        _CONFIGS[names] = [DinaConfig(name=name) for name in names]
    return _CONFIGS[names]


class DinaBuilder(datasets.ArrowBasedBuilder):
    """DINA's attribution maps and scores, one config per cell, split `validation`."""

    BUILDER_CONFIG_CLASS = DinaConfig
    DEFAULT_WRITER_BATCH_SIZE = 256
    VERSION = datasets.Version(VERSION)

    @classproperty
    @classmethod
    def BUILDER_CONFIGS(cls) -> list[DinaConfig]:
        return builder_configs()

    @classproperty
    @classmethod
    def builder_configs(cls) -> dict[str, DinaConfig]:
        return {config.name: config for config in builder_configs()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("dataset_name", BUILDER_NAME)
        # datasets adds its own "hf" entry to storage_options: keep the caller's for data_url.
        self.data_storage_options = dict(kwargs.get("storage_options") or {}) or None
        root = str(kwargs.get("cache_dir") or (args[0] if args else None) or
                   datasets.config.HF_DATASETS_CACHE)
        self._dina_cache_root = root if is_remote_url(root) else os.path.expanduser(root)
        super().__init__(*args, **kwargs)
        self.name = BUILDER_NAME
        self.info.builder_name = BUILDER_NAME

    def _create_builder_config(self, config_name: Any = None, custom_features: Any = None,
                               config_id: Any = None, **config_kwargs: Any
                               ) -> tuple[datasets.BuilderConfig, str]:
        model, explainer = config_kwargs.pop("model", None), config_kwargs.pop("explainer", None)
        if isinstance(config_name, DinaConfig):
            config_name = config_name.name
        if config_name is None:
            config_name = DinaConfig(model=model, explainer=explainer).name
        elif not isinstance(config_name, str):
            raise ConfigError(f"config name must be a string, got {config_name!r}")
        else:
            config_name = catalog.Cell.from_name(config_name).name
            if model is not None or explainer is not None:
                DinaConfig(name=config_name, model=model or config_name.split("-", 1)[0],
                           explainer=explainer or config_name.split("-", 1)[1])
        if config_kwargs.get("fingerprint") is None and config_kwargs.get("data_url"):
            # an explicit data_url may change under the same name; the published bucket
            # (the default) does not, and is not listed just to build a config
            config_kwargs["fingerprint"] = self._fingerprint(config_name, config_kwargs)
        self._dina_config_kwargs = dict(config_kwargs)
        return super()._create_builder_config(config_name, custom_features, config_id,
                                              **config_kwargs)

    def _fingerprint(self, config_name: str, config_kwargs: dict[str, Any]) -> str | None:
        """The inputs' fingerprint; unreachable or offline, that of the newest complete
        cache prepared from the same inputs (with a warning), else None (the NetworkError
        comes when the rows are read)."""
        try:
            return input_fingerprint(catalog.Cell.from_name(config_name),
                                     config_kwargs["data_url"],
                                     imagenet_json=config_kwargs.get("imagenet_json"),
                                     preprocess_url=config_kwargs.get("preprocess_url"),
                                     storage_options=self.data_storage_options)
        except NetworkError as err:
            found = caches.newest(self._dina_cache_root, BUILDER_NAME, config_name,
                                  config_kwargs)
            if found is None:
                return None
            fingerprint, folder, date = found
            warnings.warn(caches.OfflineCacheWarning(
                f"{config_name}: the source cannot be reached ({err}); using the cache "
                f"prepared from it on {date} ({folder}), not checked against the source"),
                stacklevel=4)
            return fingerprint

    def download_and_prepare(self, *args: Any, **kwargs: Any) -> None:
        """`datasets`' own, then the inputs of the prepared cache recorded (for offline use)."""
        super().download_and_prepare(*args, **kwargs)
        if kwargs.get("output_dir") is None and not args and \
                not is_remote_url(self._cache_dir_root):
            caches.record(os.path.join(self._cache_dir_root,
                                       self._relative_data_dir(with_version=False)),
                          self.config.name, self._dina_config_kwargs)

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(description=DESCRIPTION, features=features(self.config.cell),
                                    homepage=HOMEPAGE)

    def source(self) -> Source:
        """The resolved inputs of this config (reads the score files; checks alignment)."""
        config = self.config
        return Source.open(config.cell, config.data_url, imagenet_json=config.imagenet_json,
                           preprocess_url=config.preprocess_url,
                           storage_options=self.data_storage_options,
                           check_crc=config.check_crc)

    def _prepare_split(self, split_generator: datasets.SplitGenerator, **kwargs: Any) -> None:
        try:
            super()._prepare_split(split_generator, **kwargs)
        except DatasetGenerationError as err:
            if isinstance(err.__cause__, DinaError):
                raise err.__cause__ from None
            raise

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        source = self.source()
        ranges = planner.spans(source.info, self.config.num_shards)
        return [datasets.SplitGenerator(name=datasets.Split.VALIDATION,
                                        gen_kwargs={"ranges": ranges, "source": source})]

    def _generate_tables(self, ranges: list[planner.Range], source: Source
                         ) -> Iterator[tuple[Key, Any]]:
        for shard, i, table in source.range_tables(ranges):
            yield Key(shard, i), table

    def _generate_shards(self, ranges: list[planner.Range], source: Source
                         ) -> Iterator[dict[str, Any]]:
        for start, stop in ranges:
            yield {"url": source.info.url, "start": start, "stop": stop}

    def _generate_more_gen_kwargs(self, ranges: list[planner.Range], source: Source
                                  ) -> Iterator[dict[str, Any]]:
        """Split each range into ~chunk-sized ranges (`IterableDataset.reshard()`)."""
        for start, stop in ranges:
            for part in planner.chunks(source.info, start, stop, source.chunk_bytes):
                yield {"ranges": [part], "source": source}
