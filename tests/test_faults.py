"""Record I/O under faults of the storage layer: a read that comes back short and then a
metadata failure, a transient error on the sidecar index or on the sampled-header probe, an
index beside a file it does not describe, a crash while a writer publishes its file and
index. The faults come from a real fsspec filesystem (an in-memory one whose calls fail
as planned), not from mocks of our code."""

from __future__ import annotations

import os
import warnings
from typing import ClassVar

import fsspec
import numpy as np
import pytest
from conftest import BUCKET
from fsspec.implementations.memory import MemoryFileSystem

import dina_datasets as dd
from dina_datasets import storage
from dina_datasets.recordio import index as sidecar
from dina_datasets.recordio import reader, records


class FaultyFS(MemoryFileSystem):
    """memory:// with its own store, whose calls fail as `plan` says: `plan[name]` is a list
    of what the next calls of that method do (an exception to raise, "short" for a read
    that returns half of what was asked, None for a normal call); `calls` counts them."""

    protocol = "faulty"
    store: ClassVar[dict] = {}
    pseudo_dirs: ClassVar[list] = [""]
    plan: ClassVar[dict[str, list]] = {}
    calls: ClassVar[dict[str, int]] = {}

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(str(path).removeprefix("faulty://"))

    def _fault(self, name: str, path: str = ""):
        FaultyFS.calls[name] = FaultyFS.calls.get(name, 0) + 1
        steps = FaultyFS.plan.get(name)
        step = steps.pop(0) if steps else None
        if isinstance(step, tuple):  # (suffix, what): only calls on paths ending so
            if not str(path).endswith(step[0]):
                steps.insert(0, step)
                return None
            step = step[1]
        if isinstance(step, BaseException):
            raise step
        return step

    def cat_file(self, path, start=None, end=None, **kwargs):
        step = self._fault("cat_file", path)
        data = super().cat_file(path, start=start, end=end, **kwargs)
        return data[:len(data) // 2] if step == "short" else data

    def cat_ranges(self, paths, starts, ends, max_gap=None, on_error="return", **kwargs):
        step = self._fault("cat_ranges")
        out = super().cat_ranges(paths, starts, ends, max_gap=max_gap, on_error=on_error,
                                 **kwargs)
        return [ConnectionError("503 on one range"), *out[1:]] if step == "first" else out

    def size(self, path):
        self._fault("size", path)
        return super().size(path)

    def mv(self, path1, path2, **kwargs):
        self._fault("mv", path2)
        return super().mv(path1, path2, **kwargs)


@pytest.fixture
def faulty(monkeypatch):
    """A fresh faulty:// filesystem, quick back-off, no layout kept from another test."""
    fsspec.register_implementation("faulty", FaultyFS, clobber=True)
    FaultyFS.store.clear()
    FaultyFS.pseudo_dirs[:] = [""]
    FaultyFS.plan, FaultyFS.calls = {}, {}
    monkeypatch.setattr(storage, "BACKOFF", 0.001)
    reader._LAYOUTS.clear()
    yield FaultyFS()
    FaultyFS.plan = {}
    reader._LAYOUTS.clear()


def write_cell(url: str, ids: list[str], shape=(4, 4), seed=0) -> list[np.ndarray]:
    maps = [np.random.default_rng(seed + i).random(shape, np.float32) for i in range(len(ids))]
    dd.write_explanations(url, maps, image_id=ids, index=list(range(len(ids))))
    return maps


# Issue 22 item 5: a short read followed by a metadata failure


def test_a_short_read_then_a_failed_size_call_is_retried(faulty):
    faulty.pipe_file("/f.bin", bytes(range(200)))
    FaultyFS.plan = {"cat_file": ["short"], "size": [ConnectionError("reset by peer")]}
    got = storage.read_range(faulty, "/f.bin", 10, 110, url="faulty://f.bin")
    assert got == bytes(range(10, 110))
    assert FaultyFS.calls["cat_file"] == 2


def test_short_reads_with_failing_size_calls_end_in_a_transfer_error(faulty):
    faulty.pipe_file("/f.bin", bytes(range(200)))
    FaultyFS.plan = {"cat_file": ["short"] * 50,
                     "size": [ConnectionError("reset by peer")] * 50}
    with pytest.raises(dd.TransferError, match=r"faulty://f.bin.*6 attempts"):
        storage.read_range(faulty, "/f.bin", 10, 110, url="faulty://f.bin")
    assert FaultyFS.calls["cat_file"] == storage.RETRIES + 1


def test_a_file_that_really_is_short_is_returned_short(faulty):
    faulty.pipe_file("/f.bin", bytes(range(50)))
    assert storage.read_range(faulty, "/f.bin", 10, 110, url="faulty://f.bin") == \
        bytes(range(10, 50))
    assert FaultyFS.calls["cat_file"] == 1


# Issue 22 item 3: one transient error must not cost a full scan, nor be kept


IDS = [f"n0{i:07d}_val" for i in range(12)]


def test_a_transient_error_on_the_index_is_retried(faulty):
    url = "faulty://bucket/cell/explanations.tfrecord"
    write_cell(url, IDS)
    FaultyFS.plan = {"cat_file": [(".index.json", ConnectionError("503 Service Unavailable"))]}
    FaultyFS.calls = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "ignoring the index" warning
        info = reader.inspect(url)
    assert info.keys is not None and list(info.keys["image_id"]) == IDS
    assert FaultyFS.calls["cat_file"] == 2  # the index twice, no scan of the file


def test_a_layout_built_because_the_index_was_unreadable_is_not_kept(faulty):
    url = "faulty://bucket/cell/explanations.tfrecord"
    write_cell(url, IDS)
    FaultyFS.plan = {"cat_file": [(".index.json", PermissionError("403 for now"))]}
    with pytest.warns(sidecar.StaleIndexWarning, match="ignoring the index"):
        first = reader.inspect(url)
    assert first.keys is None and first.num_records == len(IDS)
    again = reader.inspect(url)  # the index is readable again: it is used
    assert again.keys is not None and list(again.keys["image_id"]) == IDS


def test_a_transient_error_on_the_sampled_header_probe_is_retried(faulty):
    url = "faulty://bucket/plain.tfrecord"
    maps = [np.full((4, 4), i, np.float32) for i in range(40)]
    records.write_records(url, ({"explanations": m} for m in maps))  # no index
    FaultyFS.plan = {"cat_ranges": ["first"]}
    FaultyFS.calls = {}
    info = reader.inspect(url)
    assert info.record_size == records.explanation_record_size((4, 4))  # not a scan
    assert info.offsets is None and FaultyFS.calls["cat_ranges"] == 1
    assert [float(m[0, 0]) for m in dd.read_explanations(url, storage_options=None)] == \
        list(range(40))


def test_an_index_that_stays_unreachable_is_a_transfer_error(faulty):
    url = "faulty://bucket/cell/explanations.tfrecord"
    write_cell(url, IDS)
    FaultyFS.plan = {"cat_file": [(".index.json", ConnectionError("503"))] * 20}
    with pytest.raises(dd.TransferError, match="index.json"):
        reader.inspect(url)


def test_a_short_read_of_the_index_is_retried_and_the_index_kept(faulty):
    url = "faulty://bucket/cell/explanations.tfrecord"
    write_cell(url, IDS)
    FaultyFS.plan = {"cat_file": [(".index.json", "short")]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not "ignoring the corrupt index"
        info = reader.inspect(url)
    assert info.keys is not None and list(info.keys["image_id"]) == IDS


def test_reads_that_stay_short_of_a_whole_file_are_a_transfer_error_not_a_truncation(faulty):
    url = "faulty://bucket/cell/explanations.tfrecord"
    maps = write_cell(url, IDS)
    reader.inspect(url)  # the layout, from the index
    FaultyFS.plan = {"cat_file": [(".tfrecord", "short")] * 50}
    with pytest.raises(dd.TransferError, match=r"explanations.tfrecord.*short"):
        records.read_record(url, 3)
    FaultyFS.plan = {}
    assert np.array_equal(records.read_record(url, 3)["explanations"], maps[3])


# Issue 22 item 2: an index beside a file it does not describe, signatures of other kinds


def copy_to(faulty, folder, names, prefix="/copied"):
    for name in names:
        faulty.pipe_file(f"{prefix}/{name}", (folder / name).read_bytes())


def test_a_copied_index_is_used_while_its_file_is_the_same(faulty, tmp_path):
    write_cell(str(tmp_path / "explanations.tfrecord"), IDS)
    copy_to(faulty, tmp_path, ["explanations.tfrecord", "explanations.tfrecord.index.json"])
    url = "faulty://copied/explanations.tfrecord"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = sidecar.read_index(url)
    assert found is not None and found.signature.startswith("mtime=")  # kinds differ
    assert list(found.keys["image_id"]) == IDS


def test_a_copied_index_is_not_used_for_a_replaced_file_of_the_same_size(faulty, tmp_path):
    write_cell(str(tmp_path / "explanations.tfrecord"), IDS)
    copy_to(faulty, tmp_path, ["explanations.tfrecord", "explanations.tfrecord.index.json"])
    other = tmp_path / "other"
    other.mkdir()
    write_cell(str(other / "explanations.tfrecord"), [i.replace("n0", "n1") for i in IDS],
               seed=100)
    assert (other / "explanations.tfrecord").stat().st_size == \
        (tmp_path / "explanations.tfrecord").stat().st_size
    copy_to(faulty, other, ["explanations.tfrecord"])  # the file replaced, not its index
    url = "faulty://copied/explanations.tfrecord"
    with pytest.warns(sidecar.StaleIndexWarning, match="image_id"):
        assert sidecar.read_index(url) is None
    with pytest.warns(sidecar.StaleIndexWarning):
        info = reader.inspect(url)
    assert info.keys is None and info.num_records == len(IDS)


def test_maps_rewritten_with_the_same_images_change_their_signature_under_a_copied_index(
        faulty, tmp_path):
    """A sample of records vouches for the index's keys, not for its CRC: the maps' stamp
    (what tells an evaluation's old parts from new maps) must not come from it."""
    from dina_datasets.runs import settings

    write_cell(str(tmp_path / "explanations.tfrecord"), IDS, seed=0)
    copy_to(faulty, tmp_path, ["explanations.tfrecord", "explanations.tfrecord.index.json"])
    url = "faulty://copied/explanations.tfrecord"
    before = settings.maps_signature(url)
    other = tmp_path / "other"
    other.mkdir()
    write_cell(str(other / "explanations.tfrecord"), IDS, seed=100)  # new maps, same images
    copy_to(faulty, other, ["explanations.tfrecord"])  # the file replaced, not its index
    reader._LAYOUTS.clear()
    assert settings.maps_signature(url) != before
    found = sidecar.read_index(url)  # its keys still hold
    assert found is not None and list(found.keys["image_id"]) == IDS


# Issue 22 item 9: a crash while a writer publishes its file and its index


@pytest.mark.parametrize("old", [False, True], ids=["new file", "over an old file"])
@pytest.mark.parametrize("crash_at", [1, 2, 3])
def test_a_crash_while_publishing_never_leaves_a_file_without_its_keys(faulty, crash_at, old):
    """The writer's renames fail at the `crash_at`-th: whatever is published, the keys a
    reader gets are those of the file that is there, and a new file comes with its keys."""
    url = "faulty://w/explanations.tfrecord"
    other = [i.replace("n0", "n1") for i in IDS]  # an old file of the same size
    if old:
        write_cell(url, other, seed=100)
    FaultyFS.plan = {"mv": [None] * (crash_at - 1) + [OSError("crash")]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            write_cell(url, IDS)
        except OSError as err:
            assert "crash" in str(err)
        FaultyFS.plan = {}
        reader._LAYOUTS.clear()
        if not faulty.exists(url):
            assert not old
            return
        there = [r["image_id"].decode() for r in records.read_records(url, tensors=frozenset())]
        info = reader.inspect(url)
    keys = None if info.keys is None else list(info.keys["image_id"])
    if there == IDS:
        assert keys == IDS, "the new file was published without its keys"
    else:
        assert there == other and keys in (None, other)


def test_on_gcs_a_copied_index_is_checked_against_the_stores_crc(emulator, tmp_path):
    """A folder copied to a bucket: the index's mtime cannot be compared with a generation,
    and GCS keeps each object's CRC-32C, which the index's must equal."""
    server, local, _ = emulator
    options = {"endpoint_url": server.endpoint}
    url = f"{BUCKET}/ResNet50/Saliency/explanations.tfrecord"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = sidecar.read_index(url, options)
    assert found is not None and found.signature.startswith("mtime=")
    rows = list(records.read_records(f"{local}/ResNet50/Saliency/explanations.tfrecord"))
    other = str(tmp_path / "other.tfrecord")
    records.write_records(other, rows[::-1])  # the same records in another order
    assert os.path.getsize(other) == found.file_size
    fs, _ = storage.filesystem(url, options)
    fs.put(other, "xai-deel/ResNet50/Saliency/explanations.tfrecord")  # not its index
    fs.invalidate_cache()
    reader._LAYOUTS.clear()
    with pytest.warns(sidecar.StaleIndexWarning, match="CRC-32C"):
        assert sidecar.read_index(url, options) is None


@pytest.mark.parametrize("crash_at", [1, 2, 3])
def test_a_crash_while_merging_never_leaves_a_file_without_its_keys(faulty, crash_at):
    """`dina merge` publishes like the writer: the merged file is never there without the
    keys of its records, whichever rename fails."""
    from dina_datasets.generation.merge import concatenate

    parts = ["faulty://p/0.tfrecord", "faulty://p/1.tfrecord"]
    write_cell(parts[0], IDS[:6])
    write_cell(parts[1], IDS[6:], seed=6)
    url = "faulty://m/explanations.tfrecord"
    FaultyFS.plan = {"mv": [None] * (crash_at - 1) + [OSError("crash")]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            concatenate(parts, url)
        except OSError as err:
            assert "crash" in str(err)
        FaultyFS.plan = {}
        reader._LAYOUTS.clear()
        if not faulty.exists(url):
            return
        info = reader.inspect(url)
    assert info.keys is not None and list(info.keys["image_id"]) == IDS, \
        "the merged file was published without its keys"
