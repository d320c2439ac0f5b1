"""Record I/O without TensorFlow: ranges, random access, scans, views, atomic writes."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import dina_datasets as dd
from dina_datasets.recordio import reader, records

SHAPES = [(224, 224, 1), (224, 224, 3), (7, 5, 2), (3,), (), (0, 4)]
DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8, np.int8, np.bool_]


def special_values(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    """Random values of `dtype`, with NaN, +inf and -inf in float arrays."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        arr = rng.standard_normal(shape).astype(dtype)
        flat = arr.reshape(-1)
        for i, v in enumerate([np.nan, np.inf, -np.inf, -0.0][: flat.size]):
            flat[i] = v
        return arr
    if np.dtype(dtype).kind == "b":
        return rng.random(shape) > 0.5
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_dina_record_sizes_match_the_published_files(tmp_path):
    for shape, size in (((224, 224, 1), 200_776), ((224, 224, 3), 602_184)):
        path = str(tmp_path / f"{shape[-1]}.tfrecord")
        dd.write_explanations(path, np.zeros((2, *shape), np.float32))
        assert os.path.getsize(path) == 2 * size
        assert records.explanation_record_size(shape) == size
        info = dd.inspect(path)
        assert (info.num_records, info.record_size) == (2, size)


def test_ranges_and_random_access(tmp_path):
    arrays = [special_values((8, 8, 3), np.float32, s) for s in range(10)]
    path = str(tmp_path / "f.tfrecord")
    dd.write_explanations(path, arrays)
    got = list(records.read_explanations(path, 3, 7))
    assert all(same_bits(a, b) for a, b in zip(arrays[3:7], got, strict=True))
    assert list(dd.read_explanations(path, 4, 4)) == []
    for i in (0, 5, 9):
        assert same_bits(dd.read_explanation(path, i), arrays[i])
    small_chunks = list(records.read_records(path, 1, 9, chunk_bytes=100))
    assert all(same_bits(a, r["explanations"]) for a, r in zip(arrays[1:9], small_chunks,
                                                                 strict=True))


def test_variable_size_records_are_scanned_once_and_cached(tmp_path):
    arrays = [special_values((i + 1, 3), np.float32, i) for i in range(6)]
    path = str(tmp_path / "var.tfrecord")
    dd.write_records(path, ({"explanations": a} for a in arrays))  # no index: scanned
    reader._LAYOUTS.clear()
    info = dd.inspect(path)
    assert info.record_size is None and info.num_records == 6
    assert len(reader._LAYOUTS) == 1
    for i in (5, 0, 3):
        assert same_bits(dd.read_explanation(path, i), arrays[i])
    assert len(reader._LAYOUTS) == 1
    got = list(records.read_explanations(path, 2, 5))
    assert all(same_bits(a, b) for a, b in zip(arrays[2:5], got, strict=True))
    got = list(records.read_records(path, chunk_bytes=7))
    assert all(same_bits(a, r["explanations"]) for a, r in zip(arrays, got, strict=True))


def test_arrays_are_zero_copy_read_only_views(tmp_path):
    path = str(tmp_path / "f.tfrecord")
    dd.write_explanations(path, np.ones((3, 16, 16, 1), np.float32))
    maps = list(dd.read_explanations(path))
    assert all(not m.flags.writeable and not m.flags.owndata for m in maps)


def test_memory_filesystem_round_trip():
    arrays = [special_values((5, 5, 3), np.float32, s) for s in range(4)]
    url = "memory://dina-test/ResNet50/Saliency/explanations.tfrecord"
    dd.write_explanations(url, arrays)
    assert all(same_bits(a, b) for a, b in zip(arrays, dd.read_explanations(url), strict=True))
    assert same_bits(dd.read_explanation(url, 3), arrays[3])
    assert dd.inspect(url).num_records == 4


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "f.tfrecord")
    dd.write_explanations(path, np.ones((2, 4, 4, 1), np.float32))
    before = pathlib.Path(path).read_bytes()

    def broken():
        yield np.zeros((4, 4, 1), np.float32)
        raise RuntimeError("generator failed mid-way")

    with pytest.raises(RuntimeError, match="mid-way"):
        dd.write_explanations(path, broken())
    assert pathlib.Path(path).read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["f.tfrecord", "f.tfrecord.index.json"]
    with pytest.raises(ValueError, match="one value per array"):
        dd.write_explanations(str(tmp_path / "g.tfrecord"), np.ones((2, 4, 4, 1), np.float32),
                              index=[0])
    assert sorted(os.listdir(tmp_path)) == ["f.tfrecord", "f.tfrecord.index.json"]
