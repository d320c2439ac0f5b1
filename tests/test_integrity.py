"""Integrity under concurrency and failure: chunk buffers are never shared by two holders
(`recordio.buffers.BufferPool`), and `storage.atomic_write` never shows a half-written file."""

from __future__ import annotations

import gc
import sys
import threading

import numpy as np
import pytest

from dina_datasets.recordio.buffers import BufferPool


def address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def test_concurrent_takers_never_share_a_buffer():
    """8 threads take a buffer at once, many times over: no two hold the same memory."""
    takers, trials = 8, 1000
    pool = BufferPool(size=takers)
    warm = [pool.take(64) for _ in range(takers)]
    del warm
    gc.collect()
    start, hold = threading.Barrier(takers), threading.Barrier(takers)
    got: list[list[int]] = [[] for _ in range(trials)]
    errors: list[BaseException] = []

    def taker() -> None:
        try:
            for trial in range(trials):
                start.wait()
                lease = pool.take(64)
                got[trial].append(address(lease))
                hold.wait()  # everyone holds a buffer now
                del lease
        except BaseException as error:  # reported below
            errors.append(error)
            start.abort()
            hold.abort()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show
    try:
        threads = [threading.Thread(target=taker) for _ in range(takers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    shared = [trial for trial, addresses in enumerate(got) if len(set(addresses)) != takers]
    assert all(len(addresses) == takers for addresses in got)
    assert shared == [], f"{len(shared)} of {trials} trials handed one buffer to two takers"


def test_a_held_buffer_is_not_handed_out_whatever_reference_counts_say(monkeypatch):
    """Ownership does not rest on reference counts (Python 3.14 borrows references, so
    `sys.getrefcount` may under-count): a count that says "free" changes nothing."""
    pool = BufferPool(size=2)
    first = pool.take(64)
    monkeypatch.setattr(sys, "getrefcount", lambda obj: 1)
    second = pool.take(64)
    assert not np.shares_memory(first, second)


def test_views_of_a_lease_keep_its_buffer_and_it_is_recycled_once_all_are_gone():
    pool = BufferPool(size=2)
    lease = pool.take(64)
    where = address(lease)
    lease[:] = 7
    numpy_view = lease[8:16]  # a numpy view: its base is the lease, not the pooled buffer
    bytes_view = np.frombuffer(memoryview(lease)[:8], np.uint8)
    del lease
    gc.collect()
    other = pool.take(64)
    assert address(other) != where
    recycled = {where, address(other)}
    other[:] = 0
    assert (numpy_view == 7).all() and (bytes_view == 7).all()  # nothing overwrote them
    del numpy_view
    gc.collect()
    third = pool.take(64)
    assert address(third) not in recycled  # bytes_view still holds `where`
    recycled.add(address(third))
    del bytes_view, other, third
    gc.collect()
    assert pool.free == 2  # the pool keeps `size` free buffers
    again = pool.take(64)
    assert address(again) in recycled  # nothing refers to it: the same memory again
    assert address(pool.take(32)) in recycled - {address(again)}


def test_buffer_pool_keeps_at_most_size_free_buffers_and_rejects_a_bad_size():
    pool = BufferPool(size=2)
    leases = [pool.take(16) for _ in range(5)]
    del leases
    gc.collect()
    assert pool.free == 2
    with pytest.raises(ValueError, match="size"):
        BufferPool(size=0)


def write_targets(tmp_path) -> list[str]:
    return [str(tmp_path / "local" / "table.bin"),
            f"memory://dina-integrity/{tmp_path.name}/table.bin"]


@pytest.fixture(params=["local", "memory"])
def target(request, tmp_path):
    from dina_datasets import storage

    url = write_targets(tmp_path)[["local", "memory"].index(request.param)]
    fs, path = storage.filesystem(url)
    fs.makedirs(fs._parent(path), exist_ok=True)
    fs.pipe_file(path, b"old content")
    yield url
    if request.param == "memory":
        fs.rm(fs._parent(path), recursive=True)


def read(url: str) -> bytes:
    from dina_datasets import storage

    fs, path = storage.filesystem(url)
    return fs.cat_file(path)


def listing(url: str) -> list[str]:
    from dina_datasets import storage

    fs, path = storage.filesystem(url)
    return sorted(name.rsplit("/", 1)[-1] for name in fs.ls(fs._parent(path), detail=False))


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_atomic_write_shows_the_old_file_until_the_new_one_is_complete(target, mode):
    from dina_datasets import storage

    new = b"new content, longer than the old"
    with storage.atomic_write(target, mode) as handle:
        handle.write(new[:9] if mode == "wb" else new[:9].decode())
        handle.flush()
        assert read(target) == b"old content"  # a reader sees the old file while writing
        handle.write(new[9:] if mode == "wb" else new[9:].decode())
        assert read(target) == b"old content"
    assert read(target) == new
    assert listing(target) == ["table.bin"]  # no temporary left


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_atomic_write_that_fails_leaves_the_old_content_and_no_temporary(target, mode):
    from dina_datasets import storage

    with pytest.raises(RuntimeError, match="interrupted"), \
            storage.atomic_write(target, mode) as handle:
        handle.write(b"partial" if mode == "wb" else "partial")
        handle.flush()
        raise RuntimeError("interrupted")
    assert read(target) == b"old content"
    assert listing(target) == ["table.bin"]


def test_atomic_write_that_fails_creates_nothing_where_no_file_was(tmp_path):
    from dina_datasets import storage

    for url in write_targets(tmp_path):
        try:
            with pytest.raises(RuntimeError), storage.atomic_write(url) as handle:
                handle.write(b"partial")
                raise RuntimeError("interrupted")
            assert not storage.exists(url)
            fs, path = storage.filesystem(url)
            parent = fs._parent(path)
            assert not fs.exists(parent) or fs.ls(parent) == []  # no temporary beside it
        finally:
            if fs.exists(fs._parent(path)):
                fs.rm(fs._parent(path), recursive=True)
