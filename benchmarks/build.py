"""Preparing one config's Arrow cache: DinaBuilder against a naive GeneratorBasedBuilder.

Both read the same local explanations file (~300 MB, made under bench_data/) and write the
same rows (same features); the naive one yields one dict with a numpy map per record, as a
plain `datasets` script would. Prints the median MB/s of each and the ratio, same run.

    python benchmarks/build.py [--config ResNet50-Saliency] [--records 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import datasets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bucket import ROOT, bucket, median

from dina_datasets import Layout, catalog, read_explanations
from dina_datasets.hf.builder import DinaBuilder
from dina_datasets.hf.features import features, metric_columns
from dina_datasets.hf.source import Source


class NaiveConfig(datasets.BuilderConfig):
    def __init__(self, data_url: str = "", cell: catalog.Cell | None = None, **kw):
        super().__init__(**kw)
        self.data_url, self.cell = data_url, cell


class NaiveBuilder(datasets.GeneratorBasedBuilder):
    """One Python dict per record, the map as a numpy array: the usual way to write a builder."""

    BUILDER_CONFIG_CLASS = NaiveConfig

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(features=features(self.config.cell))

    def _split_generators(self, dl_manager):
        return [datasets.SplitGenerator(name="validation", gen_kwargs={})]

    def _generate_examples(self):
        cell, root = self.config.cell, self.config.data_url
        url = Layout(root).explanations(cell.model, cell.explainer)
        scores = Source.open(cell, root).scores
        lists = {name: (arr.to_pylist() if arr is not None else []) for name, arr in
                 scores.items()}
        for i, explanation in enumerate(read_explanations(url)):
            row = {"index": i, "model": cell.model, "explainer": cell.explainer,
                   "explanation": explanation, "image_id": None, "label": -1,
                   "prediction": -1}
            for name in metric_columns():
                row[name] = lists[name][i] if i < len(lists[name]) else None
            yield i, row


def prepare(make) -> float:
    cache = tempfile.mkdtemp(dir=ROOT)
    try:
        builder = make(cache)
        start = time.perf_counter()
        builder.download_and_prepare()
        elapsed = time.perf_counter() - start
        assert builder.info.splits["validation"].num_examples > 0
        return elapsed
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="ResNet50-Saliency")
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    cell = catalog.Cell.from_name(args.config)
    data_url, _, size = bucket(cell.name, args.records)
    ours = lambda cache: DinaBuilder(config_name=cell.name, data_url=data_url,  # noqa: E731
                                     cache_dir=cache)
    naive = lambda cache: NaiveBuilder(config_name=cell.name, cache_dir=cache,  # noqa: E731
                                       data_url=data_url, cell=cell)
    times: dict[str, list[float]] = {"naive": [], "dina": []}
    for _ in range(args.repeats):
        times["naive"].append(prepare(naive))
        times["dina"].append(prepare(ours))
    print(f"{cell.name}: {args.records} records, {size / 1e6:.0f} MB, "
          f"{args.repeats} runs each (medians)")
    rate = {}
    for name, values in times.items():
        rate[name] = size / median(values) / 1e6
        print(f"  {name:<6} {rate[name]:8.0f} MB/s  {args.records / median(values):8.0f} rows/s"
              f"  (runs: {', '.join(f'{v:.2f}s' for v in values)})")
    print(f"  ratio dina / naive: {rate['dina'] / rate['naive']:.1f}x")


if __name__ == "__main__":
    main()
