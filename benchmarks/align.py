"""`dina align`'s costs: matching 50,000 x 50,000 fingerprints, and the explain cost per
image of the cheapest explainer of each model.

Matching: synthetic fingerprints (`align.fingerprints.DIM` values, unit norm) for N images;
the records are a shuffle of them with float noise (relative `--noise`), as a published
file is against the maps recomputed here. Reports the wall time of `top2` + `assign`, the
peak traced memory (numpy's buffers, through tracemalloc) and the process's peak resident
size, and checks that the shuffle is recovered.

Explain cost (`--explain MODEL ...`): seconds per image of `recompute` (decode, kecam
preprocessing, prediction, explainer, fingerprint) on JPEG photos, random weights (offline).

    python benchmarks/align.py [--n 50000] [--noise 1e-2] [--explain EfficientNetV2 ...]
        [--images 16] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np


def matching(n: int, noise: float, seed: int = 0) -> dict:
    from dina_datasets.align import fingerprints, matching

    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, fingerprints.DIM), dtype=np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    order = rng.permutation(n)
    records = images[order] + noise * rng.standard_normal((n, fingerprints.DIM),
                                                          dtype=np.float32) / np.sqrt(
        fingerprints.DIM)
    records /= np.linalg.norm(records, axis=1, keepdims=True)
    tracemalloc.start()
    started = time.perf_counter()
    found = matching.assign(matching.top2(records, images))
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"n": n, "seconds": seconds, "peak_traced_mb": peak / 2**20,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "exact": bool((found.image == order).all()), "matched": found.count("matched")}


def explain_cost(model: str, n: int, batch_size: int) -> dict:
    from generate import write_photos  # benchmarks/generate.py

    from dina_datasets.align import recompute
    from dina_datasets.images import list_images

    with tempfile.TemporaryDirectory() as folder:
        write_photos(folder, n)
        entries = list_images(folder)
        job = recompute.Recompute(model, recompute.cheapest(model), "none", batch_size)
        job.fingerprints(entries[:batch_size])  # build and trace once, untimed
        started = time.perf_counter()
        job.fingerprints(entries)
        seconds = time.perf_counter() - started
    return {"model": model, "explainer": job.explainer, "images": n,
            "seconds_per_image": seconds / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--noise", type=float, default=1e-2)
    parser.add_argument("--explain", nargs="*", default=[], metavar="MODEL")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.n:
        result = matching(args.n, args.noise)
        print(f"matching {result['n']:,} x {result['n']:,}: {result['seconds']:.1f} s, peak "
              f"{result['peak_traced_mb']:.0f} MB traced, {result['max_rss_mb']:.0f} MB max RSS; "
              f"shuffle recovered: {result['exact']} ({result['matched']:,} matched)")
    for model in args.explain:
        cost = explain_cost(model, args.images, args.batch_size)
        print(f"{cost['model']}-{cost['explainer']}: {cost['seconds_per_image']:.3f} s/image "
              f"({cost['images']} images, random weights, CPU)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
