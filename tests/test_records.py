"""Record I/O against TensorFlow's own writer and parser, bit for bit."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import dina_datasets as dd
from dina_datasets.recordio import reader, records

tf = pytest.importorskip("tensorflow")

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


def tf_write(path: str, arrays: list[np.ndarray], **extra: list) -> None:
    """Write records exactly as the original DINA code did."""
    with tf.io.TFRecordWriter(path) as writer:
        for i, array in enumerate(arrays):
            feature = {"explanations": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[tf.io.serialize_tensor(tf.constant(array)).numpy()]))}
            for name, values in extra.items():
                v = values[i]
                if isinstance(v, int):
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
                elif isinstance(v, float):
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
                else:
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[v.encode()]))
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())


def tf_read(path: str, dtype: tf.DType) -> list[np.ndarray]:
    """Read records as the original DINA loader did."""
    spec = {"explanations": tf.io.FixedLenFeature([], tf.string)}
    ds = tf.data.TFRecordDataset(path).map(
        lambda r: tf.io.parse_tensor(tf.io.parse_single_example(r, spec)["explanations"], dtype))
    return [t.numpy() for t in ds]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_reads_tensorflow_records_bit_identically(tmp_path, shape):
    arrays = [special_values(shape, np.float32, seed) for seed in range(3)]
    path = str(tmp_path / "tf.tfrecord")
    tf_write(path, arrays)
    got = list(dd.read_explanations(path))
    assert len(got) == 3
    assert all(same_bits(a, b) for a, b in zip(arrays, got, strict=True))
    assert same_bits(dd.read_explanation(path, 2), arrays[2])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_reads_and_writes_every_dtype(tmp_path, dtype):
    arrays = [special_values((6, 5, 3), dtype, seed) for seed in range(2)]
    theirs, ours = str(tmp_path / "tf.tfrecord"), str(tmp_path / "ours.tfrecord")
    tf_write(theirs, arrays)
    dd.write_explanations(ours, arrays)
    assert all(same_bits(a, b) for a, b in zip(arrays, dd.read_explanations(theirs), strict=True))
    tf_back = tf_read(ours, tf.as_dtype(np.dtype(dtype)))
    assert all(same_bits(a, b) for a, b in zip(arrays, tf_back, strict=True))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_tensorflow_reads_our_records_bit_identically(tmp_path, shape):
    arrays = [special_values(shape, np.float32, seed) for seed in range(3)]
    path = str(tmp_path / "ours.tfrecord")
    assert dd.write_explanations(path, arrays) == 3
    assert all(same_bits(a, b) for a, b in zip(arrays, tf_read(path, tf.float32), strict=True))
    ref = str(tmp_path / "tf.tfrecord")
    tf_write(ref, arrays)
    with open(path, "rb") as ours, open(ref, "rb") as theirs:
        assert ours.read() == theirs.read()


def test_dina_record_sizes_match_the_published_files(tmp_path):
    for shape, size in (((224, 224, 1), 200_776), ((224, 224, 3), 602_184)):
        path = str(tmp_path / f"{shape[-1]}.tfrecord")
        dd.write_explanations(path, np.zeros((2, *shape), np.float32))
        assert os.path.getsize(path) == 2 * size
        assert records.explanation_record_size(shape) == size
        info = dd.inspect(path)
        assert (info.num_records, info.record_size) == (2, size)


def test_extra_features_round_trip_and_stay_readable_by_the_original_loader(tmp_path):
    arrays = [special_values((4, 4, 1), np.float32, s) for s in range(3)]
    path = str(tmp_path / "keys.tfrecord")
    dd.write_explanations(path, arrays, index=[0, 1, 2], image_id=["a", "b", "c"],
                          label=[5, -1, 7], score=[0.5, 1.5, 2.5])
    recs = list(dd.read_records(path))
    assert [r["index"] for r in recs] == [0, 1, 2]
    assert [r["image_id"] for r in recs] == [b"a", b"b", b"c"]
    assert [r["label"] for r in recs] == [5, -1, 7]
    assert [r["score"] for r in recs] == [0.5, 1.5, 2.5]
    assert all(same_bits(a, b) for a, b in zip(arrays, tf_read(path, tf.float32), strict=True))
    spec = {"index": tf.io.FixedLenFeature([], tf.int64),
            "label": tf.io.FixedLenFeature([], tf.int64),
            "image_id": tf.io.FixedLenFeature([], tf.string)}
    parsed = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(path)]
    assert [int(p["label"]) for p in parsed] == [5, -1, 7]
    assert [p["image_id"].numpy() for p in parsed] == [b"a", b"b", b"c"]


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
    tf_write(path, arrays)  # TensorFlow's writer: no index
    reader._SCANS.clear()
    info = dd.inspect(path)
    assert info.record_size is None and info.num_records == 6
    assert len(reader._SCANS) == 1
    for i in (5, 0, 3):
        assert same_bits(dd.read_explanation(path, i), arrays[i])
    assert len(reader._SCANS) == 1
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
