"""The manifest of a `dina subset` folder (`subset.json`: the source, the indices, each config
once complete) and the checks that keep a new subset off files that are not its own."""

from __future__ import annotations

import json
import os
import posixpath
import threading
from typing import Any

import numpy as np

from dina_datasets import catalog, storage
from dina_datasets.errors import ConfigError, FormatError
from dina_datasets.layout import Layout

MANIFEST = "subset.json"
FORMAT = "dina-subset"


def check_unused(target: Layout, cell: catalog.Cell,
                  storage_options: dict[str, Any] | None) -> None:
    """ConfigError when the cell's folder under a new subset's `out` already holds files."""
    folder = posixpath.dirname(target.explanations(cell.model, cell.explainer))
    fs, path = storage.filesystem(folder, storage_options)
    try:
        found = fs.ls(path, detail=False) if fs.isdir(path) else []
    except FileNotFoundError:
        found = []
    if found:
        names = ", ".join(posixpath.basename(f) for f in found[:3])
        raise ConfigError(f"{folder} already holds files ({names}) "
                          f"and {target.root} has no {MANIFEST} of this subset: refusing to "
                          "replace them; pass --overwrite (overwrite=True) to replace them, "
                          "or choose another --out")


def check_no_shards(out: str, cell: catalog.Cell,
                     storage_options: dict[str, Any] | None) -> None:
    """ConfigError when a new Parquet subset's `out` already holds shards of the cell (an
    export of all its rows, say)."""
    from dina_datasets.hf import card

    fs, path = storage.filesystem(storage.join(out, cell.name), storage_options)
    found = [f for f in (fs.glob(posixpath.join(path, "*.parquet")) if fs.isdir(path) else [])
             if posixpath.basename(f).startswith(f"{card.SPLIT}-")]
    if found:
        raise ConfigError(f"{out} already holds {len(found)} Parquet shard(s) of {cell.name} "
                          f"(an export?) and no {MANIFEST} of this subset: refusing to replace "
                          "them; pass --overwrite (overwrite=True) to replace them, or choose "
                          "another --out")


def _source(data_url: str) -> str:
    """`data_url` as the manifest compares it (from its text alone): a local folder's
    absolute path, a URL without a trailing slash (`bucket/`, `./bucket` and `/abs/bucket`
    are one source)."""
    from fsspec.core import split_protocol

    protocol, path = split_protocol(data_url)
    if protocol in (None, "file", "local"):
        return os.path.abspath(os.path.expanduser(path))
    return f"{protocol}://{path.rstrip('/')}"


class Manifest:
    """`subset.json`: the source, the indices, and the configs complete so far."""

    def __init__(self, out: str, data_url: str, output: str, indices: np.ndarray,
                 storage_options: dict[str, Any] | None, fresh: bool = False) -> None:
        self.url = storage.join(out, MANIFEST)
        self.options = storage_options
        self.out, self.output = out, output
        self.doc: dict[str, Any] = {"format": FORMAT, "version": 1,
                                    "data_url": _source(data_url),
                                    "output": output, "indices": indices.tolist(),
                                    "configs": {}}
        self._lock = threading.Lock()
        self.fresh = True  # no manifest found (or `fresh`: one to start over)
        if fresh:
            return
        fs, path = storage.filesystem(self.url, storage_options)
        try:
            found = json.loads(fs.cat_file(path))
        except FileNotFoundError:
            return
        except ValueError as err:
            raise FormatError(f"{self.url} is not JSON ({err}): pass --overwrite to "
                              "replace it, or use another --out") from None
        if isinstance(found, dict) and isinstance(found.get("data_url"), str):
            found["data_url"] = _source(found["data_url"])
        for key, what in (("data_url", "another source"), ("output", "another format"),
                          ("indices", "other indices")):
            if not isinstance(found, dict) or found.get(key) != self.doc[key]:
                have = found.get(key) if isinstance(found, dict) else found
                shown = f"{len(have)} other indices" if key == "indices" and \
                    isinstance(have, list) else repr(have)
                raise ConfigError(f"{out} holds a subset of {what} ({shown}); "
                                  "use another --out, or pass --overwrite to start over")
        self.doc["configs"] = dict(found.get("configs") or {})
        self.fresh = False

    def complete(self, name: str) -> bool:
        if self.doc["configs"].get(name) != len(self.doc["indices"]):
            return False
        if self.output == "records":
            cell = catalog.Cell.from_name(name)
            return storage.exists(Layout(self.out).explanations(cell.model, cell.explainer),
                                  self.options)
        fs, path = storage.filesystem(storage.join(self.out, name), self.options)
        return bool(fs.glob(posixpath.join(path, "*.parquet")))

    def add(self, name: str, rows: int) -> None:
        with self._lock:
            self.doc["configs"][name] = rows
            with storage.atomic_write(self.url, "w", self.options) as handle:
                json.dump(self.doc, handle)
