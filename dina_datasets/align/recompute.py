"""The fingerprints of the local images, computed exactly as generation computes maps.

`Recompute` builds the model with the chosen weights, kecam's preprocessing for it, its
prediction (the target, as in DINA) and the explainer with the catalog's settings, then
reduces each map to its fingerprint. `Preprocessed` (the preprocess route) needs no model:
it fingerprints the preprocessed inputs themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.align.fingerprints import DIM, fingerprints
from dina_datasets.errors import ConfigError
from dina_datasets.images import ImageEntry

# Explainers that cost one forward and one backward pass per image and draw no random
# numbers: their maps can be recomputed anywhere. Any other published cell of a model is
# aligned through one of these (all explainers of a model share the record order).
CHEAP = ("Saliency", "GradientInput", "GradCAM", "GradCAMPP")
FALLBACK = "Saliency"


def cheapest(model: str, explainer: str | None = None) -> str:
    """The explainer to recompute for a cell of `model`: `explainer` when it is cheap and
    deterministic, else Saliency (published for every model)."""
    if explainer is not None and catalog.explainer(explainer).name in CHEAP:
        return catalog.explainer(explainer).name
    return FALLBACK


def why_not(explainer: str) -> str:
    """Why a config's own explainer is not recomputed."""
    name = catalog.explainer(explainer).name
    return (f"{name} is not among the cheap deterministic explainers ({', '.join(CHEAP)}): "
            f"its maps cost many passes per image or draw random numbers; every explainer of "
            "a model shares one record order, so aligning through "
            f"{FALLBACK} gives {name}'s order too")


class Recompute:
    """`model`'s `explainer` maps of images, as fingerprints (see the module docstring)."""

    route = "maps"

    def __init__(self, model: str, explainer: str, weights: str = "pretrained",
                 batch_size: int = 32) -> None:
        import tensorflow as tf

        from dina_datasets.generation.explainers import make_explainer
        from dina_datasets.generation.models import build_model, input_size

        self.cell = catalog.Cell(model, explainer, allow_missing=True)
        if self.cell.explainer_spec.needs_conv and not self.cell.model_spec.has_conv:
            raise ConfigError(f"{self.cell.name}: {explainer} needs a convolutional layer and "
                              f"{model} has none: use --explainer {FALLBACK}")
        self.explainer = self.cell.explainer
        self.batch_size = batch_size
        net = build_model(model, weights)
        self.size = input_size(net)
        self.explain = make_explainer(self.explainer, net, model_name=self.cell.model,
                                      batch_size=batch_size)
        self.predict = tf.function(lambda x: net(x, training=False), input_signature=[
            tf.TensorSpec([None, self.size, self.size, 3], tf.float32)])
        self.num_classes = int(net.output_shape[-1])

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of the maps it makes."""
        return self.size, self.size, self.cell.explainer_spec.channels

    def batch(self, paths: Sequence[str]) -> np.ndarray:
        """Fingerprints of one batch of image files."""
        from dina_datasets.generation.preprocessing import preprocess_images

        x = preprocess_images(list(paths), self.cell.model, input_size=self.size)
        probs = np.asarray(self.predict(x))
        one_hot = np.eye(self.num_classes, dtype=np.float32)[probs.argmax(axis=-1)]
        return fingerprints(self.explain(x, one_hot))

    def fingerprints(self, entries: Sequence[ImageEntry],
                     update: Callable[[int], Any] | None = None) -> np.ndarray:
        """(len(entries), DIM) fingerprints, `update(n)` after each batch of n images."""
        out = np.empty((len(entries), DIM), np.float32)
        for start in range(0, len(entries), self.batch_size):
            chunk = entries[start:start + self.batch_size]
            out[start:start + len(chunk)] = self.batch([e.path for e in chunk])
            if update:
                update(len(chunk))
        return out


class Preprocessed(Recompute):
    """The preprocess route: fingerprints of the preprocessed inputs, no model."""

    route = "preprocess"

    def __init__(self, model: str, batch_size: int = 32) -> None:
        self.cell = None
        self.model = catalog.model(model).name
        self.explainer = None
        self.batch_size = batch_size
        self.size = catalog.model(model).input_size

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.size, self.size, 3

    def batch(self, paths: Sequence[str]) -> np.ndarray:
        from dina_datasets.generation.preprocessing import preprocess_images

        return fingerprints(preprocess_images(list(paths), self.model, input_size=self.size))
