"""`load_dataset`: "dina" goes to DINA's builder, anything else to `datasets.load_dataset`."""

from __future__ import annotations

from typing import Any

import datasets

from dina_datasets.errors import ConfigError
from dina_datasets.layout import DEFAULT_DATA_URL

BUILDER = "dina"
# Keyword arguments of datasets.load_dataset that make sense for DINA, and DinaConfig's own.
LOAD_KWARGS = frozenset({"split", "streaming", "cache_dir", "num_proc", "download_mode",
                         "verification_mode", "keep_in_memory", "storage_options"})
CONFIG_KWARGS = frozenset({"model", "explainer", "data_url", "imagenet_json", "preprocess_url",
                           "num_shards", "check_crc"})


def load_dataset(path: str, name: str | None = None, **kwargs: Any) -> Any:
    """Load a DINA config, e.g. `load_dataset("dina", "DinoV2-Rise", split="validation")`.

    For "dina": `split`, `streaming`, `cache_dir`, `num_proc`, `download_mode`,
    `verification_mode`, `keep_in_memory`, `storage_options` (for `data_url`) as in
    `datasets.load_dataset`, plus `data_url` (default `gs://xai-deel`, any fsspec URL of a
    bucket-shaped folder), `imagenet_json`, `preprocess_url`, `num_shards` and `check_crc`
    (see `DinaConfig`). Any other `path` (a Hub id, a folder, "parquet", ...) is passed to
    `datasets.load_dataset` unchanged.
    """
    if path != BUILDER:
        return datasets.load_dataset(path, name, **kwargs)
    unknown = sorted(set(kwargs) - LOAD_KWARGS - CONFIG_KWARGS)
    if unknown:
        raise ConfigError(f"load_dataset('dina', ...) got unexpected keyword arguments "
                          f"{', '.join(unknown)}; valid: "
                          f"{', '.join(sorted(LOAD_KWARGS | CONFIG_KWARGS))}")
    from dina_datasets.hf.builder import DinaBuilder

    config = {k: v for k, v in kwargs.items() if k in CONFIG_KWARGS and v is not None}
    config.setdefault("data_url", DEFAULT_DATA_URL)  # keys the cache by its inputs too
    builder = DinaBuilder(config_name=name, cache_dir=kwargs.get("cache_dir"),
                          storage_options=kwargs.get("storage_options"), **config)
    split = kwargs.get("split")
    if kwargs.get("streaming"):
        if kwargs.get("num_proc") is not None:
            raise ConfigError("num_proc does not apply to streaming: give a torch DataLoader "
                              "num_workers instead (the virtual shards are shared out)")
        return builder.as_streaming_dataset(split=split)
    builder.download_and_prepare(download_mode=kwargs.get("download_mode"),
                                 verification_mode=kwargs.get("verification_mode"),
                                 num_proc=kwargs.get("num_proc"))
    keep_in_memory = kwargs.get("keep_in_memory")
    if keep_in_memory is None:
        keep_in_memory = datasets.utils.info_utils.is_small_dataset(builder.info.dataset_size)
    return builder.as_dataset(split=split, in_memory=keep_in_memory)
