"""Streaming one config into a PyTorch DataLoader, beside a raw read of the same bytes.

Reads a local explanations file (~300 MB, made under bench_data/) five ways, each with 0 and
2 DataLoader workers: our builder's stream row by row (`with_format("torch")`, the DataLoader
collating batches of 32), our stream in whole batches (`TorchBatches`), and the Parquet
export of the same config streamed by stock `datasets.load_dataset`: typed Array3D row by row
and through `TorchBatches`, and the binary encoding through `TorchBatches(binary_shapes=...)`.
Each DataLoader is made once (persistent workers) and read `--repeats` + 1 times: the first
pass, which starts the workers, is reported apart; then the median samples/s and MB/s of the
others, and their ratio to the median raw read of the same file, same run.

    python benchmarks/stream.py [--config ResNet50-Saliency] [--records 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bucket import ROOT, bucket, median, raw_read

from dina_datasets import catalog
from dina_datasets.hf.batches import TorchBatches
from dina_datasets.hf.builder import DinaBuilder
from dina_datasets.hf.export import export

COLUMNS = ["index", "explanation", "label", "Insertion"]
BATCH = 32


def cell_bytes(cell: catalog.Cell) -> int:
    return 4 * int(np.prod(cell.shape))


def drain(loader, shape) -> int:
    rows = 0
    for batch in loader:
        maps = batch["explanation"]
        assert isinstance(maps, torch.Tensor) and maps.shape[1:] == shape, type(maps)
        rows += len(maps)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="ResNet50-Saliency")
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    torch.set_num_threads(1)
    cell = catalog.Cell.from_name(args.config)
    data_url, url, size = bucket(cell.name, args.records)
    exports = {}
    for encoding in ("array", "binary"):
        out = os.path.join(ROOT, f"export-{encoding}")
        shutil.rmtree(out, ignore_errors=True)
        export([cell.name], out, data_url=data_url, encoding=encoding)
        exports[encoding] = out

    def ours():
        builder = DinaBuilder(config_name=cell.name, data_url=data_url,
                              cache_dir=os.path.join(ROOT, "cache"))
        return builder.as_streaming_dataset("validation").select_columns(COLUMNS)

    def stock(encoding):
        ds = datasets.load_dataset(exports[encoding], cell.name, split="validation",
                                   streaming=True)
        return ds.select_columns(COLUMNS)

    def loader(dataset, workers, **kw):
        return DataLoader(dataset, num_workers=workers, persistent_workers=workers > 0, **kw)

    cases = {}
    for w in args.workers:
        cases[f"dina rows,               {w} workers"] = lambda w=w: loader(
            ours().with_format("torch"), w, batch_size=BATCH)
        cases[f"dina TorchBatches,       {w} workers"] = lambda w=w: loader(
            TorchBatches(ours(), BATCH), w, batch_size=None)
        cases[f"parquet Array3D rows,    {w} workers"] = lambda w=w: loader(
            stock("array").with_format("torch"), w, batch_size=BATCH)
        cases[f"parquet Array3D batches, {w} workers"] = lambda w=w: loader(
            TorchBatches(stock("array"), BATCH), w, batch_size=None)
        cases[f"parquet binary batches,  {w} workers"] = lambda w=w: loader(
            TorchBatches(stock("binary"), BATCH, binary_shapes={"explanation": cell.shape}), w,
            batch_size=None)
    raw_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        assert raw_read(url) == size
        raw_times.append(time.perf_counter() - start)
    raw = size / median(raw_times) / 1e6
    print(f"{cell.name}: {args.records} records of {cell.shape}, {size / 1e6:.0f} MB, "
          f"batches of {BATCH}; medians of {args.repeats} passes after a first one")
    print(f"  {'raw read of the file':<35} {size / cell_bytes(cell) / median(raw_times):8.0f}"
          f" samples/s {raw:8.0f} MB/s")
    for name, make in cases.items():
        passes = []
        data = make()
        for _ in range(args.repeats + 1):
            start = time.perf_counter()
            assert drain(data, cell.shape) == args.records, name
            passes.append(time.perf_counter() - start)
        del data
        rate = size / median(passes[1:]) / 1e6
        print(f"  {name:<35} {args.records / median(passes[1:]):8.0f} samples/s {rate:8.0f} MB/s"
              f"  {rate / raw:5.2f} x raw   (first pass {size / passes[0] / 1e6:5.0f} MB/s)")


if __name__ == "__main__":
    main()
