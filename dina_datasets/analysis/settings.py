"""Settings in the scores table: what each settings id stands for (the table's Parquet
metadata), and the refusal to compare rows of one (model, activation, metric) computed with
different settings (`Scores.one_setting`). The settings files themselves:
`dina_datasets.runs.settings`."""

from __future__ import annotations

import json
from typing import Any

from dina_datasets.errors import ConfigError
from dina_datasets.runs.settings import PUBLISHED, TABLE_METADATA

__all__ = ["PUBLISHED", "described", "refuse_mixed"]


def described(url: str, storage_options: dict[str, Any] | None) -> dict[str, dict]:
    """What each settings id of a Parquet scores table stands for (its metadata)."""
    import pyarrow.parquet as pq

    from dina_datasets import storage

    fs, path = storage.filesystem(url, storage_options)
    with fs.open(path, "rb") as handle:
        metadata = pq.read_schema(handle).metadata or {}
    try:
        return json.loads(metadata.get(TABLE_METADATA, b"{}"))
    except ValueError:
        return {}


def refuse_mixed(relation: Any, described: dict[str, dict]) -> None:
    """ConfigError when rows of one (model, activation, metric) of `relation` (a DuckDB
    relation of the scores with a `settings` column) hold several settings ids."""
    found: dict[tuple[str, str, str], list[tuple[str, list[str]]]] = {}
    for model, activation, metric, setting, explainers in relation.query("scores", (
            "WITH mixed AS (SELECT model, activation, metric FROM scores GROUP BY ALL "
            "HAVING min(settings) <> max(settings)) "
            "SELECT model, activation, metric, settings, list(DISTINCT explainer ORDER BY "
            "explainer) FROM scores SEMI JOIN mixed USING (model, activation, metric) "
            "GROUP BY ALL ORDER BY ALL")).fetchall():
        found.setdefault((model, activation, metric), []).append((setting, explainers))
    if found:
        raise ConfigError(
            "scores computed with different settings would be compared: "
            + "; ".join(_mixed_line(k, v, described) for k, v in found.items())
            + ". Re-evaluate them with one setting (`dina evaluate --overwrite`), keep one "
            "(filter settings=ID), or pass --allow-mixed-settings "
            "(allow_mixed_settings=True) to compare them anyway")


def _mixed_line(key: tuple[str, str, str], found: list[tuple[str, list[str]]],
                described: dict[str, dict]) -> str:
    """One (model, activation, metric) of mixed settings, in words."""
    model, activation, metric = key
    who = ", ".join(f"{setting} ({', '.join(explainers)})" for setting, explainers in found)
    known = [described.get(s) for s, _ in found]
    differ = sorted({k for a in known for b in known if a and b for k in {*a, *b}
                     if a.get(k) != b.get(k)})
    if any(s == PUBLISHED for s, _ in found):
        differ.append("published vs evaluated here")
    detail = f"; differing: {', '.join(differ)}" if differ else ""
    return f"{model} {metric} ({activation}): {who}{detail}"
