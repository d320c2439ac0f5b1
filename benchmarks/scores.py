"""The scores table and a full leaderboard on a synthetic grid of DINA's real size, beside
pandas `read_json` + `groupby` on the same files.

The benchmark writes 117 cells x 8 metrics of score files into a temporary folder (50,000
values each; 1,024 for the three randomization metrics, as published: ~29.6 M scores, ~0.6
GB of JSON), then runs each side in a fresh Python process and reports its wall time per
phase and its peak resident memory:

- ours: `scores.build` (streaming Parquet) + the leaderboard of that table: DuckDB
  aggregates (mean, interval, n, rank), a Wilcoxon signed-rank test for every pair of
  explainers of every model and metric (Holm-adjusted), verdicts;
- baseline: `pandas.read_json(typ="series")` of every file into one long frame
  (categorical names, so it fits in memory) and a `groupby(...).agg(mean, std, count)`:
  means only, no paired statistics.

Targets here: ours under 2 minutes and under 2 GB. Medians over `--repeats` runs (default
1: each run reads 0.6 GB of JSON on a shared 2-core machine).

`--ids` also writes a kecam-style `imagenet_data.json` of the images and builds the table with
it, so that every row has an image id and the pairs join on `image_id` (not the index).

    python benchmarks/scores.py [--images 50000] [--subset 1024] [--repeats 1] [--ids] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def write_grid(root: str, images: int, subset: int) -> tuple[int, int]:
    """Score files of every published cell and metric; (files, scores)."""
    import numpy as np

    from dina_datasets import Layout, catalog
    from dina_datasets.formats import write_scores

    layout, files, count = Layout(root), 0, 0
    rng = np.random.default_rng(0)
    for cell in catalog.published_cells():
        for spec in catalog.METRICS.values():
            n = subset if spec.subset else images
            values = rng.random(n)
            values[rng.random(n) < 0.001] = np.nan  # a few undefined scores (null)
            write_scores(layout.scores(cell.model, cell.explainer, spec.name), values)
            files, count = files + 1, count + n
    return files, count


def write_ids(path: str, images: int) -> None:
    """A kecam-style imagenet_data.json naming `images` images."""
    items = [{"image": f"/x/ILSVRC2012_val_{i + 1:08d}.JPEG", "label": i % 1000}
             for i in range(images)]
    with open(path, "w") as handle:
        json.dump({"info": {"base_path": "/x"}, "test": items}, handle)


def peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Phases:
    """Wall and CPU seconds (all threads of the process) of named phases."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.start = (self.wall, self.cpu)

    def mark(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.times[name], self.times[f"{name} cpu"] = wall - self.wall, cpu - self.cpu
        self.wall, self.cpu = wall, cpu

    def total(self) -> dict[str, float]:
        self.times["total"] = time.perf_counter() - self.start[0]
        self.times["total cpu"] = time.process_time() - self.start[1]
        return self.times


def ours(root: str, out: str, ids: str | None = None) -> dict[str, float]:
    phases = Phases()
    import duckdb  # noqa: F401  (the imports are a phase of their own)
    import scipy.stats  # noqa: F401
    import statsmodels.stats.multitest  # noqa: F401

    from dina_datasets import stats
    from dina_datasets.analysis import leaderboard, scores

    phases.mark("imports")
    built = scores.build(root, out, imagenet_json=ids)
    phases.mark("build table")
    table = stats.open_scores(out)
    summary = stats.summary(table, ci="normal")
    phases.mark("aggregate (DuckDB)")
    pairs = stats.pairs(table, summary=summary)
    board = leaderboard.Leaderboard(stats.annotate(summary, pairs), pairs, alpha=0.01,
                                    ci="normal")
    board.json()
    phases.mark("pairs + verdicts")
    return {**phases.total(), "rows": built.rows, "pairs": len(pairs), "peak_mb": peak_mb(),
            "paired_by": sorted(set(pairs["paired_by"]))}


def baseline(root: str) -> dict[str, float]:
    import glob

    import pandas as pd

    phases = Phases()
    frames = []
    for path in sorted(glob.glob(os.path.join(root, "*", "*", "*_scores.json"))):
        model, explainer, name = path.rsplit(os.sep, 3)[1:]
        series = pd.read_json(path, typ="series", dtype="float64")
        frames.append(pd.DataFrame({"model": model, "explainer": explainer,
                                    "metric": name.removesuffix("_scores.json"),
                                    "score": series.to_numpy()}))
    frame = pd.concat(frames, ignore_index=True)
    del frames
    for column in ("model", "explainer", "metric"):
        frame[column] = frame[column].astype("category")
    phases.mark("read_json")
    means = frame.groupby(["model", "explainer", "metric"], observed=True)["score"].agg(
        ["mean", "std", "count"])
    phases.mark("groupby")
    return {**phases.total(), "rows": len(frame), "cells": len(means), "peak_mb": peak_mb()}


def child(side: str, root: str, out: str, ids: str | None = None) -> dict[str, float]:
    """Run one side in a fresh interpreter; its figures."""
    done = subprocess.run([sys.executable, __file__, "--child", side, "--root", root,
                           "--out", out, *(["--ids-json", ids] if ids else [])], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--subset", type=int, default=1_024)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--ids", action="store_true",
                        help="give every row an image id (pairs join on image_id)")
    parser.add_argument("--ids-json", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = (ours(args.root, args.out, args.ids_json) if args.child == "ours"
                  else baseline(args.root))
        print(json.dumps(result))
        return

    folder = tempfile.mkdtemp(prefix="dina-bench-scores-")
    try:
        root, out = os.path.join(folder, "bucket"), os.path.join(folder, "scores.parquet")
        started = time.perf_counter()
        files, count = write_grid(root, args.images, args.subset)
        ids = None
        if args.ids:
            ids = os.path.join(folder, "imagenet_data.json")
            write_ids(ids, args.images)
        print(f"grid: {files} score files, {count:,} scores, written in "
              f"{time.perf_counter() - started:.0f} s under {folder}")
        runs: dict[str, list[dict[str, float]]] = {"ours": [], "baseline": []}
        for _ in range(args.repeats):
            for side in runs:
                runs[side].append(child(side, root, out, ids))
        for side, results in runs.items():
            keys = [k for k in results[0] if k not in ("rows", "pairs", "cells", "peak_mb",
                                                        "paired_by") and not k.endswith(" cpu")]
            phases = ", ".join(f"{k} {statistics.median(r[k] for r in results):.1f} s (cpu "
                               f"{statistics.median(r[k + ' cpu'] for r in results):.1f})"
                               for k in keys)
            peak = statistics.median(r["peak_mb"] for r in results)
            extra = (f"{results[0]['rows']:,} rows, {results[0]['pairs']:,} paired tests, "
                     f"paired by {', '.join(results[0]['paired_by'])}"
                     if side == "ours" else f"{results[0]['rows']:,} rows, "
                     f"{results[0]['cells']:,} cells")
            print(f"{side:9s} {phases}; peak memory {peak:,.0f} MB ({extra})")
        size = os.path.getsize(out) / 1e6
        ours_total = statistics.median(r["total"] for r in runs["ours"])
        base_total = statistics.median(r["total"] for r in runs["baseline"])
        build = statistics.median(r["build table"] + r["aggregate (DuckDB)"]
                                  for r in runs["ours"])
        print(f"table {size:,.0f} MB of Parquet; medians of {args.repeats} run(s); wall "
              f"(cpu = CPU seconds of the process, all threads); load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end")
        print(f"ratio: table + means (ours {build:.1f} s) vs read_json + groupby "
              f"({base_total:.1f} s): {base_total / build:.2f}x; full leaderboard with "
              f"paired tests {ours_total:.1f} s (target < 120 s, < 2 GB)")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
