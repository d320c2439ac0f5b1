"""The Hub-native export: a folder that is a complete Hugging Face dataset repository.

`{config}/validation-XXXXX-of-NNNNN.parquet` shards (at most 500 MB each; a config's shards
are written into a staging folder and swapped in whole, `hf.staging`) and a README.md whose
YAML `configs:` block lets stock `datasets.load_dataset(folder_or_repo, "DinoV2-Rise")` load
any config, streaming too. `hf.audit.check_export` checks a folder before an upload.
Exporting more configs into the same folder adds them; the README always lists every
config present, with its row count and its provenance (recorded in each shard's Parquet
metadata when it is written, so a later export into the folder keeps it).
The `scores` config is the long-format scores table (`dina_datasets.analysis.scores`) of every
config present in the folder, read from `data_url`'s score files:
`datasets.load_dataset(folder_or_repo, "scores")`.
"""

from __future__ import annotations

import functools
import json
import math
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow.parquet as pq

from dina_datasets import catalog, storage
from dina_datasets.errors import ConfigError, LayoutError
from dina_datasets.hf import card, staging
from dina_datasets.hf.features import ENCODINGS
from dina_datasets.hf.source import Source
from dina_datasets.layout import DEFAULT_DATA_URL, Layout

MAX_SHARD_BYTES = 500 * 10**6
ROW_OVERHEAD = 1024
README = "README.md"
PROVENANCE_KEY = b"dina_provenance"  # Parquet key-value metadata of every shard
# Manifest entries that say how a generated config was made (see generation.parts).
MANIFEST_KEYS = ("model", "explainer", "weights", "model_source", "explainer_params", "params",
                 "versions", "images_source", "num_images", "seed")
SCORES_CONFIG = card.SCORES_CONFIG

Progress = Callable[[int], Any]


@dataclass(frozen=True)
class ExportedConfig:
    """One config of an export folder, as found on disk."""

    name: str
    files: tuple[str, ...]
    num_examples: int
    num_bytes: int
    features: datasets.Features
    provenance: dict[str, Any] | None = None


def present_configs(data_url: str, storage_options: dict[str, Any] | None = None
                    ) -> list[str]:
    """The configs of the catalog that have an explanations file under `data_url`; a
    DinaWarning names the folders of configs the catalog does not know (left out)."""
    layout = Layout(data_url)
    fs, _ = storage.filesystem(data_url, storage_options)
    pattern = storage.filesystem(layout.explanations("*", "*"), storage_options)[1]
    try:
        found = {tuple(posixpath.normpath(p).split("/")[-3:-1]) for p in fs.glob(pattern)}
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = [name for name in catalog.config_names() if tuple(name.split("-", 1)) in found]
    unknown = sorted(f"{m}-{e}" for m, e in found if f"{m}-{e}" not in names)
    if unknown:  # a contributed model's maps, its registry not loaded: say it, never drop
        import warnings

        from dina_datasets.errors import DinaWarning

        warnings.warn(f"left out {len(unknown)} config(s) under {data_url} that this process "
                      f"does not know: {', '.join(unknown[:10])}"
                      f"{' ...' if len(unknown) > 10 else ''} (maps of contributed models or "
                      "explainers: pass their registry file, `dina COMMAND --registry FILE`, to "
                      "include them)", DinaWarning, stacklevel=2)
    return names


def resolve_configs(patterns: Iterable[str], present: Iterable[str] | None = None,
                    data_url: str | None = None) -> list[str]:
    """Config names from names (case-insensitive), shell patterns ("DinoV2-*") or "all".

    Patterns and "all" expand against `present` (the configs found under `data_url`) when
    given, else against the whole catalog; a name is taken as it is. "all" leaves out the
    reference explainers' configs (Sobel, Laplace, RandomExp): name them or match them with
    a pattern, e.g. "*-Sobel".
    """
    import fnmatch

    names = catalog.config_names() if present is None else list(present)
    where = "" if present is None else f" under {data_url or 'the data_url'}"
    out: list[str] = []
    for pattern in patterns:
        if pattern.lower() == "all":
            references = {c.name for c in catalog.cells() if c.explainer_spec.reference}
            chosen = [n for n in names if n not in references]
            if not chosen:
                raise ConfigError(f"'all': no config found{where} (no "
                                  "{Model}/{Explainer}/explanations.tfrecord)")
        elif any(ch in pattern for ch in "*?["):
            chosen = [n for n in names if fnmatch.fnmatch(n.lower(), pattern.lower())]
            if not chosen:
                raise ConfigError(f"no config{where} matches {pattern!r}; "
                                  f"{'present' if present is not None else 'valid'}: "
                                  f"{', '.join(names) or 'none'}")
        else:
            chosen = [catalog.Cell.from_name(pattern).name]
        out += [n for n in chosen if n not in out]
    if not out:
        raise ConfigError("name at least one config (or 'all')")
    return out


def provenance(source: Source) -> dict[str, Any]:
    """Where a config's data came from: "generated" by `dina generate` (with its manifest's
    model, weights, explainer parameters and library versions), the "published" DINA file
    (a published cell, 50,000 records without keys, no manifest), or "unknown"."""
    from dina_datasets.runs.parts import read_manifest

    url = source.info.url
    manifest = read_manifest(url, source.storage_options)
    if manifest is not None:
        return {"origin": card.GENERATED, **{k: manifest.get(k) for k in MANIFEST_KEYS}}
    if source.cell.published and source.num_records == catalog.NUM_IMAGES:
        from dina_datasets.recordio.records import read_record

        first = read_record(url, 0, tensors=frozenset(), storage_options=source.storage_options)
        if not {"index", "image_id"} & set(first):
            return {"origin": card.PUBLISHED}
    return {"origin": card.UNKNOWN}


def rows_per_shard(cell: catalog.Cell, max_shard_bytes: int = MAX_SHARD_BYTES) -> int:
    """Rows in one Parquet shard so that it stays under `max_shard_bytes` (2 % kept for
    Parquet's own metadata)."""
    row = 4 * math.prod(cell.shape) + ROW_OVERHEAD
    return max(1, (max_shard_bytes - max_shard_bytes // 50) // row)


def export(configs: Iterable[str], out: str, *, data_url: str = DEFAULT_DATA_URL,
           imagenet_json: str | None = None, preprocess_url: str | None = None,
           storage_options: dict[str, Any] | None = None, encoding: str = "array",
           compression: str = "none", max_shard_bytes: int = MAX_SHARD_BYTES,
           card_template: str | None = None, check_crc: bool = True,
           progress: Callable[[str, int], Progress] | None = None,
           map_configs: Callable[[Callable[[Source], Any], list[Source]], Any] | None = None
           ) -> list[ExportedConfig]:
    """Export configs as Parquet shards plus README.md under `out`; returns every config
    now in `out`.

    All inputs are opened (and their lengths checked) before anything is written.
    `progress(config, total_rows)` may return a callable fed the rows written.
    `map_configs(write, sources)` runs `write(source)` for every source elsewhere (e.g. as
    Ray tasks) instead of one after the other here. `storage_options` serve the inputs and
    `out` alike.
    """
    if encoding not in ENCODINGS:
        raise ConfigError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    fs, path = storage.filesystem(out, storage_options)
    if fs.isfile(path):
        raise LayoutError(f"out {out} is a file, not a folder: give the folder to write the "
                          "repository into (new, or an earlier export)")
    names = resolve_configs(configs, present_configs(data_url, storage_options), data_url)
    template = card.read_template(card_template)
    sources = [Source.open(catalog.Cell.from_name(name), data_url, imagenet_json=imagenet_json,
                           preprocess_url=preprocess_url, storage_options=storage_options,
                           check_crc=check_crc) for name in names]
    staging.recover_all(out, storage_options)  # other configs an earlier export left mid-way
    write = functools.partial(write_config, out=out, encoding=encoding, compression=compression,
                              max_shard_bytes=max_shard_bytes, storage_options=storage_options)
    if map_configs is not None:
        map_configs(write, sources)
    else:
        for source in sources:
            write(source, update=progress(source.cell.name, source.num_records) if progress
                  else None)
    write_scores_config(out, [c.name for c in scan(out, storage_options)
                              if c.name != SCORES_CONFIG],
                        data_url=data_url, imagenet_json=imagenet_json,
                        storage_options=storage_options)
    found = scan(out, storage_options)
    write_readme(out, found, template, storage_options)
    return found


def write_config(source: Source, out: str, *, encoding: str = "array",
                 compression: str = "none", max_shard_bytes: int = MAX_SHARD_BYTES,
                 update: Progress | None = None,
                 storage_options: dict[str, Any] | None = None,
                 rows: np.ndarray | None = None) -> list[str]:
    """Write one config's Parquet shards (of the records at `rows`, in that order; default
    all), all or nothing: into a staging folder beside the config's (which no `data_files`
    pattern matches), then swapped in for the old shards.

    An interruption leaves the previous shards as they were (the staging folder is removed,
    or a later export or `check_export` finds it); readers never see old and new shards
    together. On an object store the swap moves the shards one by one: a reader during it
    may miss some shards, never get a row twice. Two exports of one config into one folder
    at once: the second is refused (local disks), or the one whose staging folder lost shards
    fails before its swap (`hf.staging`).
    """
    name = source.cell.name
    per = rows_per_shard(source.cell, max_shard_bytes)
    total = source.num_records if rows is None else len(rows)
    count = max(1, math.ceil(total / per))
    schema = source.schema(encoding)
    schema = schema.with_metadata({**(schema.metadata or {}),
                                   PROVENANCE_KEY: json.dumps(provenance(source)).encode()})
    names = [posixpath.basename(card.shard_name(name, i, count)) for i in range(count)]
    with staging.staged(out, name, storage_options) as stage:
        for i in range(count):
            start, stop = i * per, min(total, (i + 1) * per)
            tables = source.tables(start, stop, encoding) if rows is None else \
                source.tables_at(rows[start:stop], encoding)
            url = storage.join(stage, names[i])
            with storage.atomic_write(url, "wb", storage_options) as handle, pq.ParquetWriter(
                    handle, schema, compression={c: compression if c == "explanation" else
                                                 "zstd" for c in schema.names},
                    use_dictionary=[c for c in schema.names if c != "explanation"],
                    write_statistics=[c for c in schema.names if c != "explanation"],
                    ) as writer:
                for table in tables:
                    writer.write_table(table, row_group_size=max(1, len(table)))
                    if update:
                        update(len(table))
        staging.check_staged(stage, names, storage_options)
    return [storage.join(out, card.shard_name(name, i, count)) for i in range(count)]


def write_scores_config(out: str, configs: list[str], *, data_url: str,
                        imagenet_json: str | None = None,
                        storage_options: dict[str, Any] | None = None) -> str | None:
    """Write the `scores` config: the scores table of `configs` (None, and no config, when
    they have no score files under `data_url`)."""
    from dina_datasets.analysis import scores

    wanted = set(configs)
    files = [f for f in scores.find_score_files(data_url, storage_options)
             if f.config in wanted]
    if not files:
        return None
    url = storage.join(out, card.shard_name(SCORES_CONFIG, 0, 1))
    scores.build(data_url, url, files=files, imagenet_json=imagenet_json,
                 storage_options=storage_options)
    _remove_stale(storage.join(out, SCORES_CONFIG), {posixpath.basename(url)},
                  storage_options)
    return url


def _remove_stale(folder: str, keep: set[str],
                  storage_options: dict[str, Any] | None = None) -> None:
    fs, path = storage.filesystem(folder, storage_options)
    for entry in fs.ls(path, detail=False):
        base = posixpath.basename(entry.rstrip("/"))
        if staging.is_shard(base) and base not in keep:
            fs.rm(entry)


def scan(out: str, storage_options: dict[str, Any] | None = None) -> list[ExportedConfig]:
    """The configs of an export folder: every `{config}/validation-*.parquet` set, in
    catalog order (folders that are not configs are ignored)."""
    fs, root = storage.filesystem(out, storage_options)
    if not fs.isdir(root):
        raise LayoutError(f"{out} is not a folder")
    present = {posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False)
               if fs.isdir(p)}
    found = []
    for name in [*catalog.config_names(), SCORES_CONFIG]:
        if name not in present:
            continue
        files = sorted(fs.glob(posixpath.join(root, card.data_files_pattern(name))))
        files = [f for f in files if f.endswith(".parquet")]
        if not files:
            continue
        rows, size, features, origin = 0, 0, None, None
        for file in files:
            with fs.open(file, "rb") as handle:
                meta = pq.ParquetFile(handle).metadata
                rows += meta.num_rows
                size += sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
                features = features or datasets.Features.from_arrow_schema(
                    meta.schema.to_arrow_schema())
                recorded = (meta.metadata or {}).get(PROVENANCE_KEY)
                origin = origin or (json.loads(recorded) if recorded else None)
        rel = tuple(posixpath.relpath(f, root) for f in files)
        found.append(ExportedConfig(name, rel, rows, size, features, origin))
    return found


def write_readme(out: str, found: list[ExportedConfig], template: str,
                 storage_options: dict[str, Any] | None = None) -> str:
    """README.md of an export: the card with the `configs:` and `dataset_info:` of `found`."""
    infos = {}
    for config in found:
        split = datasets.SplitInfo(name=card.SPLIT, num_bytes=config.num_bytes,
                                   num_examples=config.num_examples)
        splits = datasets.SplitDict()
        splits.add(split)
        infos[config.name] = datasets.DatasetInfo(features=config.features, splits=splits)
    text = card.render(template, [c.name for c in found], infos,
                       {c.name: c.provenance for c in found if c.provenance})
    url = storage.join(out, README)
    with storage.atomic_write(url, "w", storage_options) as handle:
        handle.write(text)
    return url
