"""Generation throughput: `dina generate`'s pipeline beside the bare xplique explainer.

For Saliency and Rise on one DINA model (random weights, offline), in the same run:
- pipeline from images: `generate()` over JPEG photos (decode, kecam preprocessing,
  prediction, explanation, record writing), images/s of its loop;
- pipeline reusing a preprocess file: the same run when the model's
  `preprocess_dataset.tfrecord` of these images exists (as for every explainer after the
  first, like the original), so inputs and predictions are read instead of recomputed;
- direct: the xplique explainer alone, built then called on the same preprocessed batches
  and targets (computed beforehand, untimed);
- direct + predict: the same, with the targets computed in the timed loop by the model's
  forward pass (one tf.function, as the pipeline does): what xplique needs to explain the
  model's own prediction.
Each repeat starts from a freshly built model, so every variant pays its tracing once (a
fixed cost, large beside a few batches: use more images to see the steady rate).
Prints medians and the overhead ratios (variant time / baseline time - 1; target <= 10 %).

    python benchmarks/generate.py [--model EfficientNetV2] [--images 48] [--rise-images 8]
        [--repeats 3] [--explainers Saliency Rise]
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


def direct_seconds(explainer: str, model, x: np.ndarray, targets: np.ndarray | None,
                   batch_size: int, params: dict) -> float:
    """Build the xplique explainer and explain every batch; wall seconds. Without
    `targets`, each batch's targets are the one-hot argmax of the model's forward pass."""
    import tensorflow as tf
    import xplique.attributions as attributions

    from dina_datasets import catalog

    started = time.perf_counter()
    spec = catalog.explainer(explainer)
    method = getattr(attributions, spec.method)(model, batch_size=batch_size,
                                                **{**spec.params, **params})
    predict = tf.function(lambda batch: model(batch, training=False), input_signature=[
        tf.TensorSpec([None, *x.shape[1:]], tf.float32)])
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        if targets is None:
            probs = np.asarray(predict(batch))
            batch_targets = np.eye(probs.shape[-1], dtype=np.float32)[probs.argmax(-1)]
        else:
            batch_targets = targets[start:start + batch_size]
        np.asarray(method.explain(batch, batch_targets))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="EfficientNetV2")
    parser.add_argument("--images", type=int, default=48, help="images for Saliency")
    parser.add_argument("--rise-images", type=int, default=8, help="images for Rise")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rise-samples", type=int, default=64,
                        help="Rise nb_samples (DINA: 8000; fewer to fit a CPU run)")
    parser.add_argument("--explainers", nargs="+", default=["Saliency", "Rise"],
                        choices=["Saliency", "Rise"])
    args = parser.parse_args()
    print(f"{args.model} (random weights), batch {args.batch_size}, {args.repeats} repeats "
          f"after a warm-up, {os.cpu_count()} CPU(s)")
    settings = {"Saliency": (args.images, {}),
                "Rise": (args.rise_images, {"nb_samples": args.rise_samples})}
    for explainer in args.explainers:
        with tempfile.TemporaryDirectory() as tmp:
            count, params = settings[explainer]
            run_one(args, tmp, explainer, count, params)


def run_one(args: argparse.Namespace, tmp: str, explainer: str, count: int,
            params: dict) -> None:
    """Time every variant on `count` images, rotated over the repeats; print medians."""
    import tensorflow as tf

    from dina_datasets.generation.models import build_model
    from dina_datasets.generation.pipeline import generate
    from dina_datasets.generation.preprocessing import preprocess_images

    src = os.path.join(tmp, "images")
    os.makedirs(src)
    paths = write_photos(src, count)
    model = build_model(args.model, "none")
    x = preprocess_images(paths, args.model)
    predictions = np.asarray(model.predict(x, batch_size=args.batch_size, verbose=0))
    targets = tf.one_hot(predictions.argmax(-1), predictions.shape[-1]).numpy()
    reuse = os.path.join(tmp, "reuse")
    generate(args.model, "Saliency", src, reuse, weights="none", batch_size=args.batch_size,
             part_size=count, write_preprocess=True, progress=False)

    def measure(variant: str) -> float:
        if variant.startswith("direct"):
            tf.keras.backend.clear_session()
            fresh = build_model(args.model, "none")  # untimed; its traces are cold
            given = targets if variant == "direct" else None
            return direct_seconds(explainer, fresh, x, given, args.batch_size, params)
        out = reuse if variant == "reuse" else os.path.join(tmp, "out")
        return generate(args.model, explainer, src, out, weights="none",
                        batch_size=args.batch_size, part_size=count, params=params,
                        overwrite=True, progress=False).loop_seconds

    variants = ["images", "reuse", "direct", "direct+predict"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    for repeat in range(args.repeats + 1):  # repeat 0 warms up
        shift = repeat % len(variants)
        for variant in variants[shift:] + variants[:shift]:  # rotated: load drifts
            seconds = measure(variant)
            if repeat:
                times[variant].append(seconds)
    med = {key: statistics.median(values) for key, values in times.items()}
    shown = f" nb_samples={params['nb_samples']}" if params else ""
    print(f"{explainer}{shown}, {count} images:")
    rows = (("direct", "direct xplique, targets given", None),
            ("direct+predict", "direct xplique + forward for targets", None),
            ("images", "pipeline from image files", "direct+predict"),
            ("reuse", "pipeline reusing the preprocess file", None))
    for key, label, other in rows:
        ratios = [f"{100 * (med[key] / med[base] - 1):+.1f} % vs {base}"
                  for base in ("direct", other) if key != "direct" and base]
        print(f"  {label}: {count / med[key]:.2f} images/s ({med[key]:.2f} s; runs "
              f"{', '.join(f'{t:.2f}' for t in times[key])})"
              + (f", {'; '.join(ratios)}" if ratios else ""))

if __name__ == "__main__":
    main()
