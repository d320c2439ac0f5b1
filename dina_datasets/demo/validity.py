"""Planted validity, a unit test of a metric: under the planted model (`demo.planted`, whose
right answer is known: the region) does the metric score the ideal map (1 in the region, 0
elsewhere) better than each wrong map, on every image?

Wrong maps: RandomExp (uniform noise, `generation.baselines.random_exp`), the ideal map
reversed (flipped upside down) and shifted (rolled 10 columns): the last two have the ideal
map's values in the wrong place, so they miss the region entirely. The fidelity metrics
(Insertion, Deletion, MuFidelity) must put the ideal map first against all three; the
complexity metrics (Sparseness, Complexity) read the map alone and cannot see where it is,
so they are asked only to prefer the ideal map to RandomExp's noise. The randomization
metrics re-explain with an explainer, and an ideal map has none: not tested here.

Inputs are random colour images of the model's size (a seed), targets the model's own
predictions. Needs TensorFlow (the `generate` extra).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.demo import planted
from dina_datasets.errors import check_positive_int

IMAGES = 64
SHIFT = 10  # columns: the region (columns 18..27) lands on 28..31 and 0..5, missing it
COLUMNS = ["model", "activation", "metric", "against", "n", "right", "share_right",
           "all_right"]


def wrong_maps(n: int, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """The wrong maps (n, 32, 32, 1) float32 each: RandomExp, reversed, shifted."""
    from dina_datasets.generation.baselines import random_exp

    ideal = planted.ideal_maps(n)
    return {"RandomExp": np.asarray(random_exp(None, inputs), np.float32),
            "reversed": ideal[:, ::-1].copy(),
            "shifted": np.roll(ideal, SHIFT, axis=2)}


def comparisons(metric: str) -> tuple[str, ...]:
    """The wrong maps a metric must rank below the ideal map (empty: not tested)."""
    family = catalog.metric(metric).family
    if family == "fidelity":
        return ("RandomExp", "reversed", "shifted")
    if family == "complexity":
        return ("RandomExp",)
    return ()


def inputs_and_targets(model: Any, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """n random colour images of the planted model's size and its one-hot predictions."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n, planted.SIZE, planted.SIZE, 3), dtype=np.float32)
         * rng.random((n, 1, 1, 3), dtype=np.float32))
    predictions = np.asarray(model(x)).argmax(-1)
    return x, np.eye(catalog.NUM_CLASSES, dtype=np.float32)[predictions]


def planted_validity(metrics: tuple[str, ...] | None = None, *, images: int = IMAGES,
                     seed: int = 1, batch_size: int = 256,
                     metric_params: dict[str, dict[str, Any]] | None = None) -> Any:
    """One row per (metric, wrong map): `COLUMNS` (a pandas frame): on how many of `images`
    images the metric scores the ideal map strictly better than the wrong map. `metrics`:
    default every catalog metric with a comparison; `metric_params` override a metric's
    parameters (e.g. fewer Deletion steps)."""
    import pandas as pd

    from dina_datasets.generation.models import build_model
    from dina_datasets.metrics import build

    check_positive_int("images", images)
    names = [catalog.metric(m).name for m in (metrics or catalog.METRICS)]
    names = [m for m in names if comparisons(m)]
    if planted.NAME not in catalog.MODELS:
        planted.register()
    model = build_model(planted.NAME, "none")
    x, targets = inputs_and_targets(model, images, seed)
    ideal, wrong = planted.ideal_maps(images), wrong_maps(images, x)
    rows = []
    for metric in names:
        spec = catalog.metric(metric)
        params = dict((metric_params or {}).get(metric, {}))
        if spec.needs_model:
            scorer = build(metric, model, batch_size=batch_size, **params)
            good = np.asarray(scorer(x, targets, ideal))
        else:
            scorer = build(metric, **params)
            good = np.asarray(scorer(ideal))
        sign = 1.0 if spec.higher_is_better else -1.0
        for against in comparisons(metric):
            other = np.asarray(scorer(x, targets, wrong[against]) if spec.needs_model
                               else scorer(wrong[against]))
            right = int((sign * (good - other) > 0).sum())
            rows.append([planted.NAME, "softmax", metric, against, images, right,
                         right / images, right == images])
    return pd.DataFrame(rows, columns=COLUMNS)


def planted_if_present(scores: Any, filters=(), images: int = 0,
                       storage_options: dict[str, Any] | None = None) -> Any:
    """`planted_validity` on `images` images (default `IMAGES`) when asked (`images` > 0) or
    when the scores table holds Planted configs; else None."""
    if not images:
        from dina_datasets.analysis.table import open_scores

        found = open_scores(scores, filters, None, storage_options).query(
            "SELECT DISTINCT model FROM scores").fetchall()
        if not any(row[0] == planted.NAME for row in found):
            return None
    return planted_validity(images=images or IMAGES)
