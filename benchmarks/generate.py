"""Generation throughput: `dina generate`'s pipeline beside the bare xplique explainer.

For Saliency and Rise on one DINA model (random weights, offline), in the same run:
- pipeline from images: `generate()` over JPEG photos (decode, kecam preprocessing,
  prediction, explanation, record writing), images/s of its loop;
- pipeline reusing a preprocess file: the same run when the model's
  `preprocess_dataset.tfrecord` of these images exists (as for every explainer after the
  first, like the original), so inputs and predictions are read instead of recomputed;
- direct: the xplique explainer alone, built then called on the same preprocessed batches
  and targets (computed beforehand, untimed).
Each repeat starts from a freshly built model, so every variant pays its tracing once.
Prints medians and the overhead ratios (pipeline time / direct time - 1; target <= 10 %).

    python benchmarks/generate.py [--model EfficientNetV2] [--images 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins",
          "hubble_deep_field", "immunohistochemistry")


def write_photos(folder: str, n: int) -> list[str]:
    """n JPEG files made from scikit-image's bundled photographs (offline)."""
    from PIL import Image
    from skimage import data

    images = []
    for name in PHOTOS:
        try:
            images.append(np.asarray(getattr(data, name)()))
        except Exception:  # a sample that needs a download is skipped
            continue
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"photo_{i:04d}.jpg")
        Image.fromarray(images[i % len(images)]).convert("RGB").save(path, quality=92)
        paths.append(path)
    return paths


def direct_seconds(explainer: str, model, x: np.ndarray, targets: np.ndarray,
                   batch_size: int, params: dict) -> float:
    """Build the xplique explainer and explain every batch; wall seconds."""
    import xplique.attributions as attributions

    from dina_datasets import catalog

    started = time.perf_counter()
    spec = catalog.explainer(explainer)
    method = getattr(attributions, spec.method)(model, batch_size=batch_size,
                                                **{**spec.params, **params})
    for start in range(0, len(x), batch_size):
        np.asarray(method.explain(x[start:start + batch_size],
                                  targets[start:start + batch_size]))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="EfficientNetV2")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rise-samples", type=int, default=64,
                        help="Rise nb_samples (DINA: 8000; fewer to fit a CPU run)")
    args = parser.parse_args()

    import tensorflow as tf

    from dina_datasets.generation.models import build_model
    from dina_datasets.generation.pipeline import generate
    from dina_datasets.generation.preprocessing import preprocess_images

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "images")
        os.makedirs(src)
        paths = write_photos(src, args.images)
        model = build_model(args.model, "none")
        x = preprocess_images(paths, args.model)
        predictions = np.asarray(model.predict(x, batch_size=args.batch_size, verbose=0))
        targets = tf.one_hot(predictions.argmax(-1), predictions.shape[-1]).numpy()
        print(f"{args.model} (random weights), {args.images} images, batch {args.batch_size}, "
              f"{args.repeats} repeats after a warm-up, {os.cpu_count()} CPU(s)")
        reuse = os.path.join(tmp, "reuse")
        generate(args.model, "Saliency", src, reuse, weights="none", batch_size=args.batch_size,
                 part_size=args.images, write_preprocess=True, progress=False)

        def measure(variant: str, explainer: str, params: dict) -> float:
            if variant == "direct":
                tf.keras.backend.clear_session()
                fresh = build_model(args.model, "none")  # untimed; its traces are cold
                return direct_seconds(explainer, fresh, x, targets, args.batch_size, params)
            out = reuse if variant == "reuse" else os.path.join(tmp, "out")
            return generate(args.model, explainer, src, out, weights="none",
                            batch_size=args.batch_size, part_size=args.images, params=params,
                            overwrite=True, progress=False).loop_seconds

        variants = ["images", "reuse", "direct"]
        settings = {"Saliency": {}, "Rise": {"nb_samples": args.rise_samples}}
        for explainer, params in settings.items():
            times: dict[str, list[float]] = {v: [] for v in variants}
            for repeat in range(args.repeats + 1):  # repeat 0 warms up
                order = variants[repeat % 3:] + variants[:repeat % 3]  # rotated: load drifts
                for variant in order:
                    seconds = measure(variant, explainer, params)
                    if repeat:
                        times[variant].append(seconds)
            med = {key: statistics.median(values) for key, values in times.items()}
            shown = f" nb_samples={params['nb_samples']}" if params else ""
            print(f"{explainer}{shown}: direct xplique {args.images / med['direct']:.2f} "
                  f"images/s ({med['direct']:.2f} s)")
            for key, label in (("images", "pipeline from images"),
                               ("reuse", "pipeline reusing the preprocess file")):
                print(f"  {label}: {args.images / med[key]:.2f} images/s ({med[key]:.2f} s), "
                      f"overhead {100 * (med[key] / med['direct'] - 1):+.1f} %")


if __name__ == "__main__":
    main()
