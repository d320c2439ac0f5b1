"""A model whose right answer is known: its output depends only on a planted region of the
input, so a faithful explanation puts its mass there and nowhere else.

`Planted` is a contributed model, registered as any user's would be (`register()`, or a
registry file with `factory = "dina_datasets.demo.planted:planted_model"`):

    x (32 x 32 x 3, pixels / 255: kecam's "raw01")
      -> Flatten -> Rescaling(1 / 1024) -> Dense "region_mean" (3 units, no bias, weight
         1024 / 80 on the region's pixels, 0 elsewhere): the mean of each colour channel over
         the region, rows 4..11 and columns 18..27 (80 pixels)
      -> Dense "predictions" (1000 units, softmax): fixed weights N(0, 1) * 30 drawn with
         numpy's default_rng(0), no bias.

(The Rescaling keeps the region layer's output at the same scale once a randomization
metric gives it uniform [0, 1) weights, so that the randomized model is not saturated and
its gradients are not all zero.)

The region is off-centre and not square, so a transposed or flipped map misses it. Deleting
the region (baseline 0) sends every logit to 0 (probability 1/1000), so Deletion and
Insertion reward a map that ranks the region first; Saliency and IntegratedGradients are 0
outside it. Its weights are its definition: `weights="pretrained"` and `"none"` both give
them (a weights FILE is loaded over them). With four layers, the published
ModelRandomizationMetric01/05 randomize none of them (1.5 % and 5 % of 5 layers round down
to 0): use `ModelRandomizationMetric(fraction=0.8)` to randomize the first four layers, the
region layer included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import dina_datasets.generation  # noqa: F401  (legacy Keras before TensorFlow; no import of it)
from dina_datasets import catalog

NAME = "Planted"
SIZE = 32
ROWS = (4, 12)  # region rows [4, 12)
COLS = (18, 28)  # region columns [18, 28)
CLASSES = catalog.NUM_CLASSES
SCALE = 30.0
SEED = 0
FACTORY = "dina_datasets.demo.planted:planted_model"


def region(size: int = SIZE) -> np.ndarray:
    """(size, size) bool: True inside the planted region."""
    if size != SIZE:
        raise ValueError(f"the planted model takes {SIZE}x{SIZE} inputs, not {size}")
    mask = np.zeros((size, size), bool)
    mask[ROWS[0]:ROWS[1], COLS[0]:COLS[1]] = True
    return mask


def ideal_maps(n: int) -> np.ndarray:
    """(n, 32, 32, 1) float32: the right answer, 1 inside the region and 0 elsewhere."""
    return np.repeat(region().astype(np.float32)[None, ..., None], n, axis=0)


def region_weights() -> np.ndarray:
    """(32 * 32 * 3, 3) float32: the region_mean layer's kernel (after the 1/1024
    rescaling)."""
    mask = region().reshape(-1)
    kernel = np.zeros((SIZE * SIZE, 3, 3), np.float32)
    for c in range(3):
        kernel[mask, c, c] = SIZE * SIZE / mask.sum()
    return kernel.reshape(SIZE * SIZE * 3, 3)


def head_weights() -> np.ndarray:
    """(3, 1000) float32: the fixed classifier kernel."""
    return (np.random.default_rng(SEED).standard_normal((3, CLASSES)) * SCALE).astype(np.float32)


def planted_model(weights: str = "none") -> Any:
    """The planted Keras model (see the module docstring); softmax head."""
    import tensorflow as tf

    inputs = tf.keras.Input((SIZE, SIZE, 3), name="image")
    flat = tf.keras.layers.Flatten(name="pixels")(inputs)
    scaled = tf.keras.layers.Rescaling(1.0 / (SIZE * SIZE), name="per_pixel")(flat)
    means = tf.keras.layers.Dense(3, use_bias=False, name="region_mean")(scaled)
    probs = tf.keras.layers.Dense(CLASSES, use_bias=False, activation="softmax",
                                  name="predictions")(means)
    model = tf.keras.Model(inputs, probs, name=NAME)
    model.get_layer("region_mean").set_weights([region_weights()])
    model.get_layer("predictions").set_weights([head_weights()])
    if weights not in ("pretrained", "none"):
        from dina_datasets.generation.models import load_weights

        load_weights(model, weights, NAME)
    return model


def register() -> catalog.ModelSpec:
    """Register `Planted` as a contributed model (again: replaced)."""
    return catalog.register_model(NAME, FACTORY, input_size=SIZE, rescale_mode="raw01",
                                  has_conv=False, replace=True)


# Metrics under which the planted model's ranking is right by construction, and the
# explainers that must beat the random reference there.
RANKED_METRICS = ("Insertion", "Deletion")
FAITHFUL = ("Saliency", "IntegratedGradients")


ALPHA = 0.01  # the leaderboard's level: "better" means p_adjusted < ALPHA
REFERENCE = "RandomExp"


def comparison(board: Any, metric: str, explainer: str) -> tuple[str, float, int] | None:
    """(verdict of `explainer` over RandomExp, p_adjusted, n) of the planted model under
    `metric` from a leaderboard's pairs (None when the pair is not there)."""
    pairs = board.pairs
    if pairs is None or not len(pairs):
        return None
    rows = pairs[(pairs["model"] == NAME) & (pairs["metric"] == metric)]
    flip = {"better": "worse", "worse": "better", "higher": "lower", "lower": "higher"}
    for r in rows.itertuples():
        if (r.a, r.b) == (explainer, REFERENCE):
            return str(r.verdict), float(r.p_adjusted), int(r.n)
        if (r.a, r.b) == (REFERENCE, explainer):
            return flip.get(r.verdict, str(r.verdict)), float(r.p_adjusted), int(r.n)
    return None


def verdict(board: Any) -> str:
    """Whether a leaderboard finds the planted model's gradient maps better than RandomExp
    under Insertion and Deletion, as it must: the paired test's verdict at p_adjusted < 0.01
    (one line per comparison, "right" or "WRONG")."""
    lines = []
    for metric in RANKED_METRICS:
        reference = board.get(f"{NAME}-{REFERENCE}", metric)
        for explainer in FAITHFUL:
            entry = board.get(f"{NAME}-{explainer}", metric)
            if reference is None or entry is None:
                continue
            found = comparison(board, metric, explainer)
            higher = catalog.METRICS[metric].higher_is_better
            line = (f"  {metric} ({'higher' if higher else 'lower'} is better): {explainer} "
                    f"{entry.mean:.4g} vs {REFERENCE} {reference.mean:.4g}")
            if found is None:  # e.g. flagged degenerate, so not compared
                lines.append(f"{line}: not compared (no paired verdict): WRONG")
                continue
            word, p_adjusted, n = found
            right = word == "better" and p_adjusted < ALPHA
            lines.append(f"{line} on {n} images: {word} (p_adjusted {p_adjusted:.2g}): "
                         f"{'right' if right else 'WRONG'}")
    if not lines:
        return (f"{NAME}: no Insertion/Deletion scores of {NAME}-{REFERENCE} and "
                f"{NAME}-Saliency/IntegratedGradients to check")
    return (f"{NAME} (its right answer is known: the region; right = better than "
            f"{REFERENCE} at p_adjusted < {ALPHA}):\n" + "\n".join(lines))
