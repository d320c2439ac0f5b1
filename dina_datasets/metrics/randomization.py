"""Randomization sanity checks (Adebayo et al. 2018): the maps should change when the target
or the model does. Both re-explain each sample and compare with its stored map; lower is
better.

They take an explainer factory, `explainer_factory(model) -> explain(inputs, targets) ->
maps`, e.g. `functools.partial(dina_datasets.generation.explainers.make_explainer, name)`.

With `activation="sigmoid"` or `"logits"` the model's softmax head is swapped first, so the
re-explanations (for the other class, or of the randomized copy) are made through that head,
while the stored maps were made through the model's own (softmax) head: part of the
difference then comes from the head itself.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.errors import AlignmentError, ConfigError
from dina_datasets.layout import DEFAULT_ACTIVATION
from dina_datasets.metrics.base import Metric, check_variant, reduce_channels
from dina_datasets.metrics.ranks import spearman
from dina_datasets.metrics.ssim import ssim

Explain = Callable[[np.ndarray, np.ndarray], Any]
ExplainerFactory = Callable[[Any], Explain]


def _maps(values: Any, like: np.ndarray) -> np.ndarray:
    maps = np.asarray(values.numpy() if hasattr(values, "numpy") else values, np.float32)
    if maps.ndim == like.ndim - 1:
        maps = maps[..., None]
    elif maps.ndim == like.ndim + 1 and maps.shape[-1] == 1:
        maps = maps[..., 0]
    if maps.shape != like.shape:
        raise AlignmentError(f"the explainer returned maps of shape {maps.shape[1:]}, but the "
                             f"stored explanations have shape {like.shape[1:]}")
    return maps


class _Reexplaining(Metric):
    def __init__(self, model: Any, explainer_factory: ExplainerFactory, *, batch_size: int,
                 seed: int, activation: str = DEFAULT_ACTIVATION) -> None:
        super().__init__(model, batch_size=batch_size, activation=activation)
        if not callable(explainer_factory):
            raise ConfigError("explainer_factory must be a callable: explainer_factory(model) "
                              "-> explain(inputs, targets) -> maps")
        self.explainer_factory = explainer_factory
        self.seed = int(seed)
        self._explain: Explain | None = None

    def _explainer(self) -> Explain:
        if self._explain is None:
            self._explain = self.explainer_factory(self.explained_model())
        return self._explain

    def explained_model(self) -> Any:
        return self.model


class RandomLogitMetric(_Reexplaining):
    """SSIM between the stored map and the map re-explained for a random other class.

    The off-class of sample i is uniform over the classes other than argmax(target), drawn
    from `numpy.random.default_rng((seed, i))`. SSIM is taken on the maps as stored
    (image-shaped, per channel, then averaged), as published.
    """

    name = "RandomLogitMetric"

    def __init__(self, model: Any, explainer_factory: ExplainerFactory, *,
                 batch_size: int = 32, seed: int = 42, activation: str = DEFAULT_ACTIVATION
                 ) -> None:
        super().__init__(model, explainer_factory, batch_size=batch_size, seed=seed,
                         activation=activation)

    def off_classes(self, classes: np.ndarray, num_classes: int, start: int = 0) -> np.ndarray:
        """A class other than classes[i] for each sample start + i, uniformly drawn."""
        if num_classes < 2:
            raise AlignmentError("RandomLogitMetric needs targets with at least 2 classes")
        draws = np.array([np.random.default_rng((self.seed, start + i)).integers(num_classes - 1)
                          for i in range(len(classes))], np.int64)
        return draws + (draws >= classes)

    def scores(self, inputs: np.ndarray | None, targets: np.ndarray | None,
               explanations: np.ndarray, *, start: int = 0) -> np.ndarray:
        num_classes = targets.shape[-1]
        off = self.off_classes(targets.argmax(axis=-1), num_classes, start)
        off_targets = np.eye(num_classes, dtype=np.float32)[off]
        maps = np.asarray(explanations, np.float32)
        other = _maps(self._explainer()(np.asarray(inputs, np.float32), off_targets), maps)
        return ssim(maps, other)


class ModelRandomizationMetric(_Reexplaining):
    """Spearman correlation between the stored map and the map of the same target under a
    model whose first layers have random weights.

    variant="dina" (published): the first int(len(model.layers) * fraction) entries of
    `model.layers`, input side, in forward order, all layers counted (those without weights
    change nothing); double-argsort ranks of the channel-mean maps.
    variant="xplique" (xplique >= 1.5): the last int(n * fraction) of the n layers that have
    weights, output side; tied ranks averaged. Here too the model is randomized once, so the
    scores do not depend on the batching.

    Weights become uniform [0, 1) draws from `numpy.random.default_rng(seed)`, on a copy of
    the model (`tf.keras.models.clone_model`); the model passed in is left untouched.
    """

    name = ""
    fraction_default: float | None = None

    def __init__(self, model: Any, explainer_factory: ExplainerFactory, *,
                 fraction: float | None = None, batch_size: int = 32, seed: int = 42,
                 variant: str = "dina", activation: str = DEFAULT_ACTIVATION) -> None:
        if fraction is None and self.fraction_default is None:
            raise ConfigError("ModelRandomizationMetric needs fraction= (the share of "
                              "model.layers to randomize), e.g. 0.05")
        self.fraction = float(self.fraction_default if fraction is None else fraction)
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError(f"fraction must be in [0, 1], got {self.fraction!r}")
        super().__init__(model, explainer_factory, batch_size=batch_size, seed=seed,
                         activation=activation)
        self.variant = check_variant(variant)
        self._randomized: Any = None

    @property
    def spec(self) -> catalog.MetricSpec:
        if self.name:
            return catalog.METRICS[self.name]
        return catalog.MetricSpec("ModelRandomizationMetric", "randomization", False,
                                  subset=catalog.RANDOMIZATION_SUBSET,
                                  params=MappingProxyType({"fraction": self.fraction}))

    def randomized_layers(self, model: Any) -> list[Any]:
        """The layers of `model` whose weights this metric replaces."""
        layers = list(getattr(model, "layers", None) or [])
        if not layers:
            raise ConfigError(f"{self.name or 'ModelRandomizationMetric'} randomizes a Keras "
                              f"model's layers; got {type(model).__name__} without layers")
        if self.variant == "xplique":
            weighted = [layer for layer in layers if layer.get_weights()][::-1]
            return weighted[:int(len(weighted) * self.fraction)]
        return layers[:int(len(layers) * self.fraction)]

    def explained_model(self) -> Any:
        """A copy of the model with the chosen layers' weights randomized (built once)."""
        if self._randomized is None:
            import tensorflow as tf

            clone = tf.keras.models.clone_model(self.model)
            clone.set_weights(self.model.get_weights())
            rng = np.random.default_rng(self.seed)
            for layer in self.randomized_layers(clone):
                weights = layer.get_weights()
                if weights:
                    layer.set_weights([_uniform(rng, w) for w in weights])
            self._randomized = clone
        return self._randomized

    def scores(self, inputs: np.ndarray | None, targets: np.ndarray | None,
               explanations: np.ndarray, *, start: int = 0) -> np.ndarray:
        maps = np.asarray(explanations, np.float32)
        other = _maps(self._explainer()(np.asarray(inputs, np.float32),
                                        np.asarray(targets, np.float32)), maps)
        n = len(maps)
        a = reduce_channels(maps).reshape(n, -1)
        b = reduce_channels(other).reshape(n, -1)
        return spearman(a, b, ties="average" if self.variant == "xplique" else "ordinal")


def _uniform(rng: np.random.Generator, weight: np.ndarray) -> np.ndarray:
    weight = np.asarray(weight)
    if not np.issubdtype(weight.dtype, np.floating):
        return weight
    dtype = np.float64 if weight.dtype == np.float64 else np.float32
    return rng.random(weight.shape, dtype).astype(weight.dtype)


class ModelRandomizationMetric01(ModelRandomizationMetric):
    """ModelRandomizationMetric with the first 1.5 % of the layers randomized."""

    name = "ModelRandomizationMetric01"
    fraction_default = catalog.METRICS[name].params["fraction"]


class ModelRandomizationMetric05(ModelRandomizationMetric):
    """ModelRandomizationMetric with the first 5 % of the layers randomized."""

    name = "ModelRandomizationMetric05"
    fraction_default = catalog.METRICS[name].params["fraction"]
