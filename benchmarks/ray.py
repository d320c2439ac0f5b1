"""Complexity over 4 configs: `--engine ray` (2 workers) and Ray Data beside the single-process
path, on the same files, in the same run; and the scheduling cost Ray adds per part.

(local)    `dina evaluate --configs A B C D --metrics Complexity` in this process: the
           configs one after the other (parts of --part-size maps), score files written;
(ray)      the same with `--engine ray --workers 2`: the parts on 2 Ray actors (their
           start-up included), same files, byte-identical score files (checked);
(ray data) `read_dina(configs).map_batches(Complexity)`, 2 Ray tasks at a time, scores
           collected and written per config (the README's map-only recipe).
The Ray cluster (2 CPUs) is started once, before any timing. Per part: evaluations of a
config of tiny maps (8x8) cut into P1 and then P2 one-map parts, locally and on 1 Ray worker;
the slope (t(P2) - t(P1)) / (P2 - P1) is the cost of one part with fixed costs (start-up,
joining) cancelled, and Ray's extra cost per part is the difference of the two slopes.

    python benchmarks/ray.py [--maps 256] [--part-size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import importlib.util
import io
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time

# This file is named ray.py: its folder must not shadow the `ray` package.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

import numpy as np  # noqa: E402

from dina_datasets import Layout, catalog, formats, write_explanations  # noqa: E402
from dina_datasets.cli import main  # noqa: E402

_spec = importlib.util.spec_from_file_location("_bucket", os.path.join(HERE, "_bucket.py"))
_bucket = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bucket)
ROOT = _bucket.ROOT

CONFIGS = ["ResNet50-Saliency", "DinoV2-Rise", "DinoV2-Saliency", "ResNet50-Rise"]
TINY = "EfficientNetV2-Rise"


def write_bucket(root: str, configs: list[str], maps: int, size: int = catalog.MAP_SIZE
                 ) -> None:
    """`maps` random maps per config (written once, kept under bench_data/)."""
    rng = np.random.default_rng(0)
    for name in configs:
        cell = catalog.Cell.from_name(name)
        url = Layout(root).explanations(cell.model, cell.explainer)
        if os.path.exists(url) and os.path.getsize(url) > 0 and os.path.exists(url + ".ok"):
            continue
        shape = (size, size, cell.explainer_spec.channels)
        write_explanations(url, (rng.standard_normal(shape).astype(np.float32)
                                 for _ in range(maps)))
        open(url + ".ok", "w").close()


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the commands' summaries
        code = main(argv)
    if code != 0:
        raise SystemExit(f"dina {' '.join(argv)} failed ({code})")
    return time.perf_counter() - started


def evaluate(data: str, out: str, configs: list[str], part_size: int, *extra: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    return timed(["evaluate", "--configs", *configs, "--metrics", "Complexity", "--data-url",
                  data, "--out", out, "--part-size", str(part_size), "--no-progress", *extra])


def ray_data(data: str, out: str, configs: list[str]) -> float:
    from ray.data import TaskPoolStrategy

    from dina_datasets.metrics import Complexity
    from dina_datasets.ray import read_dina

    shutil.rmtree(out, ignore_errors=True)
    metric = Complexity()

    def score(batch):
        return {"config": batch["config"], "index": batch["index"],
                "score": metric(batch["explanation"])}

    started = time.perf_counter()
    scores = read_dina(configs, data_url=data).map_batches(
        score, batch_size=None, batch_format="numpy", compute=TaskPoolStrategy(2)).to_pandas()
    for config, rows in scores.groupby("config"):
        model, explainer = config.split("-", 1)
        formats.write_scores(Layout(out).scores(model, explainer, "Complexity"),
                             rows.sort_values("index")["score"].to_numpy())
    return time.perf_counter() - started


def same_scores(a: str, b: str, configs: list[str]) -> bool:
    return all(filecmp.cmp(Layout(a).scores(*c.split("-", 1), "Complexity"),
                           Layout(b).scores(*c.split("-", 1), "Complexity"), shallow=False)
               for c in configs)


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=256, help="maps per config (256)")
    parser.add_argument("--part-size", type=int, default=64, help="maps per part (64)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", type=int, nargs=2, default=(40, 200), metavar=("P1", "P2"))
    args = parser.parse_args()

    import ray

    data = os.path.join(ROOT, f"ray-{args.maps}")
    write_bucket(data, CONFIGS, args.maps)
    tiny = os.path.join(ROOT, f"ray-tiny-{args.parts[1]}")
    write_bucket(tiny, [TINY], args.parts[1], size=8)
    gb = sum(os.path.getsize(Layout(data).explanations(*c.split("-", 1))) for c in CONFIGS) / 1e9
    print(f"{len(CONFIGS)} configs x {args.maps} maps ({gb:.2f} GB), parts of {args.part_size};"
          f" {args.repeats} repeats; ray {ray.__version__}")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    scratch = tempfile.mkdtemp(prefix="dina-bench-ray-")
    try:
        times: dict[str, list[float]] = {"local": [], "ray": [], "ray data": []}
        for _ in range(args.repeats):
            local, far, rd = (os.path.join(scratch, n) for n in ("local", "ray", "rd"))
            times["local"].append(evaluate(data, local, CONFIGS, args.part_size))
            times["ray"].append(evaluate(data, far, CONFIGS, args.part_size, "--engine",
                                         "ray", "--workers", "2"))
            times["ray data"].append(ray_data(data, rd, CONFIGS))
            assert same_scores(local, far, CONFIGS), "ray and local scores differ"
        base = statistics.median(times["local"])
        for name, values in times.items():
            med = statistics.median(values)
            print(f"{name:9s} {med:7.2f} s  {gb / med * 1000:7.0f} MB/s  "
                  f"x{base / med:.2f} of local  (runs: {', '.join(f'{v:.2f}' for v in values)})")

        p1, p2 = args.parts
        slopes = {}
        for name, extra in (("local", ()), ("ray", ("--engine", "ray", "--workers", "1"))):
            runs = {p: [] for p in (p1, p2)}
            for _ in range(args.repeats):
                for p in (p1, p2):
                    runs[p].append(evaluate(tiny, os.path.join(scratch, "tiny"), [TINY], 1,
                                            "--limit", str(p), *extra))
            t1, t2 = statistics.median(runs[p1]), statistics.median(runs[p2])
            slopes[name] = (t2 - t1) / (p2 - p1) * 1000
            print(f"per part, {name:5s}: {slopes[name]:6.2f} ms  ({p1} parts {t1:.2f} s, "
                  f"{p2} parts {t2:.2f} s)")
        print(f"Ray's extra cost per part: {slopes['ray'] - slopes['local']:.2f} ms")
    finally:
        ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main_()
