"""The settings of a score file: what its scores depend on, written beside it by `dina
evaluate` (`Layout.settings`: `{model}/{explainer}/{metric}_settings.{activation}.json`,
format `dina-score-settings/1`, JSON, written atomically).

A record holds the metric, its `variant`, its effective `params` (the published defaults
with the replacements given), the output `activation`, the `seed` and `weights` identity of
the metrics that use them ("none", "pretrained:<constructor>" or "sha256:<hash>" of a
weights file), the `batch_size`, the `maps` signature and URL of the explanations scored,
their `num_records`, the number of scores (`count`), the library `versions`, and `id`: a
short hash of the settings that define the scores (`COMPARED`). Two score files of one
(model, activation, metric) are comparable when their ids are equal; a score file without a
settings file (the published ones) has the id "published". The batch size, the versions and
the maps are recorded but not compared: the first two change the scores only at rounding
level, and every explainer has its own maps.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any

from dina_datasets import storage
from dina_datasets.runs import records

FORMAT = "dina-score-settings/1"
PUBLISHED = "published"
TABLE_METADATA = b"dina.settings"  # in a scores table's Parquet schema: id -> settings (JSON)
COMPARED = ("metric", "variant", "params", "activation", "seed", "weights")
ID_LENGTH = 12


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def identify(record: dict[str, Any]) -> str:
    """The id of a settings record: a short hash of its `COMPARED` fields."""
    compared = {k: record[k] for k in COMPARED if k in record}
    return hashlib.sha256(_canonical(compared).encode()).hexdigest()[:ID_LENGTH]


def differences(old: dict[str, Any] | None, new: dict[str, Any],
                keys: Iterable[str] = COMPARED) -> list[str]:
    """'name: old -> new' for each of `keys` in which two records differ (`old` None: a
    score file without settings, i.e. published)."""
    if old is None:
        return [f"settings: {PUBLISHED} (no settings file) -> {identify(new)}"]
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys
            if _canonical(old.get(k)) != _canonical(new.get(k))]


def make(run_record: dict[str, Any], count: int, versions: dict[str, Any]) -> dict[str, Any]:
    """The settings file of a score file of `count` scores computed by a run whose settings
    are `run_record` (`dina_datasets.runs.score_parts`)."""
    record = {k: v for k, v in run_record.items() if k != "format"}
    return {"format": FORMAT, "id": identify(record), **record, "count": int(count),
            "versions": versions}


def read(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The settings file at `url`, None when there is none; FormatError when unreadable
    (remove it: its score file then counts as published)."""
    return records.read(url, FORMAT, "settings file", storage_options, required=("id",))


def write(url: str, record: dict[str, Any], storage_options: dict[str, Any] | None = None
          ) -> None:
    """Write a settings file atomically."""
    records.write(url, record, storage_options)


def remove(url: str, storage_options: dict[str, Any] | None = None) -> None:
    """Delete a settings file (before its score file is replaced)."""
    fs, path = storage.filesystem(url, storage_options)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path)


def maps_signature(url: str, storage_options: dict[str, Any] | None = None) -> str:
    """A stamp of the maps file `url` that changes when it is rewritten: the CRC-32C its
    valid sidecar index records, else its size and modification stamp."""
    from dina_datasets.recordio.index import read_index

    fs, path = storage.filesystem(url, storage_options)
    info = storage.info(fs, path, url)
    found = read_index(url, storage_options)
    if found is not None and found.crc32c:
        return f"crc32c={found.crc32c},size={int(info['size'])}"
    return f"size={int(info['size'])},{storage.signature(info)}"


def weights_identity(weights: str, constructor: Any = None) -> str:
    """"none", "pretrained:<constructor>" or "sha256:<first 16 hex>" of a weights file."""
    if weights in ("none", "pretrained"):
        if weights == "none":
            return "none"
        name = constructor if isinstance(constructor, str) else \
            getattr(constructor, "__qualname__", repr(constructor))
        return f"pretrained:{name}"
    stat = os.stat(weights)
    return _file_hash(os.path.abspath(weights), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]
