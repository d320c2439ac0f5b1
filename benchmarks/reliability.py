"""The reliability card on the synthetic grid of DINA's real size: 117 cells x 8 metrics of
score files (50,000 values each, 1,024 for the randomization metrics: ~29.6 M scores), the
table and grid of `benchmarks/scores.py` (its `write_grid`), then in a fresh Python process:
`scores.build` (the table), `stats.reliability` (split-half with its bootstrap interval,
Krippendorff's alpha, validity against the controls, grades) and the coloured PNG card.
Reports wall time per phase and peak resident memory.

Target: the whole card (table + statistics + picture) under 2 minutes and 2 GB on 2 cores.
The grid has no RandomExp (it is not published): the validity phase is measured by
`--with-random`, which adds a RandomExp cell to every model (9 more cells).

    python benchmarks/reliability.py [--images 50000] [--subset 1024] [--splits 200]
                                     [--with-random] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from scores import Phases, peak_mb, write_grid  # noqa: E402  (benchmarks/scores.py)


def add_random(root: str, images: int, subset: int) -> int:
    """A RandomExp cell of every model of the grid (score files only); files written."""
    import numpy as np

    from dina_datasets import Layout, catalog
    from dina_datasets.formats import write_scores

    layout, files = Layout(root), 0
    rng = np.random.default_rng(1)
    for model in sorted({c.model for c in catalog.published_cells()}):
        for spec in catalog.METRICS.values():
            write_scores(layout.scores(model, "RandomExp", spec.name),
                         rng.random(subset if spec.subset else images))
            files += 1
    return files


def card(root: str, out: str, splits: int) -> dict[str, float]:
    phases = Phases()
    import duckdb  # noqa: F401  (the imports are a phase of their own)
    import matplotlib  # noqa: F401
    import scipy.stats  # noqa: F401

    from dina_datasets import stats
    from dina_datasets.analysis import scores
    from dina_datasets.viz import card as draw
    from dina_datasets.viz import charts

    phases.mark("imports")
    built = scores.build(root, out)
    phases.mark("build table")
    result = stats.reliability(out, n_splits=splits)
    phases.mark("reliability")
    png = charts.render(draw.reliability_card(result.cards), ("png",))["png"]
    phases.mark("picture")
    grades = result.cards["grade"].value_counts().to_dict()
    return {**phases.total(), "rows": built.rows, "cards": len(result.cards),
            "png_bytes": len(png), "peak_mb": peak_mb(), "grades": grades}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--subset", type=int, default=1_024)
    parser.add_argument("--splits", type=int, default=200)
    parser.add_argument("--with-random", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(card(args.root, args.out, args.splits)))
        return

    folder = tempfile.mkdtemp(prefix="dina-bench-reliability-")
    try:
        root, out = os.path.join(folder, "bucket"), os.path.join(folder, "scores.parquet")
        started = time.perf_counter()
        files, count = write_grid(root, args.images, args.subset)
        if args.with_random:
            files += add_random(root, args.images, args.subset)
        print(f"grid: {files} score files ({count:,} scores of the published cells), written "
              f"in {time.perf_counter() - started:.0f} s under {folder}")
        done = subprocess.run([sys.executable, __file__, "--child", "--root", root, "--out",
                               out, "--splits", str(args.splits)], check=True,
                              capture_output=True, text=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        keys = [k for k in result if isinstance(result[k], float) and not k.endswith(" cpu")
                and k != "peak_mb"]
        print("; ".join(f"{k} {result[k]:.1f} s (cpu {result.get(k + ' cpu', 0):.1f})"
                        for k in keys))
        print(f"{result['rows']:,} rows, {result['cards']} cards ({result['grades']}), "
              f"{args.splits} splits; peak memory {result['peak_mb']:,.0f} MB; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end "
              "(target: whole card < 120 s, < 2 GB)")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
