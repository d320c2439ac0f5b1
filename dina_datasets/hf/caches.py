"""Prepared Arrow caches of the builder, found again offline.

A config's cache id includes the fingerprint of its inputs (`source.input_fingerprint`), which
cannot be computed when a remote source is unreachable or offline mode is on. So each prepared
config records the inputs it was made from (`dina_inputs.json` beside its versions); offline,
the newest complete cache made from the same inputs is used instead (with a warning).
"""

from __future__ import annotations

import datetime
import glob
import json
import os
from typing import Any

from dina_datasets import storage
from dina_datasets.errors import DinaWarning

INPUTS_FILE = "dina_inputs.json"
INFO_FILE = "dataset_info.json"  # what `datasets` writes last into a complete cache


class OfflineCacheWarning(DinaWarning):
    """The source of a config could not be reached: a cache prepared earlier is used."""


def _settings(config_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The config's settings that name its cache, less the fingerprint (JSON-able)."""
    return {k: v for k, v in sorted(config_kwargs.items())
            if k != "fingerprint" and (v is None or isinstance(v, (str, bool, int, float)))}


def record(config_dir: str, config_name: str, config_kwargs: dict[str, Any]) -> None:
    """Write, beside a prepared config's versions, the inputs it was made from."""
    if not os.path.isdir(config_dir) or not config_kwargs.get("fingerprint"):
        return
    entry = {"config_name": config_name, "settings": _settings(config_kwargs),
             "fingerprint": config_kwargs["fingerprint"]}
    with storage.atomic_write(os.path.join(config_dir, INPUTS_FILE), "w") as handle:
        json.dump(entry, handle)


def newest(cache_root: str, builder_dir: str, config_name: str, config_kwargs: dict[str, Any]
           ) -> tuple[str, str, str] | None:
    """(fingerprint, folder, date) of the newest complete cache of `config_name` prepared
    with the same settings under `cache_root`/`builder_dir`; None when there is none."""
    found = []
    for path in glob.glob(os.path.join(glob.escape(cache_root), glob.escape(builder_dir), "*",
                                       INPUTS_FILE)):
        try:
            with open(path, encoding="utf-8") as handle:
                entry = json.load(handle)
        except (OSError, ValueError):
            continue
        if not isinstance(entry, dict) or entry.get("config_name") != config_name or \
                entry.get("settings") != _settings(config_kwargs) or not entry.get("fingerprint"):
            continue
        folder = os.path.dirname(path)
        infos = glob.glob(os.path.join(glob.escape(folder), "*", "**", INFO_FILE),
                          recursive=True)
        infos = [i for i in infos if ".incomplete" not in i]
        if infos:
            found.append((max(os.path.getmtime(i) for i in infos), entry["fingerprint"], folder))
    if not found:
        return None
    when, fingerprint, folder = max(found)
    date = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return fingerprint, folder, date.strftime("%Y-%m-%d %H:%M UTC")
