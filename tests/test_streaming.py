"""Streaming: virtual shards, DataLoader workers, nodes, shuffling, resuming, formats."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import STREAM_RECORDS, make_bucket, make_maps, streaming
from datasets.distributed import split_dataset_by_node

from dina_datasets import Layout, inspect, write_explanations
from dina_datasets.hf.builder import DinaBuilder
from dina_datasets.hf.source import Source
from dina_datasets.recordio import buffers
from dina_datasets.recordio.planner import SPAN_MULTIPLE, chunks, spans

N = STREAM_RECORDS
CONFIG = "ResNet50-Saliency"


def indices(rows):
    return [int(row["index"]) for row in rows]


def test_plan_covers_every_record_once(tmp_path):
    url = str(tmp_path / "fixed.tfrecord")
    write_explanations(url, make_maps(37, 1, size=8))
    info = inspect(url)
    assert info.record_size is not None
    for num_shards in (None, 1, 2, 5, 16, 37, 100):
        ranges = spans(info, num_shards)
        assert ranges[0][0] == 0 and ranges[-1][1] == 37
        assert all(a < b for a, b in ranges)
        assert all(b == c for (_, b), (c, _) in itertools.pairwise(ranges))
        assert len(ranges) == min(37, num_shards or SPAN_MULTIPLE)
        sizes = [b - a for a, b in ranges]
        assert max(sizes) - min(sizes) <= 1
    assert chunks(info, 0, 37, chunk_bytes=info.record_size * 10) == \
        [(0, 10), (10, 20), (20, 30), (30, 37)]


def test_plan_of_records_of_varying_size(tmp_path):
    url = str(tmp_path / "varying.tfrecord")
    write_explanations(url, make_maps(20, 1, size=8), image_id=["x" * i for i in range(20)])
    info = inspect(url)
    assert info.record_size is None
    ranges = spans(info, 4)
    assert [r for pair in ranges for r in pair][::2] == [a for a, _ in ranges]
    covered = [i for a, b in ranges for i in range(a, b)]
    assert covered == list(range(20)) and len(ranges) == 4
    parts = chunks(info, 3, 17, chunk_bytes=int(info.offsets[5]))
    assert [i for a, b in parts for i in range(a, b)] == list(range(3, 17)) and len(parts) > 2


def test_streaming_rows_match_the_files(stream_bucket):
    root, maps = stream_bucket
    ds = streaming(root, num_shards=5)
    assert ds.num_shards == 5
    rows = list(ds.with_format("numpy"))
    assert indices(rows) == list(range(N))
    np.testing.assert_array_equal(np.stack([r["explanation"] for r in rows]), maps[CONFIG])
    plain = next(iter(streaming(root, "DinoV2-Rise")))
    assert np.asarray(plain["explanation"], np.float32).shape == (224, 224, 1)
    np.testing.assert_array_equal(np.asarray(plain["explanation"], np.float32),
                                  maps["DinoV2-Rise"][0])


def test_streaming_through_memory_filesystem():
    root = "memory://dina-stream-test"
    maps = make_bucket(root, ["DinoV2-Rise"], n=5)
    rows = list(streaming(root, "DinoV2-Rise", num_shards=2).with_format("numpy"))
    assert indices(rows) == list(range(5))
    np.testing.assert_array_equal(np.stack([r["explanation"] for r in rows]),
                                  maps["DinoV2-Rise"])


@pytest.mark.parametrize(("num_shards", "world_size"), [(4, 2), (6, 3), (5, 2), (12, 4)])
def test_split_dataset_by_node(stream_bucket, num_shards, world_size):
    root, _ = stream_bucket
    ds = streaming(root, num_shards=num_shards).select_columns(["index"])
    seen = [indices(split_dataset_by_node(ds, rank=rank, world_size=world_size))
            for rank in range(world_size)]
    flat = sorted(i for part in seen for i in part)
    assert flat == list(range(N)), seen
    assert all(part for part in seen)


def test_torch_dataloader_with_two_workers(stream_bucket):
    torch = pytest.importorskip("torch")
    root, maps = stream_bucket
    ds = streaming(root, num_shards=4).select_columns(["index", "explanation", "label",
                                                       "Insertion"])
    loader = torch.utils.data.DataLoader(ds.with_format("torch"), batch_size=2, num_workers=2)
    got_index, got_maps, got_scores = [], [], []
    for batch in loader:
        assert batch["explanation"].dtype == torch.float32
        assert batch["explanation"].shape[1:] == (224, 224, 3)
        got_index += batch["index"].tolist()
        got_maps.append(batch["explanation"].numpy())
        got_scores += batch["Insertion"].tolist()
    assert sorted(got_index) == list(range(N))
    order = np.argsort(got_index)
    np.testing.assert_array_equal(np.concatenate(got_maps)[order], maps[CONFIG])
    assert all(np.isfinite(got_scores))


def test_shard_after_shard_each_chunk_is_read_once(stream_bucket, monkeypatch):
    """datasets streams one shard per call; the read-ahead guesses the next shard's first
    chunk, which the next call takes instead of reading it again."""

    root, maps = stream_bucket
    reads = []
    real = buffers.read_chunk

    def counted(info, a, b, storage_options=None, **kw):
        reads.append((a, b))
        return real(info, a, b, storage_options, **kw)

    monkeypatch.setattr(buffers, "read_chunk", counted)
    rows = list(streaming(root, num_shards=4).with_format("numpy"))
    assert indices(rows) == list(range(N))
    np.testing.assert_array_equal(np.stack([r["explanation"] for r in rows]), maps[CONFIG])
    # N = 12: shard 3 takes its 3 records from the guess (6, 10), shard 4 all of (9, 12)
    assert sorted(reads) == [(0, 3), (3, 6), (6, 10), (9, 12)]
    reads.clear()
    shuffled = indices(streaming(root, num_shards=4).shuffle(seed=3, buffer_size=2))
    assert sorted(shuffled) == list(range(N)) and len(reads) <= 4 + 3


@pytest.mark.parametrize("stop", [1, 2, 4, 7, 11])
def test_state_dict_resumes_at_the_next_record(stream_bucket, stop):
    root, maps = stream_bucket
    ds = streaming(root, num_shards=3).with_format("numpy")
    it = iter(ds)
    head = [next(it) for _ in range(stop)]
    state = ds.state_dict()
    resumed = streaming(root, num_shards=3).with_format("numpy")
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert indices(head) + indices(rest) == list(range(N))
    np.testing.assert_array_equal(rest[0]["explanation"], maps[CONFIG][stop])


def test_reshard_splits_ranges_into_chunks(stream_bucket):
    root, _ = stream_bucket
    builder = DinaBuilder(config_name=CONFIG, data_url=root, num_shards=2)
    source = Source.open(builder.config.cell, root, chunk_bytes=3 * 602_184)
    parts = list(builder._generate_more_gen_kwargs([(0, 6)], source))
    assert [p["ranges"] for p in parts] == [[(0, 3)], [(3, 6)]]
    tables = list(builder._generate_tables([(0, 6), (6, N)], source))
    assert [len(t) for _, t in tables] == [3, 3, 3, 3]
    assert [str(k) for k, _ in tables] == ["(0, 0)", "(0, 1)", "(1, 0)", "(1, 1)"]


def test_default_shards_split_a_file_for_workers(stream_bucket):
    root, _ = stream_bucket
    ds = streaming(root)
    assert ds.num_shards == N  # 16 by default, at most one per record
    url = Layout(root).explanations("ResNet50", "Saliency")
    assert len(spans(inspect(url))) == N


def maps_of(column) -> np.ndarray:
    """The (n, H, W, C) maps of an Array3D column, through pyarrow's own conversion."""
    return np.stack([np.asarray(v, np.float32) for v in column.to_pylist()])


@pytest.mark.parametrize("chunk_records", [1, 5])
def test_tables_kept_by_the_caller_stay_intact(stream_bucket, chunk_records):
    """Read buffers are reused across chunks: the tables must own their maps."""
    root, maps = stream_bucket
    builder = DinaBuilder(config_name=CONFIG, data_url=root)
    source = Source.open(builder.config.cell, root, chunk_bytes=chunk_records * 602_184)
    tables = list(source.tables())
    assert [len(t) for t in tables][:2] == [chunk_records] * 2
    got = np.concatenate([maps_of(t.column("explanation")) for t in tables])
    np.testing.assert_array_equal(got, maps[CONFIG])


def test_torch_batches_with_two_workers(stream_bucket):
    torch = pytest.importorskip("torch")
    from dina_datasets.hf.batches import TorchBatches

    root, maps = stream_bucket
    ds = streaming(root, num_shards=4).select_columns(["index", "explanation"])
    loader = torch.utils.data.DataLoader(TorchBatches(ds, 2), batch_size=None, num_workers=2)
    batches = list(loader)
    assert all(isinstance(b["explanation"], torch.Tensor) for b in batches)
    index = torch.cat([b["index"] for b in batches]).tolist()
    assert sorted(index) == list(range(N)) and index != list(range(N))
    got = torch.cat([b["explanation"] for b in batches]).numpy()[np.argsort(index)]
    np.testing.assert_array_equal(got, maps[CONFIG])
    assert [len(b["index"]) for b in TorchBatches(ds, 5)] == [5, 5, 2]
    with pytest.raises(ValueError, match="batch_size"):
        TorchBatches(ds, 0)
