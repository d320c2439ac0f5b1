"""Every corruption of a record file is reported with URL, record index and byte offset."""

from __future__ import annotations

import numpy as np
import pytest

import dina_datasets as dd
from dina_datasets.hf import arrow
from dina_datasets.recordio import buffers, planner
from dina_datasets.recordio import framing as tfrecord

N, SHAPE = 3, (4, 4, 1)


@pytest.fixture
def small_file(tmp_path):
    path = tmp_path / "small.tfrecord"
    dd.write_explanations(str(path), np.arange(N * 16, dtype=np.float32).reshape(N, *SHAPE))
    return path


def read_all(path) -> list[np.ndarray]:
    return [np.array(m) for m in dd.read_explanations(str(path))]


def test_every_single_byte_flip_is_reported(small_file, tmp_path):
    data = small_file.read_bytes()
    record = len(data) // N
    bad = tmp_path / "bad.tfrecord"
    for pos in range(len(data)):
        for xor in (0x01, 0x80, 0xFF):
            corrupted = bytearray(data)
            corrupted[pos] ^= xor
            bad.write_bytes(bytes(corrupted))
            with pytest.raises(dd.RecordError) as info:
                read_all(bad)
            err = info.value
            assert err.url == str(bad)
            assert err.index == pos // record, (pos, xor, str(err))
            assert err.offset is not None and err.index * record <= err.offset
            assert str(bad) in str(err) and f"record {err.index}" in str(err)


def read_as_builder(path) -> list[np.ndarray]:
    """The builder's path: planned chunks of 2 records, the fast path of map-only records."""
    info = dd.inspect(str(path))
    maps = []
    for a, b in planner.chunks(info, 0, info.num_records, chunk_bytes=2 * (info.size // N)):
        chunk_maps, _ = arrow.decode_chunk(buffers.read_chunk(info, a, b), SHAPE)
        maps.extend(chunk_maps)
    return maps


def test_every_single_byte_flip_is_reported_on_the_builders_path(small_file, tmp_path):
    data = small_file.read_bytes()
    record = len(data) // N
    assert np.array_equal(np.stack(read_as_builder(small_file)), np.stack(read_all(small_file)))
    bad = tmp_path / "bad.tfrecord"
    for pos in range(len(data)):
        for xor in (0x01, 0x80):
            corrupted = bytearray(data)
            corrupted[pos] ^= xor
            bad.write_bytes(bytes(corrupted))
            with pytest.raises(dd.RecordError) as info:
                read_as_builder(bad)
            assert info.value.url == str(bad) and info.value.index == pos // record, pos


def test_random_access_reports_flips_in_its_record(small_file, tmp_path):
    data = bytearray(small_file.read_bytes())
    record = len(data) // N
    data[record + tfrecord.HEADER + 20] ^= 0x10
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(bytes(data))
    assert dd.read_explanation(str(bad), 0).shape == SHAPE
    with pytest.raises(dd.RecordError, match="data CRC mismatch.*record 1"):
        dd.read_explanation(str(bad), 1)


def test_every_truncation_is_reported_or_is_a_whole_record_prefix(small_file, tmp_path):
    data = small_file.read_bytes()
    record = len(data) // N
    cut = tmp_path / "cut.tfrecord"
    full = read_all(small_file)
    for length in range(1, len(data)):
        cut.write_bytes(data[:length])
        if length % record == 0:
            got = read_all(cut)
            assert len(got) == length // record
            assert all((a == b).all() for a, b in zip(got, full, strict=False))
            continue
        with pytest.raises(dd.RecordError, match="truncated|CRC") as info:
            read_all(cut)
        assert info.value.index == length // record
        assert info.value.offset == (length // record) * record


@pytest.mark.parametrize("content", [b"hello, this is not a tfrecord file at all\n",
                                     b"\x89PNG\r\n\x1a\n" + bytes(64), bytes(100), b"\x01"],
                         ids=["text", "png", "zeros", "one-byte"])
def test_not_a_tfrecord(tmp_path, content):
    path = tmp_path / "x.tfrecord"
    path.write_bytes(content)
    with pytest.raises(dd.RecordError, match="record 0") as info:
        list(dd.read_explanations(str(path)))
    assert info.value.offset == 0


def test_record_without_explanations(tmp_path):
    path = str(tmp_path / "pre.tfrecord")
    dd.write_records(path, [{"preprocess_input": np.zeros((2, 2, 3), np.float32)}])
    with pytest.raises(dd.RecordError, match="no 'explanations' feature.*preprocess_input"):
        list(dd.read_explanations(path))
    with pytest.raises(dd.RecordError, match="record 0"):
        dd.read_explanation(path, 0)


def test_content_length_disagreeing_with_shape(tmp_path):
    from dina_datasets.recordio import proto

    header = proto.tensor_header((4, 4), np.float32)
    assert header.endswith(proto._ld(4, 64))
    bad_tensor = header[:-2] + proto._ld(4, 60) + bytes(60)
    path = str(tmp_path / "len.tfrecord")
    dd.write_records(path, [{"explanations": [bad_tensor]}])
    with pytest.raises(dd.RecordError, match="tensor_content has 60 bytes"):
        list(dd.read_explanations(path))


@pytest.mark.parametrize("index", [-1, 3, 10**9])
def test_out_of_range_index(small_file, index):
    with pytest.raises(dd.RecordIndexError, match=f"index {index} is outside.*holds 3 records"):
        dd.read_explanation(str(small_file), index)


@pytest.mark.parametrize("start, stop", [(0, 4), (0, 10**9), (2, 1), (5, 9), (-2, None),
                                         (None, -1), (-10, 2), (1, None)])
def test_ranges_clamp_like_python_slices(small_file, start, stop):
    every = list(dd.read_explanations(str(small_file)))
    assert len(every) == 3
    got = list(dd.read_explanations(str(small_file), start, stop))
    want = every[start:stop]
    assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want,
                                                                             strict=True))
    assert len(list(dd.read_records(str(small_file), start, stop))) == len(want)


def test_bad_ranges(small_file):
    # Python slice semantics: past the end clamps, negatives count from the end, an empty
    # range is empty; only non-integers are an error
    assert len(list(dd.read_explanations(str(small_file), 1, 99))) == 2
    assert len(list(dd.read_explanations(str(small_file), 4, 5))) == 0
    assert len(list(dd.read_explanations(str(small_file), 0, -1))) == 2
    assert len(list(dd.read_explanations(str(small_file), 2, 1))) == 0
    with pytest.raises(dd.RecordIndexError, match="must be an integer"):
        list(dd.read_explanations(str(small_file), 0, 2.0))
    with pytest.raises(dd.RecordIndexError, match="must be an integer"):
        dd.read_explanation(str(small_file), "1")


def test_missing_file(tmp_path):
    with pytest.raises(dd.LayoutError, match="no such file"):
        list(dd.read_explanations(str(tmp_path / "nope.tfrecord")))
