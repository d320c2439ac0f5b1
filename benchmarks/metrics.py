"""Insertion and Deletion (nb_steps=200) on a small Keras model: seconds per sample.

(ours)  dina_datasets.metrics.Deletion / Insertion, per-sample scores;
(a)     the pure forward passes of the same perturbed inputs (built beforehand, untimed),
        through the same compiled model call and batch size: the floor for any implementation;
(b)     xplique 2.0.2's Deletion on the same data (steps=199, i.e. 200 forward passes per
        sample as well), same run.
Prints the median of each and the ratios ours/a (target <= 1.15) and ours/b.

    python benchmarks/metrics.py [--samples 4] [--repeats 5] [--width 32] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

import numpy as np
import tensorflow as tf

from dina_datasets.metrics import Deletion, Insertion
from dina_datasets.metrics.base import Forward

NB_STEPS = 200
SIZE = 224
CLASSES = 1000


def small_model(width: int) -> tf.keras.Model:
    """Three strided 3x3 convolutions, global pooling and a 1000-way softmax."""
    layers = tf.keras.layers
    tf.random.set_seed(0)
    inputs = layers.Input((SIZE, SIZE, 3))
    h = inputs
    for k in range(3):
        h = layers.Conv2D(width * 2**k, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.GlobalAveragePooling2D()(h)
    return tf.keras.Model(inputs, layers.Dense(CLASSES, activation="softmax")(h))


def pure_forward(metric: Deletion | Insertion, inputs: np.ndarray, targets: np.ndarray,
                 maps: np.ndarray) -> float:
    """Seconds spent in the forward passes alone, over the metric's own perturbed inputs,
    each batch built beforehand (untimed) in the same fixed-size buffer."""
    forward = Forward(metric.model)
    size = metric.batch_size
    buffer = np.zeros((size, *inputs.shape[1:]), np.float32)
    forward(buffer)
    seconds = 0.0
    for start in range(0, len(inputs), size):
        part = slice(start, start + size)
        fill = metric.path(inputs[part], maps[part])
        total = len(inputs[part]) * metric.nb_steps
        for first in range(0, total, size):
            fill(buffer, first, min(first + size, total))
            begin = time.perf_counter()
            forward.scores(buffer, targets[np.zeros(size, int)])
            seconds += time.perf_counter() - begin
    return seconds


def timed(fn) -> tuple[float, object]:
    begin = time.perf_counter()
    out = fn()
    return time.perf_counter() - begin, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=32, help="channels of the first conv")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from xplique.metrics import Deletion as XpliqueDeletion

    model = small_model(args.width)
    rng = np.random.default_rng(0)
    n = args.samples
    inputs = rng.random((n, SIZE, SIZE, 3), np.float32)
    maps = rng.standard_normal((n, SIZE, SIZE, 1)).astype(np.float32)
    targets = np.eye(CLASSES, dtype=np.float32)[Forward(model)(inputs).argmax(-1)]
    metrics = {cls.name: cls(model, nb_steps=NB_STEPS, batch_size=args.batch_size)
               for cls in (Deletion, Insertion)}
    for metric in metrics.values():  # trace the graph once before timing
        metric(inputs[:1], targets[:1], maps[:1])

    times: dict[str, list[float]] = {}
    scores: dict[str, object] = {}
    for repeat in range(args.repeats):
        for name, metric in metrics.items():
            runs = [("ours", lambda m=metric: timed(lambda: m(inputs, targets, maps))),
                    ("(a) forward", lambda m=metric: (pure_forward(m, inputs, targets, maps),
                                                      None))]
            for label, run in runs[::1 if repeat % 2 == 0 else -1]:  # alternate the order
                seconds, out = run()
                times.setdefault(f"{label} {name}", []).append(seconds)
                scores[name] = out if out is not None else scores.get(name)
        xplique = XpliqueDeletion(model, inputs, targets, batch_size=args.batch_size,
                                  steps=NB_STEPS - 1)
        seconds, scores["xplique"] = timed(lambda x=xplique: x.evaluate(maps))
        times.setdefault("(b) xplique Deletion", []).append(seconds)
    same_path = Deletion(model, nb_steps=NB_STEPS, batch_size=args.batch_size,
                         variant="xplique")(inputs, targets, maps)

    per_sample = {k: statistics.median(v) / n for k, v in times.items()}
    print(f"{n} samples x {NB_STEPS} steps, batch {args.batch_size}, model width "
          f"{args.width}, {args.repeats} repeats; TF threads: default")
    for key, value in per_sample.items():
        print(f"  {key:<24} {value * 1e3:9.2f} ms/sample (median)")
    for name in metrics:
        ratio = per_sample[f"ours {name}"] / per_sample[f"(a) forward {name}"]
        print(f"  {name}: ours / (a) pure forward = {ratio:.3f}  (target <= 1.15)")
    ratio = per_sample["ours Deletion"] / per_sample["(b) xplique Deletion"]
    print(f"  Deletion: ours / (b) xplique = {ratio:.3f}")
    print(f"  mean Deletion score: ours {np.mean(scores['Deletion']):.8f} (published path: "
          f"1 pixel first); ours variant='xplique' {np.mean(same_path):.8f}; xplique "
          f"{float(scores['xplique']):.8f}")


if __name__ == "__main__":
    main()
