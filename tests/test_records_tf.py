"""Record I/O against TensorFlow's own writer and parser, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from test_records import DTYPES, SHAPES, same_bits, special_values

import dina_datasets as dd

tf = pytest.importorskip("tensorflow")  # every test here checks against TensorFlow itself


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


def test_undecodable_dtype(tmp_path):
    path = str(tmp_path / "bf16.tfrecord")
    tensor = tf.io.serialize_tensor(tf.constant([[1.0, 2.0]], tf.bfloat16)).numpy()
    with tf.io.TFRecordWriter(path) as writer:
        example = tf.train.Example(features=tf.train.Features(feature={
            "explanations": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tensor]))}))
        writer.write(example.SerializeToString())
    with pytest.raises(dd.RecordError, match="undecodable dtype code 14.*record 0"):
        list(dd.read_explanations(path))

