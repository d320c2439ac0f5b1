"""Read throughput on one ~500 MB file of (224,224,3) DINA records, page cache warm.

(a) dina_datasets.read_explanations, CRC checked on every record;
(b) the original loader: TFRecordDataset.map(parse_single_example + parse_tensor), .numpy();
(c) the fastest honest raw read of the same bytes: unbuffered `readinto` one reused 16 MB
    buffer (a fresh 64 MB buffer per read faults its pages in and runs ~5x slower here);
(d) the CRC ceiling: (c) plus the CRC-32C of every block, the most any reader that checks
    every record's CRC can do on one core.
Prints the median MB/s of each and the ratios a/b, a/c (target >= 0.5) and a/d (>= 0.8).

    python benchmarks/read.py [--mb 500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bucket import raw_read

import dina_datasets as dd
from dina_datasets.recordio.records import explanation_record_size

SHAPE = (224, 224, 3)


def make_file(path: str, megabytes: int) -> int:
    n = max(1, megabytes * 10**6 // explanation_record_size(SHAPE))
    rng = np.random.default_rng(0)
    dd.write_explanations(path, (rng.standard_normal(SHAPE, dtype=np.float32) for _ in range(n)))
    return n


def ours(path: str) -> int:
    count = 0
    for array in dd.read_explanations(path):
        count += array.shape[0] > 0
    return count


def original(path: str) -> int:
    import tensorflow as tf

    spec = {"explanations": tf.io.FixedLenFeature([], tf.string)}
    ds = tf.data.TFRecordDataset(path).map(
        lambda r: tf.io.parse_tensor(tf.io.parse_single_example(r, spec)["explanations"],
                                     tf.float32))
    count = 0
    for tensor in ds:
        count += tensor.numpy().shape[0] > 0
    return count


def raw(path: str) -> int:
    return raw_read(path)


def crc_ceiling(path: str) -> int:
    return raw_read(path, crc=True)


def median_seconds(fn, path: str, repeats: int) -> float:
    fn(path)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "explanations.tfrecord")
        n = make_file(path, args.mb)
        size_mb = os.path.getsize(path) / 1e6
        print(f"file: {n} records of {SHAPE}, {size_mb:.0f} MB (page cache warm after one pass)")
        results = {}
        runs = (("a ours (CRC on)", ours, args.repeats),
                ("b original tf.data loader", original, max(1, args.repeats // 2)),
                ("c raw read (readinto 16 MB)", raw, args.repeats),
                ("d raw read + crc32c", crc_ceiling, args.repeats))
        for name, fn, repeats in runs:
            seconds = median_seconds(fn, path, repeats)
            results[name[0]] = size_mb / seconds
            print(f"{name:<28} median {seconds:7.3f} s  {size_mb / seconds:9.1f} MB/s "
                  f"({repeats} runs)")
        print(f"ratio a/b = {results['a'] / results['b']:.1f}")
        print(f"ratio a/c = {results['a'] / results['c']:.2f}  (target >= 0.5)")
        print(f"ratio a/d = {results['a'] / results['d']:.2f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
