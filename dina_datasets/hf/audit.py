"""The gate before `dina push`: is a local folder a complete, consistent export?"""

from __future__ import annotations

import glob
import os
import posixpath
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dina_datasets import storage
from dina_datasets.errors import LayoutError
from dina_datasets.hf import card
from dina_datasets.hf.export import README, SCORES_CONFIG, ExportedConfig, scan


def check_export(folder: str) -> list[ExportedConfig]:
    """Check that a local folder is a complete export before an upload; its configs.

    README.md with a `configs:` block whose every `data_files` pattern matches Parquet
    files, every config present listed there, no temporary (half-written) file, and each
    config's rows counted: one complete set of shards, as many rows as README.md's
    `dataset_info` says, each `index` once.
    """
    if not os.path.isdir(folder):
        raise LayoutError(f"{folder} is not a folder; give the --out folder of `dina export`")
    readme = os.path.join(folder, README)
    if not os.path.isfile(readme):
        raise LayoutError(f"{folder} has no {README}: is it the output of `dina export`?")
    with open(readme, encoding="utf-8") as handle:
        meta = card.metadata(handle.read())
    configs = meta.get("configs")
    if not isinstance(configs, list) or not configs:
        raise LayoutError(f"{readme} has no YAML `configs:` block: run `dina export` again")
    temporary = [p for p in glob.glob(os.path.join(folder, "**", f"*{storage.TMP_MARK}*"),
                                      recursive=True)]
    if temporary:
        raise LayoutError(f"{folder} holds half-written files ({', '.join(temporary[:3])}): "
                          "finish or rerun the export first")
    listed = set()
    for entry in configs:
        name = entry.get("config_name") if isinstance(entry, dict) else None
        files = entry.get("data_files") if isinstance(entry, dict) else None
        if not name or not isinstance(files, list):
            raise LayoutError(f"{readme}: configs entry {entry!r} lacks config_name or "
                              "data_files")
        for spec in files:
            pattern = spec.get("path") if isinstance(spec, dict) else None
            if not isinstance(pattern, str) or not glob.glob(os.path.join(folder, pattern)):
                raise LayoutError(f"{readme}: config {name!r} lists {pattern!r}, which matches "
                                  f"no file in {folder}")
        listed.add(name)
    found = scan(folder)
    missing = [c.name for c in found if c.name not in listed]
    if missing:
        raise LayoutError(f"{readme} does not list the configs {', '.join(missing)} present in "
                          f"{folder}: run `dina export` again to rewrite it")
    infos = {i.get("config_name"): i for i in meta.get("dataset_info") or []
             if isinstance(i, dict)}
    for config in found:
        _check_rows(folder, config, infos.get(config.name))
    return found


_SHARD = re.compile(rf"^{card.SPLIT}-(\d{{5}})-of-(\d{{5}})\.parquet$")


def _check_rows(folder: str, config: ExportedConfig, info: dict[str, Any] | None) -> None:
    """A config's shards are one complete set (`-00000-of-N` ... `-N-1-of-N`), their rows are
    the README's `num_examples`, and (maps) every `index` appears once."""
    where = f"{folder}: config {config.name!r}"
    names = [_SHARD.match(posixpath.basename(f)) for f in config.files]
    if not all(names):
        bad = [f for f, m in zip(config.files, names, strict=True) if not m]
        raise LayoutError(f"{where} holds shards not named {card.SPLIT}-IIIII-of-NNNNN.parquet: "
                          f"{', '.join(bad[:3])}; run `dina export` again")
    counts = {int(m.group(2)) for m in names}
    indices = sorted(int(m.group(1)) for m in names)
    if len(counts) != 1 or indices != list(range(next(iter(counts)))):
        raise LayoutError(f"{where} holds an incomplete or mixed set of shards "
                          f"({', '.join(map(posixpath.basename, config.files))}): an export was "
                          "interrupted; run `dina export` again")
    splits = (info or {}).get("splits") or []
    expected = sum(s.get("num_examples", 0) for s in splits if isinstance(s, dict))
    if not splits or expected != config.num_examples:
        raise LayoutError(f"{where} holds {config.num_examples:,} rows but README.md's "
                          f"dataset_info says {expected if splits else 'nothing'}: run "
                          "`dina export` again to rewrite it")
    if config.name == SCORES_CONFIG:
        return
    seen = pa.chunked_array([pq.read_table(os.path.join(folder, f), columns=["index"])["index"]
                             .combine_chunks() for f in config.files])
    distinct = len(pc.unique(seen))
    if distinct != config.num_examples:
        raise LayoutError(f"{where} holds {config.num_examples:,} rows but {distinct:,} distinct "
                          "indices (rows written twice): run `dina export` again")
