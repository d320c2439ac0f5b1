"""Replacing a config's folder of shards all at once: the new shards are written into a
staging folder beside it (`{config}.tmp-XXXXXXXX`, which no `data_files` pattern matches) and
swapped in with two moves; what a killed export left is recovered by the next one.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from typing import Any

from dina_datasets import storage
from dina_datasets.hf import card

OLD = f"{storage.TMP_MARK}old"  # the swapped-out folder, between the two moves


def staging_folder(out: str, name: str) -> str:
    """A new staging folder's URL for config `name` of the export `out`."""
    return storage.join(out, f"{name}{storage.TMP_MARK}{uuid.uuid4().hex[:8]}")


def is_shard(base: str) -> bool:
    """Whether a file name is a Parquet shard of an export."""
    return base.startswith(f"{card.SPLIT}-") and ".parquet" in base


def remove(fs: Any, url: str, storage_options: dict[str, Any] | None) -> None:
    """Remove a folder (a staging one) if it exists."""
    path = storage.filesystem(url, storage_options)[1]
    with contextlib.suppress(FileNotFoundError):
        if fs.exists(path):
            fs.rm(path, recursive=True)


def _move(fs: Any, src: str, dst: str) -> None:
    if storage.is_local(fs):
        os.rename(src, dst)  # one atomic rename of the whole folder
    else:
        fs.mv(src, dst, recursive=True)


def swap_in(staging: str, folder: str, storage_options: dict[str, Any] | None) -> None:
    """Replace the shards of `folder` by those of `staging` (other files of `folder` stay)."""
    fs, staged = storage.filesystem(staging, storage_options)
    target = storage.filesystem(folder, storage_options)[1]
    if not fs.isdir(target):
        _move(fs, staged, target)
        return
    old = f"{target}{OLD}"
    _move(fs, target, old)
    _move(fs, staged, target)
    _drop_old(fs, old, target)


def _drop_old(fs: Any, old: str, target: str) -> None:
    """Remove the swapped-out folder `old`, its files other than shards moved to `target`."""
    for entry in fs.ls(old, detail=False):
        base = posixpath.basename(entry.rstrip("/"))
        if not is_shard(base):
            _move(fs, entry, posixpath.join(target, base))
    fs.rm(old, recursive=True)


def recover(out: str, name: str, storage_options: dict[str, Any] | None) -> None:
    """Undo what an export of config `name` killed mid-way left under `out`: a staging
    folder (removed) or a swap stopped between its moves (finished, or the old shards
    restored when the new ones were not yet in place)."""
    fs, root = storage.filesystem(out, storage_options)
    if not fs.isdir(root):
        return
    target = posixpath.join(root, name)
    old = f"{target}{OLD}"
    if fs.isdir(old):
        if fs.isdir(target):
            _drop_old(fs, old, target)
        else:
            _move(fs, old, target)
    for entry in fs.glob(f"{target}{storage.TMP_MARK}*"):
        fs.rm(entry, recursive=True)
