"""Replacing a config's folder of shards all at once: the new shards are written into a
staging folder beside it (`{config}.tmp-XXXXXXXX`, which no `data_files` pattern matches) and
swapped in with two moves; what a killed export left is recovered by the next one.

On a local disk an export holds a lock (`flock`) on its staging folder until the swap is done,
and the steps that look at or move the folders of a config run under a lock of the export
folder: a second export of the same config at the same time stops with a clear error instead
of removing the first one's staging folder. On every filesystem the shards are counted before
the swap, so a staging folder that lost shards is never published.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from collections.abc import Iterator
from typing import Any

from dina_datasets import storage
from dina_datasets.errors import LayoutError
from dina_datasets.hf import card

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the shard count before the swap remains
    fcntl = None

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


def recover_all(out: str, storage_options: dict[str, Any] | None) -> list[str]:
    """`recover` every config of the export `out` that a killed export left mid-way (not
    those another export is writing now); the names of the configs recovered."""
    fs, root = storage.filesystem(out, storage_options)
    if not fs.isdir(root):
        return []
    names = sorted({posixpath.basename(p.rstrip("/")).split(storage.TMP_MARK)[0]
                    for p in fs.ls(root, detail=False)
                    if storage.TMP_MARK in posixpath.basename(p.rstrip("/")) and fs.isdir(p)})
    done = []
    with _guarded(fs, root):
        for name in names:
            if not _busy(fs, posixpath.join(root, name)):
                recover(out, name, storage_options)
                done.append(name)
    return done


def _flock(path: str, blocking: bool) -> int | None:
    """An exclusive `flock` on a local folder (its descriptor), None where it is held by
    another process (`blocking=False`) or where the platform has no `flock`."""
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def _guarded(fs: Any, root: str) -> Iterator[None]:
    """Hold the lock of the export folder `root` (local disks; elsewhere nothing)."""
    if not storage.is_local(fs):
        yield
        return
    os.makedirs(root, exist_ok=True)
    fd = _flock(root, blocking=True)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _busy(fs: Any, target: str) -> list[str]:
    """The folders of config `target` (itself, staging ones) locked by a running export."""
    if not storage.is_local(fs) or fcntl is None:
        return []
    busy = []
    for path in [target, *fs.glob(f"{target}{storage.TMP_MARK}*")]:
        if os.path.isdir(path):
            fd = _flock(path, blocking=False)
            if fd is None:
                busy.append(path)
            else:
                os.close(fd)
    return busy


@contextlib.contextmanager
def staged(out: str, name: str, storage_options: dict[str, Any] | None) -> Iterator[str]:
    """A new staging folder for config `name` of the export `out` (what a killed export left
    is recovered first), swapped in for the config's shards when the block ends; removed,
    the shards left as they were, when it raises.

    Raises LayoutError when another export of the same config into `out` is running (local
    disks); the block checks its shards with `check_staged` before it ends.
    """
    fs, root = storage.filesystem(out, storage_options)
    target = posixpath.join(root, name)
    stage = staging_folder(out, name)
    stage_path = storage.filesystem(stage, storage_options)[1]
    lock = None
    with _guarded(fs, root):
        busy = _busy(fs, target)
        if busy:
            raise LayoutError(f"another export of config {name!r} into {out} is running "
                              f"({posixpath.basename(busy[0])} is in use): wait for it to end, "
                              "or export into another folder")
        recover(out, name, storage_options)
        if storage.is_local(fs):
            os.makedirs(stage_path)
            lock = _flock(stage_path, blocking=True)
    try:
        try:
            yield stage
        except BaseException:
            remove(fs, stage, storage_options)
            raise
        with _guarded(fs, root):
            swap_in(stage, storage.join(out, name), storage_options)
    finally:
        if lock is not None:
            os.close(lock)


def check_staged(stage: str, names: list[str], storage_options: dict[str, Any] | None
                 ) -> None:
    """Raise LayoutError unless the staging folder `stage` holds exactly the shards `names`
    (another export removed it, or wrote into it, meanwhile)."""
    fs, path = storage.filesystem(stage, storage_options)
    fs.invalidate_cache(path)
    try:
        held = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))
    except FileNotFoundError:
        held = []
    shards = sorted(b for b in held if is_shard(b))
    if shards != sorted(names):
        raise LayoutError(f"the staging folder {stage} holds {len(shards)} of the "
                          f"{len(names)} shards written (another export of the same config "
                          "ran at the same time and removed or changed it): nothing was "
                          "replaced; run the export again, one at a time")
