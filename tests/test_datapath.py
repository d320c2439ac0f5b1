"""The data path's guarantees: the sidecar index, layout guesses that fall back, the cache
keyed by its inputs, join keys never null, credentials, and reads without CRC checks."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from conftest import make_bucket, make_maps

import dina_datasets as dd
from dina_datasets import Layout, catalog, storage
from dina_datasets.generation.merge import concatenate
from dina_datasets.hf.source import Source
from dina_datasets.recordio import framing, index, reader
from dina_datasets.recordio.index import StaleIndexWarning


def frames(sizes: list[int], seed: int = 0) -> tuple[bytes, list[bytes]]:
    rng = np.random.default_rng(seed)
    datas = [rng.bytes(n) for n in sizes]
    return b"".join(framing.frame(d) for d in datas), datas


def read_all(info) -> list[bytes]:
    return [bytes(d) for _, d, _ in reader.iter_frames(info, 0, info.num_records)]


# ---- the sidecar index -------------------------------------------------------------------

def test_index_written_beside_our_files_and_used_without_a_scan(tmp_path, monkeypatch):
    url = str(tmp_path / "e.tfrecord")
    maps = [np.full((4, 4, 1), i, np.float32) for i in range(5)]
    dd.write_explanations(url, maps, index=range(5), image_id=[f"im{i}" for i in range(5)],
                          label=[1, 22, 333, 4444, 55555])  # varints: records of varying size
    found = index.read_index(url)
    assert found is not None and found.num_records == 5 and found.record_size is None
    assert found.keys["image_id"].tolist() == [f"im{i}" for i in range(5)]
    assert found.keys["label"].tolist() == [1, 22, 333, 4444, 55555]
    with open(url, "rb") as handle:
        import crc32c

        assert found.crc32c == f"{crc32c.crc32c(handle.read()):08x}"
    monkeypatch.setattr(reader, "_scan", lambda *a: pytest.fail("scanned despite the index"))
    info = dd.inspect(url)
    assert info.num_records == 5 and info.keys is not None
    assert [int(m[0, 0, 0]) for m in dd.read_explanations(url, 2, 5)] == [2, 3, 4]
    assert int(dd.read_explanation(url, 4)[0, 0, 0]) == 4


def test_a_stale_index_is_ignored_with_a_warning(tmp_path):
    url = str(tmp_path / "e.tfrecord")
    dd.write_explanations(url, [np.zeros((4, 4, 1), np.float32)] * 3, label=[1, 200, 3])
    with open(url + index.SUFFIX) as handle:
        stale = handle.read()
    dd.write_explanations(url, [np.ones((4, 4, 1), np.float32)] * 4, label=[1, 200, 3, 4000])
    with open(url + index.SUFFIX, "w") as handle:
        handle.write(stale)
    with pytest.warns(StaleIndexWarning, match="changed after the index was written"):
        info = dd.inspect(url)
    assert info.num_records == 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StaleIndexWarning)
        assert [float(m.sum()) for m in dd.read_explanations(url)] == [16.0] * 4


@pytest.mark.parametrize("content", ["{not json", '{"format": "other"}',
                                     '{"format": "dina-record-index", "version": 1, '
                                     '"num_records": 3, "file_size": 10, "record_size": 7}'])
def test_a_corrupt_index_is_ignored_with_a_warning(tmp_path, content):
    url = str(tmp_path / "e.tfrecord")
    dd.write_explanations(url, [np.full((4, 4, 1), i, np.float32) for i in range(3)])
    with open(url + index.SUFFIX, "w") as handle:
        handle.write(content)
    with pytest.warns(StaleIndexWarning, match="corrupt index"):
        info = dd.inspect(url)
    assert info.num_records == 3 and info.record_size is not None


def test_merge_joins_the_parts_indexes_without_rescanning(tmp_path, monkeypatch):
    parts = []
    for k in range(3):
        url = str(tmp_path / f"p{k}.tfrecord")
        dd.write_explanations(url, [np.full((4, 4, 1), 10 * k + i, np.float32)
                                    for i in range(k + 2)],
                              image_id=[f"im{k}{i}" for i in range(k + 2)],
                              label=[7 ** i for i in range(k + 2)])
        parts.append(url)
    out = str(tmp_path / "merged.tfrecord")
    monkeypatch.setattr(reader, "_scan", lambda *a: pytest.fail("scanned a part"))
    assert concatenate(parts, out, expected=9) == 9
    merged = index.read_index(out)
    monkeypatch.undo()
    os.rename(out + index.SUFFIX, str(tmp_path / "moved"))
    scanned = dd.inspect(out)
    assert np.array_equal(merged.offsets, scanned.offsets)
    assert merged.keys["image_id"].tolist() == [f"im{k}{i}" for k in range(3)
                                               for i in range(k + 2)]
    with open(out, "rb") as handle:
        import crc32c

        assert merged.crc32c == f"{crc32c.crc32c(handle.read()):08x}"


# ---- a fixed size that was only a guess ----------------------------------------------------

def test_first_and_last_records_alike_is_not_a_fixed_size_locally(tmp_path):
    data, datas = frames([10, 36, 10])  # 26 + 52 + 26 bytes: a multiple of 26
    path = tmp_path / "f.tfrecord"
    path.write_bytes(data)
    info = dd.inspect(str(path))
    assert info.record_size is None and info.num_records == 3
    assert read_all(info) == datas


def test_a_remote_guess_contradicted_while_reading_falls_back_to_a_scan():
    # 28 records of 10 bytes and one of 36 at record 2, whose data holds a valid-looking
    # header where a fixed-size file would have record 3: the sampled headers all agree
    big = bytearray(np.random.default_rng(1).bytes(36))
    fake = framing.frame(b"x" * 10)[:framing.HEADER]
    big[26 - framing.HEADER:26] = fake
    sizes = [10] * 28
    datas = [np.random.default_rng(i).bytes(10) for i in range(28)]
    datas.insert(2, bytes(big))
    sizes.insert(2, 36)
    url = "memory://guess/f.tfrecord"
    fs, path = storage.filesystem(url)
    fs.pipe_file(path, b"".join(framing.frame(d) for d in datas))
    info = dd.inspect(url)
    assert info.record_size == 26 and not info.exact and info.num_records == 30  # the guess
    got = read_all(info)
    assert got == datas  # every record once, in order, after the fallback


# ---- the prepared cache follows its inputs --------------------------------------------------

def test_rewritten_score_file_rebuilds_the_cache_and_nothing_changed_reuses_it(tmp_path):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=4)
    cache = str(tmp_path / "cache")
    first = dd.load_dataset("dina", "DinoV2-Rise", split="validation", data_url=root,
                            cache_dir=cache)
    again = dd.load_dataset("dina", "DinoV2-Rise", split="validation", data_url=root,
                            cache_dir=cache)
    assert again.cache_files == first.cache_files  # reused
    url = Layout(root).scores("DinoV2", "Rise", "Deletion")
    with storage.atomic_write(url, "w") as handle:
        json.dump([9.0, 8.0, 7.0, 6.0], handle)
    fresh = dd.load_dataset("dina", "DinoV2-Rise", split="validation", data_url=root,
                            cache_dir=cache)
    assert fresh["Deletion"] == [9.0, 8.0, 7.0, 6.0]
    assert fresh.cache_files != first.cache_files


def test_image_id_is_never_null_when_only_some_records_carry_it(tmp_path):
    root = str(tmp_path / "bucket")
    cell = catalog.Cell.from_name("DinoV2-Rise")
    maps = make_maps(3, 1)
    records = [{"explanations": maps[0], "image_id": "a"}, {"explanations": maps[1]},
               {"explanations": maps[2], "image_id": "c"}]
    dd.write_records(Layout(root).explanations(cell.model, cell.explainer), records)
    source = Source.open(cell, root)
    table = next(source.tables())
    assert table.column("image_id").null_count == 0
    assert table.column("image_id").to_pylist() == ["a", "", "c"]


# ---- reads without CRC checks -------------------------------------------------------------

def test_check_crc_false_skips_data_crcs_on_every_path(tmp_path):
    root = str(tmp_path / "bucket")
    maps = make_bucket(root, ["DinoV2-Rise"], n=3, scores=False)["DinoV2-Rise"]
    url = Layout(root).explanations("DinoV2", "Rise")
    with open(url, "rb") as handle:
        data = bytearray(handle.read())
    record = len(data) // 3
    data[record + 100] ^= 0x01  # inside the map bytes of record 1
    with open(url, "wb") as handle:
        handle.write(data)
    os.remove(url + index.SUFFIX)
    with pytest.raises(dd.RecordError, match="data CRC mismatch"):
        list(dd.read_explanations(url))
    loose = list(dd.read_explanations(url, check_crc=False))
    assert np.array_equal(loose[0], maps[0]) and not np.array_equal(loose[1], maps[1])
    cell = catalog.Cell.from_name("DinoV2-Rise")
    with pytest.raises(dd.RecordError, match="data CRC mismatch"):
        list(Source.open(cell, root).tables())
    table = next(Source.open(cell, root, check_crc=False).tables())
    assert table.num_rows == 3


# ---- credentials --------------------------------------------------------------------------

def test_gs_credentials_anonymous_only_for_the_public_bucket(monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    assert storage.resolve_options("gs://xai-deel/a") == {"token": "anon"}
    assert storage.resolve_options("gs://my-bucket/a") == {}  # gcsfs's own resolution
    assert storage.resolve_options("gs://my-bucket/a", {"token": "/k.json"}) == \
        {"token": "/k.json"}
    assert storage.resolve_options("gs://xai-deel/a", {"token": "/k.json"}) == \
        {"token": "/k.json"}
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:9")
    assert storage.resolve_options("gs://my-bucket/a") == \
        {"endpoint_url": "http://127.0.0.1:9", "token": "anon"}


def test_storage_option_flag_reaches_the_command(tmp_path, monkeypatch):
    from dina_datasets import cli

    seen = {}

    def fake_run(args):
        seen.update(args.storage_options or {})
        return 0

    import dina_datasets.cli.configs as configs

    monkeypatch.setattr(configs, "run", fake_run)
    assert cli.main(["configs", "--storage-option", "token=anon", "--storage-option",
                     "requester_pays=true", "--storage-option", "project=p-1"]) == 0
    assert seen == {"token": "anon", "requester_pays": True, "project": "p-1"}
    with pytest.raises(SystemExit):
        cli.main(["configs", "--storage-option", "novalue"])


def test_buffer_pool_recycles_only_buffers_nothing_refers_to():
    from dina_datasets.recordio.buffers import BufferPool

    def address(array: np.ndarray) -> int:
        return array.__array_interface__["data"][0]

    pool = BufferPool(size=2)
    first = pool.take(64)
    first_at = address(first)
    del first
    again = pool.take(64)
    assert address(again) == first_at  # nothing referred to it: recycled
    view = np.frombuffer(memoryview(again)[:8], np.uint8)
    del again
    other = pool.take(64)
    assert address(other) != first_at  # a view of it is alive: a fresh one
    assert view.base is not None


def test_kept_maps_stay_intact_while_the_stream_recycles_buffers(tmp_path):
    url = str(tmp_path / "e.tfrecord")
    maps = make_maps(40, 3, size=64)
    dd.write_explanations(url, maps)
    kept = list(dd.read_explanations(url, chunk_bytes=3 * maps[0].nbytes))
    assert all(np.array_equal(k, m) for k, m in zip(kept, maps, strict=True))
    dropped = [float(m[0, 0, 0]) for m in dd.read_explanations(url, chunk_bytes=1 << 14)]
    assert dropped == [float(m[0, 0, 0]) for m in maps]
