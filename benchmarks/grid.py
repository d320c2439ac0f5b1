"""A paper estimate of the whole grid's generation and evaluation time on N workers, from
per-image costs measured on this machine's device (CPU here; run it on a GPU node for GPU
figures).

Measured: the seconds of one forward pass and of one input gradient per image for DINA's
models (kecam, random weights: the cost does not depend on the weights), at `--batch`
images per call, median of `--repeats`. Counted: the model passes per image of each
explainer and metric at DINA's settings (the catalog, and xplique's defaults for what the
catalog does not set). Estimate: 50,000 images x every published cell x passes x measured
seconds, divided by N workers (the parts of `--engine ray` keep every worker busy; Ray's
per-part cost, measured by benchmarks/ray.py, is milliseconds per part of 256 images).

    python benchmarks/grid.py [--models ResNet50 EfficientNetV2 ...] [--batch 4]
        [--repeats 3] [--workers 1 8 64] [--costs MODEL=FORWARD_MS,GRADIENT_MS ...]
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from dina_datasets import catalog

IMAGES = 50_000


def xplique_default(cls_name: str, name: str) -> int:
    import xplique.attributions as attributions

    return inspect.signature(getattr(attributions, cls_name)).parameters[name].default


def explainer_passes(explainer: str) -> tuple[int, int]:
    """(forward passes, input gradients) per image of an explainer at DINA's settings."""
    p = dict(catalog.EXPLAINERS[explainer].params)
    if explainer in ("Saliency", "GradientInput", "GradCAM", "GradCAMPP"):
        return 0, 1
    if explainer in ("VarGrad", "SmoothGrad", "SquareGrad"):
        return 0, p["nb_samples"]
    if explainer == "IntegratedGradients":
        return 0, p["steps"]
    if explainer in ("Rise", "KernelShap", "Lime"):
        return p["nb_samples"], 0
    if explainer == "Occlusion":
        side = (catalog.MAP_SIZE - p["patch_size"]) // p["patch_stride"] + 1
        return side * side, 0
    if explainer == "HsicAttributionMethod":
        return xplique_default("HsicAttributionMethod", "nb_design"), 0
    if explainer == "SobolAttributionMethod":
        design = xplique_default("SobolAttributionMethod", "nb_design")
        return design * (p["grid_size"] ** 2 + 2), 0
    raise KeyError(explainer)


def metric_forwards() -> int:
    """Forward passes per image of Insertion, Deletion and MuFidelity (the others re-explain
    1,024 images, counted apart, or need no model)."""
    m = catalog.METRICS
    return m["Insertion"].params["nb_steps"] + m["Deletion"].params["nb_steps"] + \
        m["MuFidelity"].params["nb_samples"] + 1


def measure(model: str, batch: int, repeats: int) -> tuple[float, float]:
    """Seconds per image of a forward pass and of an input gradient (wall clock; the CPU
    seconds of this process are printed beside them)."""
    import tensorflow as tf

    from dina_datasets.generation.models import build_model

    net = build_model(model, "none")
    x = tf.constant(np.random.default_rng(0).standard_normal((batch, 224, 224, 3)), tf.float32)
    forward = tf.function(lambda v: net(v, training=False))

    @tf.function
    def gradient(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            out = tf.reduce_sum(net(v, training=False)[:, 0])
        return tape.gradient(out, v)

    times, cpu = {}, {}
    for name, fn in (("forward", forward), ("gradient", gradient)):
        fn(x)  # trace
        runs, cpus = [], []
        for _ in range(repeats):
            started, used = time.perf_counter(), time.process_time()
            np.asarray(fn(x))
            runs.append((time.perf_counter() - started) / batch)
            cpus.append((time.process_time() - used) / batch)
        times[name], cpu[name] = statistics.median(runs), statistics.median(cpus)
    tf.keras.backend.clear_session()
    print(f"{model:15s} forward {times['forward'] * 1000:8.1f} ms/image "
          f"({cpu['forward'] * 1000:.1f} CPU ms)   gradient {times['gradient'] * 1000:8.1f} "
          f"ms/image ({cpu['gradient'] * 1000:.1f} CPU ms)", flush=True)
    return times["forward"], times["gradient"]


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.0f} h" if seconds >= 36_000 else f"{seconds / 3600:,.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(catalog.MODELS)[:9])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--costs", nargs="+", metavar="MODEL=FORWARD_MS,GRADIENT_MS",
                        help="estimate from per-image costs measured before (e.g. on a GPU "
                        "node, or the CPU ms printed by a run) instead of measuring")
    args = parser.parse_args()
    costs = {}
    if args.costs:
        for item in args.costs:
            model, _, pair = item.partition("=")
            forward, gradient = (float(v) / 1000 for v in pair.split(","))
            costs[catalog.model(model).name] = (forward, gradient)
        print(f"given per-image costs (ms): {' '.join(args.costs)}")
    else:
        import tensorflow as tf

        device = "GPU" if tf.config.list_physical_devices("GPU") else \
            f"CPU ({os.cpu_count()} cores)"
        print(f"device: {device}; batch {args.batch}, median of {args.repeats}; load average "
              f"{os.getloadavg()[0]:.1f} at the start")
        for model in args.models:
            costs[model] = measure(model, args.batch, args.repeats)
    print("\npasses per image (forward, gradient):")
    passes = {e: explainer_passes(e) for e in catalog.EXPLAINERS}
    for name, (f, g) in passes.items():
        print(f"  {name:24s} {f:6d} {g:5d}")
    generation = evaluation = 0.0
    cells = [c for c in catalog.published_cells() if c.model in costs]
    for cell in cells:
        t_f, t_g = costs[cell.model]
        f, g = passes[cell.explainer]
        explain = f * t_f + g * t_g
        generation += IMAGES * (explain + t_f)  # + the prediction giving the target
        evaluation += IMAGES * metric_forwards() * t_f + \
            catalog.RANDOMIZATION_SUBSET * 3 * explain
    print(f"\n{len(cells)} published cells of the measured models, {IMAGES:,} images each:")
    print(f"  generation {hours(generation)}, evaluation {hours(evaluation)} of one worker")
    for n in args.workers:
        print(f"  on {n:3d} workers: generation {hours(generation / n)}, evaluation "
              f"{hours(evaluation / n)}, together {hours((generation + evaluation) / n)}")


if __name__ == "__main__":
    main()
