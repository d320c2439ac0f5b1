"""Fidelity metrics: Insertion and Deletion (RISE, Petsiuk et al. 2018) and MuFidelity
(Bhatt et al. 2020), with DINA's definitions (FACTS.md §4), per sample.

The model is a Keras model or any callable mapping a float32 batch (N, H, W, C) to scores
(N, classes); the score of an input is sum(model(x) * target). `activation="sigmoid"` or
`"logits"` swaps a Keras model's softmax head first (the targets stay the same one-hot
classes), so the curves follow the sigmoid or the logit of the target class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dina_datasets.errors import ConfigError, check_positive_int
from dina_datasets.layout import DEFAULT_ACTIVATION
from dina_datasets.metrics.base import Metric, check_variant, reduce_channels
from dina_datasets.metrics.perturbation import Fill, perturbed_scores
from dina_datasets.metrics.ranks import spearman

Baseline = float | Callable[[np.ndarray], np.ndarray]


def _baselines(baseline: Baseline, inputs: np.ndarray) -> np.ndarray | float:
    if callable(baseline):
        values = np.asarray(baseline(inputs), np.float32)
        return np.broadcast_to(values, inputs.shape)
    return float(baseline)


def descending_ranks(maps: np.ndarray, variant: str = "dina") -> np.ndarray:
    """(N, H*W) pixel indices, most important first. dina: ties keep the lower index first
    (`tf.argsort(direction="DESCENDING")`); xplique: `np.argsort(...)[:, ::-1]`."""
    flat = reduce_channels(maps).reshape(len(maps), -1)
    if variant == "xplique":
        return np.argsort(flat, axis=1)[:, ::-1]
    return np.argsort(-flat, axis=1, kind="stable")


def switch_counts(num_pixels: int, nb_steps: int, max_percentage_perturbed: float = 1.0,
                  variant: str = "dina") -> np.ndarray:
    """Pixels switched at each step. dina: those of rank <= linspace(0, max - 1, nb_steps),
    float32 as `tf.linspace` computes it, i.e. floor(step) + 1; xplique:
    int(linspace(0, max, nb_steps)), from no pixel to all."""
    if variant == "xplique":
        top = int(np.floor(num_pixels * max_percentage_perturbed))
        return np.linspace(0, top, nb_steps, dtype=np.int32).astype(np.int64)
    last = np.float32(np.floor(num_pixels * max_percentage_perturbed) - 1)
    delta = last / np.float32(nb_steps - 1)
    steps = np.arange(nb_steps, dtype=np.float32) * delta
    steps[-1] = last
    return np.floor(steps).astype(np.int64) + 1


class CausalFidelity(Metric):
    """Insertion or Deletion: the model's score along a path that switches pixels in order.

    Pixels are ranked by the channel mean of the map, highest first. At step k the pixels of
    rank <= linspace(0, H*W - 1, nb_steps)[k] are switched, all channels together (Deletion:
    to the baseline; Insertion: from the baseline to the image). Score = mean over k of
    (p_k + p_{k+1}) / 2, the trapezoid area under the curve of the target's score.

    `variant="xplique"` follows xplique's `Deletion`/`Insertion(steps=nb_steps - 1)`: the
    k-th step switches int(linspace(0, H*W, nb_steps))[k] pixels (none first, all last).
    """

    mode = ""

    def __init__(self, model: Any, *, nb_steps: int = 200, baseline: Baseline = 0.0,
                 max_percentage_perturbed: float = 1.0, batch_size: int = 32,
                 variant: str = "dina", activation: str = DEFAULT_ACTIVATION) -> None:
        super().__init__(model, batch_size=batch_size, activation=activation)
        self.variant = check_variant(variant)
        check_positive_int("nb_steps", nb_steps, minimum=2)
        if not 0.0 < max_percentage_perturbed <= 1.0:
            raise ConfigError("max_percentage_perturbed must be in (0, 1], got "
                              f"{max_percentage_perturbed!r}")
        self.nb_steps = int(nb_steps)
        self.baseline = baseline
        self.max_percentage_perturbed = max_percentage_perturbed

    def curves(self, inputs: np.ndarray, targets: np.ndarray, explanations: np.ndarray
               ) -> np.ndarray:
        """(N, nb_steps) scores of the target along the path, for one batch."""
        inputs = np.asarray(inputs, np.float32)
        return perturbed_scores(self.forward, targets, self.nb_steps,
                                self.path(inputs, explanations), inputs.shape[1:],
                                self.batch_size)

    def path(self, inputs: np.ndarray, explanations: np.ndarray) -> Fill:
        """fill(out, first, stop): the images of pairs [first, stop), pair p being step
        p % nb_steps of sample p // nb_steps."""
        n, height, width, channels = inputs.shape
        pixels = height * width
        counts = switch_counts(pixels, self.nb_steps, self.max_percentage_perturbed,
                               self.variant)
        order = descending_ranks(explanations, self.variant)
        image = inputs.reshape(n, pixels, channels)
        base = _baselines(self.baseline, inputs)
        base = base if isinstance(base, float) else base.reshape(n, pixels, channels)
        kept, switched = (image, base) if self.mode == "deletion" else (base, image)
        steps = self.nb_steps

        def fill(out: np.ndarray, first: int, stop: int) -> None:
            flat = out.reshape(len(out), pixels, channels)
            for j, pair in enumerate(range(first, stop)):
                s, k = divmod(pair, steps)
                if j and k:  # continue from the previous step of the same sample
                    flat[j] = flat[j - 1]
                    idx = order[s, counts[k - 1]:counts[k]]
                else:
                    flat[j] = kept if isinstance(kept, float) else kept[s]
                    idx = order[s, :counts[k]]
                flat[j, idx] = switched if isinstance(switched, float) else switched[s, idx]

        return fill

    def scores(self, inputs: np.ndarray | None, targets: np.ndarray | None,
               explanations: np.ndarray, *, start: int = 0) -> np.ndarray:
        p = self.curves(inputs, targets, explanations)
        return ((p[:, :-1] + p[:, 1:]) / 2.0).mean(axis=1)


class Deletion(CausalFidelity):
    """Area under the target's score as the most important pixels go to the baseline.

    Lower is better.
    """

    name = "Deletion"
    mode = "deletion"


class Insertion(CausalFidelity):
    """Area under the target's score as the most important pixels come back from the
    baseline. Higher is better."""

    name = "Insertion"
    mode = "insertion"


def nearest_indices(grid: int, size: int) -> np.ndarray:
    """Grid cell of each of `size` pixels under nearest resizing with half-pixel centres
    (`tf.image.resize(method="nearest")`)."""
    return np.minimum(np.floor((np.arange(size) + 0.5) * grid / size).astype(np.int64),
                      grid - 1)


class MuFidelity(Metric):
    """Spearman correlation, over random grid masks, between the drop of the target's score
    and the attribution the mask removes.

    Per draw: an 8x8 grid whose cells are kept where uniform > subset_percent, resized
    (nearest) to the image; x' = x * m + baseline * (1 - m); delta = p(x) - p(x');
    attr = sum(E * (1 - m)) with E the channel mean of the map. Higher is better.

    The masks of sample i come from `numpy.random.default_rng((seed, i))`: the scores repeat
    for a seed whatever the batching. `variant="dina"` ranks by double argsort as published;
    `variant="xplique"` averages tied ranks and scores a constant curve 0, as xplique does.
    """

    name = "MuFidelity"

    def __init__(self, model: Any, *, nb_samples: int = 200, grid_size: int = 8,
                 subset_percent: float = 0.2, baseline: Baseline = 0.0, batch_size: int = 32,
                 seed: int = 42, variant: str = "dina", activation: str = DEFAULT_ACTIVATION
                 ) -> None:
        super().__init__(model, batch_size=batch_size, activation=activation)
        check_positive_int("nb_samples", nb_samples, minimum=2)
        check_positive_int("grid_size", grid_size)
        self.nb_samples = int(nb_samples)
        self.grid_size = int(grid_size)
        self.subset_percent = float(subset_percent)
        self.baseline = baseline
        self.seed = int(seed)
        self.variant = check_variant(variant)

    def masks(self, index: int) -> np.ndarray:
        """(nb_samples, grid, grid) float32 masks of sample `index` (1 = kept)."""
        rng = np.random.default_rng((self.seed, index))
        draws = rng.random((self.nb_samples, self.grid_size, self.grid_size), np.float32)
        return (draws > np.float32(self.subset_percent)).astype(np.float32)

    def scores(self, inputs: np.ndarray | None, targets: np.ndarray | None,
               explanations: np.ndarray, *, start: int = 0) -> np.ndarray:
        inputs = np.asarray(inputs, np.float32)
        n, height, width, _ = inputs.shape
        g, draws = self.grid_size, self.nb_samples
        rows, cols = nearest_indices(g, height), nearest_indices(g, width)
        masks = np.stack([self.masks(start + i) for i in range(n)])  # (n, draws, g, g)
        base = _baselines(self.baseline, inputs)

        def fill(out: np.ndarray, first: int, stop: int) -> None:
            for j, pair in enumerate(range(first, stop)):
                s, k = divmod(pair, draws)
                m = masks[s, k][np.ix_(rows, cols)][..., None]
                if isinstance(base, float) and base == 0.0:
                    np.multiply(inputs[s], m, out=out[j])
                else:
                    b = base if isinstance(base, float) else base[s]
                    out[j] = inputs[s] * m + b * (1.0 - m)

        reference = self.forward.scores(inputs, targets)
        perturbed = perturbed_scores(self.forward, targets, draws, fill, inputs.shape[1:],
                                     self.batch_size)
        delta = reference[:, None] - perturbed
        # sum(E * (1 - m)) over pixels = sum over cells of (1 - m_cell) * (E summed per cell)
        cells = (rows[:, None] * g + cols[None, :]).ravel()
        maps = reduce_channels(explanations).reshape(n, -1).astype(np.float64)
        cell_sums = np.stack([np.bincount(cells, weights=e, minlength=g * g) for e in maps])
        attr = np.einsum("nkc,nc->nk", 1.0 - masks.reshape(n, draws, g * g), cell_sums)
        return spearman(attr, delta, ties="average" if self.variant == "xplique" else "ordinal",
                        nan_to_zero=self.variant == "xplique")
