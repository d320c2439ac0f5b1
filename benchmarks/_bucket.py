"""Benchmark data: a bucket-shaped folder under bench_data/ (git-ignored), made once."""

from __future__ import annotations

import json
import os
import statistics

import numpy as np

from dina_datasets import Layout, catalog, inspect, write_explanations
from dina_datasets.storage import atomic_write

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench_data")


def bucket(config: str, records: int, root: str = ROOT) -> tuple[str, str, int]:
    """(data_url, explanations url, file bytes) of a bucket holding `records` random maps
    of `config` and a score file per metric; written only when missing or of another size."""
    cell = catalog.Cell.from_name(config)
    data_url = os.path.join(root, "bucket")
    layout = Layout(data_url)
    url = layout.explanations(cell.model, cell.explainer)
    if not os.path.exists(url) or inspect(url).num_records != records:
        rng = np.random.default_rng(0)
        write_explanations(url, (rng.standard_normal(cell.shape).astype(np.float32)
                                 for _ in range(records)))
    for spec in catalog.METRICS.values():
        count = min(records, spec.subset or records)
        with atomic_write(layout.scores(cell.model, cell.explainer, spec.name), "w") as handle:
            json.dump(np.random.default_rng(1).random(count).round(6).tolist(), handle)
    return data_url, url, os.path.getsize(url)


def raw_read(path: str, block: int = 16 << 20, crc: bool = False) -> int:
    """Bytes of the fastest honest sequential read of a local file: unbuffered `readinto`
    one reused `block`-byte buffer (no fresh pages to fault in); with `crc`, also the
    CRC-32C of every block (the ceiling of any reader that checks every byte's CRC)."""
    import crc32c

    buf = bytearray(block)
    view = memoryview(buf)
    count = 0
    with open(path, "rb", buffering=0) as handle:
        while got := handle.readinto(view):
            if crc:
                crc32c.crc32c(view[:got])
            count += got
    return count


def median(values: list[float]) -> float:
    return statistics.median(values)
