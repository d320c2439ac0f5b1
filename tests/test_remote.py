"""Concurrent ranged reads, batched random access, random-access datasets and `dina subset`,
through a real GCS server (gcp-storage-emulator) and a fault proxy on 127.0.0.1."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from conftest import BUCKET, RECORD, make_maps
from gcs_server import FaultProxy

import dina_datasets as dd
from dina_datasets import Layout, catalog, storage
from dina_datasets.cli import main
from dina_datasets.hf.source import Source
from dina_datasets.recordio import planner

SALIENCY = f"{BUCKET}/ResNet50/Saliency/explanations.tfrecord"
SMALL = f"{BUCKET}/small/explanations.tfrecord"
SMALL_N = 40


def opts(server) -> dict:
    return {"endpoint_url": server.endpoint}


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def plain(row: dict) -> dict:
    """A row with comparable values: map bytes, Python scalars, NaN as a string."""
    out = {}
    for key, value in row.items():
        if key == "explanation":
            out[key] = (np.asarray(value).shape, np.asarray(value).tobytes())
            continue
        value = value.item() if isinstance(value, np.generic) else value
        out[key] = "nan" if isinstance(value, float) and math.isnan(value) else value
    return out


@pytest.fixture(scope="module")
def small(emulator):
    """40 small records (8x8x1 maps, no keys) in the bucket: many requests, little data."""
    maps = make_maps(SMALL_N, 1, seed=5, size=8)
    dd.write_explanations(SMALL, maps, storage_options=opts(emulator[0]))
    return maps, storage.filesystem(SMALL, opts(emulator[0]))[0].size(
        SMALL.removeprefix("gs://")) // SMALL_N


@pytest.fixture
def proxy(emulator):
    server = FaultProxy(emulator[0].port, delay=0.02)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def builder_rows(emulator, tmp_path_factory):
    """The builder's rows of each config of the local copy (`with_format("numpy")`)."""
    local = emulator[1]
    cache = str(tmp_path_factory.mktemp("cache"))
    return {name: [plain(r) for r in dd.load_dataset(
        "dina", name, data_url=local, split="validation", cache_dir=cache).with_format("numpy")]
        for name in ("ResNet50-Saliency", "DinoV2-Rise")}


def scores(layout: Layout, config: str, metric: str) -> list:
    with open(layout.scores(*config.split("-"), metric)) as handle:
        return json.load(handle)


def media(proxy) -> list:
    return [r for r in proxy.requests if r.media and ".index.json" not in r.target]


def test_stream_keeps_a_window_of_whole_record_requests(emulator, proxy, small):
    maps, size = small
    got = list(dd.read_explanations(SMALL, chunk_bytes=2 * size, window=4,
                                    storage_options=opts(proxy)))
    assert len(got) == SMALL_N and all(same(g, m) for g, m in zip(got, maps, strict=True))
    assert 2 <= proxy.max_in_flight <= 4
    ranges = [r.headers["range"] for r in media(proxy)]
    assert len(ranges) == SMALL_N // 2
    for text in ranges:
        lo, hi = map(int, text.removeprefix("bytes=").split("-"))
        assert lo % size == 0 and (hi + 1 - lo) == 2 * size  # whole records, two each


def test_stream_reads_no_further_ahead_than_its_window(emulator, proxy, small):
    maps, size = small
    stream = dd.read_explanations(SMALL, chunk_bytes=size, window=3,
                                  storage_options=opts(proxy))
    assert same(next(stream), maps[0])
    time.sleep(0.3)  # every request the window allows has been answered by now
    assert len(media(proxy)) == 1 + 3  # the chunk being read, and three ahead
    rest = list(stream)
    assert all(same(g, m) for g, m in zip(rest, maps[1:], strict=True))


PLANS = {
    "503s": lambda n, r: "503" if n in (1, 3, 4, 9) else None,
    "cuts": lambda n, r: ("cut", 100) if n in (2, 5, 6) else None,
    "cut after headers": lambda n, r: ("cut", 0) if n in (1, 2, 3) else None,
    "mixed": lambda n, r: {1: "503", 2: ("cut", 7), 4: "503", 5: ("cut", 1), 8: "503"}.get(n),
}


@pytest.mark.parametrize("plan", PLANS, ids=list(PLANS))
def test_faults_inside_windows_still_give_every_record_once_in_order(emulator, proxy, small,
                                                                     fast_retries, plan):
    maps, size = small
    proxy.plan = PLANS[plan]
    got = list(dd.read_explanations(SMALL, chunk_bytes=3 * size, window=4,
                                    storage_options=opts(proxy)))
    assert len(got) == SMALL_N and all(same(g, m) for g, m in zip(got, maps, strict=True))
    assert any(r.fault for r in proxy.requests) and proxy.max_in_flight >= 2
    picks = [39, 0, 7, 8, 9, 21, 7]
    at = dd.read_explanations_at(SMALL, picks, storage_options=opts(proxy), window=4)
    assert all(same(g, maps[i]) for g, i in zip(at, picks, strict=True))


def test_builder_chunks_are_read_as_concurrent_requests(emulator, proxy, fast_retries,
                                                      monkeypatch):
    """A builder chunk of a remote file goes out as ranged requests of whole records through the
    source's window; the tables equal the local ones, faults included."""
    local = emulator[1]
    monkeypatch.setattr(planner, "RANGE_BYTES", 2 * RECORD)
    cell = catalog.Cell.from_name("ResNet50-Saliency")
    remote = Source.open(cell, BUCKET, storage_options=opts(proxy))
    here = Source.open(cell, local)
    faults = iter(["503", ("cut", 1000)])
    proxy.plan = lambda n, r: next(faults, None)  # the first two record reads fail
    proxy.requests.clear()
    got = remote.chunk_table(0, 6, remote.schema(), "array")
    assert got.equals(here.chunk_table(0, 6, here.schema(), "array"))
    sizes = sorted(r.body_bytes for r in media(proxy) if not r.fault)
    assert sizes == [2 * RECORD] * 3 and proxy.max_in_flight >= 2


def test_random_access_coalesces_neighbours_and_moves_only_the_records(emulator, proxy,
                                                                       small):
    maps, size = small
    picks = [30, 2, 3, 4, 17, 3, 31, 2]
    got = dd.read_explanations_at(SMALL, picks, storage_options=opts(proxy))
    assert [g.tobytes() for g in got] == [maps[i].tobytes() for i in picks]
    assert got[1] is got[7]  # a duplicate is read once, returned at each position
    reads = media(proxy)
    # runs: [2, 5), [17, 18), [30, 32): one ranged read each, nothing else of the file
    assert sorted(r.body_bytes for r in reads) == sorted([3 * size, size, 2 * size])
    assert proxy.max_in_flight >= 2
    records = dd.read_records_at(SALIENCY, [5, 0], storage_options=opts(proxy))
    assert [r["index"] for r in records] == [5, 0]  # the keys come with the maps
    assert same(records[0]["explanations"], emulator[2]["ResNet50-Saliency"][5])


def test_an_unchanged_files_layout_is_kept_and_a_rewritten_one_is_read_again(emulator,
                                                                              proxy):
    url = f"{BUCKET}/kept/explanations.tfrecord"
    first, second = make_maps(6, 1, seed=7, size=8), make_maps(6, 1, seed=8, size=8)
    dd.write_explanations(url, first, storage_options=opts(emulator[0]))  # with its index

    def index_reads() -> int:  # downloads of the index (its size asked besides is metadata)
        return sum(".index.json" in r.target for r in proxy.requests
                   if r.method == "GET" and r.media)

    assert same(dd.read_explanations_at(url, [1], storage_options=opts(proxy))[0], first[1])
    assert index_reads() == 1
    before = len(media(proxy))
    for i in (4, 2):  # the same file version: its layout is kept, one ranged read each
        assert same(dd.read_explanations_at(url, [i], storage_options=opts(proxy))[0],
                    first[i])
    assert index_reads() == 1 and len(media(proxy)) == before + 2
    dd.write_explanations(url, second, storage_options=opts(emulator[0]))  # a new generation
    assert same(dd.read_explanations_at(url, [1], storage_options=opts(proxy))[0], second[1])
    assert index_reads() == 2


def test_out_of_range_indices_raise_before_any_record_is_read(emulator, proxy, small):
    for bad in ([0, SMALL_N], [-1], [2.0], 5):
        with pytest.raises(dd.RecordIndexError) as info:
            dd.read_explanations_at(SMALL, bad, storage_options=opts(proxy))
        assert SMALL in str(info.value) or "integers" in str(info.value)
    with pytest.raises(dd.RecordIndexError, match=f"use 0 <= index < {SMALL_N}"):
        dd.read_explanations_at(SMALL, [3, SMALL_N], storage_options=opts(proxy))
    assert media(proxy) == []
    assert dd.read_explanations_at(SMALL, [], storage_options=opts(proxy)) == []


def test_random_access_dataset_rows_equal_the_builders(emulator, proxy, builder_rows):
    local = emulator[1]
    for name, want in builder_rows.items():
        remote = dd.RandomAccessDataset(name, data_url=BUCKET, storage_options=opts(proxy))
        here = dd.RandomAccessDataset(name, data_url=local)
        assert len(remote) == len(here) == len(want) == 6
        assert [plain(r) for r in remote] == [plain(r) for r in here] == want
        assert plain(remote[4]) == want[4] and plain(remote[-1]) == want[5]
        assert [plain(r) for r in remote[[5, 0, 5]]] == [want[5], want[0], want[5]]
        assert [plain(r) for r in remote.__getitems__([3, 1])] == [want[3], want[1]]
        assert [plain(r) for r in remote[1:4]] == want[1:4]
        assert list(remote.features) == list(want[0])
        twice = remote[[2, 2]]
        assert twice[0] is not twice[1] and plain(twice[0]) == plain(twice[1])
        with pytest.raises(IndexError, match="holds 6 records"):
            remote[6]
        with pytest.raises(dd.RecordIndexError):
            remote[[0, -7]]


def test_torch_random_sampler_with_two_workers_over_gs(emulator, builder_rows, monkeypatch):
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    server = emulator[0]
    ds = dd.RandomAccessDataset("ResNet50-Saliency", data_url=BUCKET,
                                storage_options=opts(server))
    want = builder_rows["ResNet50-Saliency"]
    sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(0))
    # workers from a fork server: forking this process, which may hold TensorFlow's threads
    # from another test module, can crash the child (seen once); the dataset is pickled
    loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=2,
                        multiprocessing_context="forkserver")
    orders = []
    for _ in range(2):  # two epochs
        seen = []
        for batch in loader:
            assert batch["explanation"].shape[1:] == (224, 224, 3)
            for k, index in enumerate(batch["index"].tolist()):
                assert batch["explanation"][k].numpy().tobytes() == want[index]["explanation"][1]
                assert batch["image_id"][k] == want[index]["image_id"]
                assert batch["Insertion"][k].item() == want[index]["Insertion"]
                seen.append(index)
        assert sorted(seen) == list(range(6))
        orders.append(seen)
    assert orders[0] != orders[1]  # reshuffled each epoch


def test_grain_pipeline_with_global_shuffle_over_gs(emulator, builder_rows):
    import grain

    server = emulator[0]
    ds = dd.RandomAccessDataset("DinoV2-Rise", data_url=BUCKET, storage_options=opts(server))
    want = builder_rows["DinoV2-Rise"]
    pipeline = grain.MapDataset.source(ds).shuffle(seed=3).repeat(2).batch(4)
    got = [plain({k: v[i] for k, v in batch.items()}) for batch in pipeline
           for i in range(len(batch["index"]))]
    assert len(got) == 12
    for epoch in (got[:6], got[6:]):
        assert sorted(r["index"] for r in epoch) == list(range(6))
        assert all(r == want[r["index"]] for r in epoch)
    assert [r["index"] for r in got[:6]] != [r["index"] for r in got[6:]]  # per epoch
    loader = grain.DataLoader(data_source=ds, sampler=grain.samplers.IndexSampler(
        len(ds), shuffle=True, seed=1, num_epochs=1), worker_count=0)
    assert sorted(int(row["index"]) for row in loader) == list(range(6))


def test_subset_over_gs_is_joinable_sliced_and_resumable(emulator, proxy, builder_rows,
                                                         fast_retries, tmp_path, capsys):
    local = emulator[1]
    out = str(tmp_path / "subset")
    picks = [4, 1, 2, 3]
    args = ["subset", "--configs", "ResNet50-Saliency", "DinoV2-Rise", "--indices", "4",
            "1:4", "--data-url", BUCKET, "--out", out, "--jobs", "1",
            "--storage-option", f"endpoint_url={proxy.endpoint}"]
    # the second config's reads keep failing: the first stays complete, the second leaves
    # no explanations file
    proxy.plan = lambda n, r: "503" if "DinoV2" in r.target and "tfrecord" in r.target and \
        ".index" not in r.target else None
    assert main(args) == 2
    assert "dina subset: error:" in capsys.readouterr().err
    assert not (tmp_path / "subset" / "DinoV2" / "Rise" / "explanations.tfrecord").exists()
    first = (tmp_path / "subset" / "ResNet50" / "Saliency" / "explanations.tfrecord")
    stamp = first.stat().st_mtime_ns
    proxy.plan = lambda n, r: None
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "ResNet50-Saliency: 4 rows (already complete, skipped)" in printed
    assert "DinoV2-Rise: 4 rows (written)" in printed
    assert first.stat().st_mtime_ns == stamp
    for name, want in builder_rows.items():
        rows = [plain(r) for r in dd.load_dataset("dina", name, data_url=out,
                                                  split="validation",
                                                  cache_dir=str(tmp_path / "c"))
                .with_format("numpy")]
        assert rows == [want[i] for i in picks]  # `index` keeps the full file's position
        full = scores(Layout(local), name, "Insertion")
        assert scores(Layout(out), name, "Insertion") == [full[i] for i in picks]
        # the full RandomLogitMetric file covers the first 3 images only
        full = scores(Layout(local), name, "RandomLogitMetric")
        short = scores(Layout(out), name, "RandomLogitMetric")
        assert len(full) == 3 and short == [None, full[1], full[2], None]
    assert main([*args[:5], "0:2", *args[7:]]) == 2  # other indices into the same folder
    assert "other indices" in capsys.readouterr().err


def test_parquet_subset_and_export_write_to_gs_with_the_storage_options(emulator, fast_retries,
                                                                        builder_rows):
    import pyarrow.parquet as pq

    server = emulator[0]
    common = ["--data-url", BUCKET, "--storage-option", f"endpoint_url={server.endpoint}"]
    assert main(["subset", "--configs", "DinoV2-Rise", "--indices", "5,0", "--out",
                 f"{BUCKET}/hub-subset", "--format", "parquet", *common]) == 0
    assert main(["export", "DinoV2-Rise", "--out", f"{BUCKET}/hub-export",
                 *common]) == 0
    fs, _ = storage.filesystem(BUCKET, opts(server))
    fs.invalidate_cache()
    want = builder_rows["DinoV2-Rise"]
    for folder, indices in (("hub-subset", [5, 0]), ("hub-export", list(range(len(want))))):
        assert fs.isfile(f"xai-deel/{folder}/README.md")
        shards = sorted(fs.glob(f"xai-deel/{folder}/DinoV2-Rise/validation-*.parquet"))
        assert shards, folder
        got = []
        for shard in shards:
            with fs.open(shard, "rb") as handle:
                got += pq.read_table(handle, columns=["index"])["index"].to_pylist()
        assert got == [want[i]["index"] for i in indices], folder


def test_subset_as_parquet_and_bad_indices(emulator, builder_rows, tmp_path, capsys):
    import datasets

    server = emulator[0]
    out = str(tmp_path / "hub")
    common = ["--data-url", BUCKET, "--storage-option", f"endpoint_url={server.endpoint}"]
    assert main(["subset", "--configs", "DinoV2-Rise", "--indices", "5,0", "--out", out,
                 "--format", "parquet", *common]) == 0
    rows = [plain(r) for r in datasets.load_dataset(out, "DinoV2-Rise", split="validation")
            .with_format("numpy")]
    want = builder_rows["DinoV2-Rise"]
    assert rows == [want[5], want[0]]
    capsys.readouterr()
    for spec, message in (("7", "index 7 is outside"), ("9:12", "select no record"),
                          ("1,1", "index 1 is given 2 times"), ("a:b", "cannot read")):
        assert main(["subset", "--configs", "DinoV2-Rise", "--indices", spec,
                     "--out", str(tmp_path / "bad"), *common]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()
