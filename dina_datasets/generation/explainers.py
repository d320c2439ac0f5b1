"""Attribution methods as DINA ran them: the catalog's xplique class and hyperparameters,
DinoV2's operator, IntegratedGradients' dataset-mean baseline; contributed callables too."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

import dina_datasets.generation  # noqa: F401  (legacy Keras before TensorFlow)
from dina_datasets import catalog
from dina_datasets.errors import ConfigError, DinaError, check_positive_int
from dina_datasets.generation.models import resolve_callable

DATASET_MEAN = "dataset_mean"
SUM_TARGETS = "sum_targets"

Explain = Callable[[np.ndarray, np.ndarray], np.ndarray]


def sum_targets_operator() -> Callable[..., Any]:
    """DINA's DinoV2 operator: `sum(model(x) * targets, -1)`."""
    from dina_datasets.generation.runtime import tensorflow

    tf = tensorflow()

    @tf.function
    def operator(model: Any, inputs: Any, targets: Any) -> Any:
        return tf.reduce_sum(model(inputs) * targets, axis=-1)

    return operator


def explainer_params(explainer: str, *, baseline: np.ndarray | None = None,
                     **overrides: Any) -> dict[str, Any]:
    """The catalog's hyperparameters for `explainer`, `overrides` applied, and the
    `"dataset_mean"` baseline replaced by `baseline` (per-channel floats)."""
    spec = catalog.explainer(explainer)
    params = {**spec.params, **overrides}
    for key, value in params.items():
        if isinstance(value, str) and value == DATASET_MEAN:
            if baseline is None:
                raise ConfigError(f"{spec.name} needs {key}={DATASET_MEAN!r}: pass `baseline`, "
                                  "the per-channel mean of the preprocessed inputs")
            params[key] = [float(v) for v in np.asarray(baseline, np.float64).reshape(-1)]
    return params


def _method(spec: catalog.ExplainerSpec) -> Any:
    method = spec.method
    if isinstance(method, str) and ":" not in method:
        from dina_datasets.generation.runtime import without

        with without("torch"):  # xplique's optional PyTorch import (see runtime)
            import xplique.attributions

        if not hasattr(xplique.attributions, method):
            raise ConfigError(f"explainer {spec.name!r}: xplique has no attribution method "
                              f"{method!r}")
        return getattr(xplique.attributions, method)
    return resolve_callable(method, f"explainer {spec.name!r}")


def make_explainer(explainer: str, model: Any, *, model_name: str | None = None,
                   batch_size: int = 32, baseline: np.ndarray | None = None,
                   **overrides: Any) -> Explain:
    """`explain(inputs, targets)`: float32 maps (N, H, W, C), C the catalog's channels.

    `inputs` are preprocessed images (N, H, W, 3), `targets` one-hot (N, classes). The
    catalog's xplique class and hyperparameters are used, `overrides` replacing them;
    `baseline` fills IntegratedGradients' `"dataset_mean"`. A model whose catalog operator
    is "sum_targets" (DinoV2) is explained through `sum(model(x) * targets, -1)`.
    A contributed callable is called as `method(model, inputs, targets, **params)`.
    """
    spec = catalog.explainer(explainer)
    model_spec = catalog.model(model_name) if model_name else None
    if model_spec and spec.needs_conv and not model_spec.has_conv:
        raise ConfigError(f"{spec.name} needs a convolutional layer and {model_spec.name} has "
                          "none")
    check_positive_int("batch_size", batch_size)
    params = explainer_params(spec.name, baseline=baseline, **overrides)
    method = _method(spec)
    operator = None
    if model_spec and model_spec.operator:
        if model_spec.operator != SUM_TARGETS:
            raise ConfigError(f"model {model_spec.name!r}: unknown operator "
                              f"{model_spec.operator!r} (known: {SUM_TARGETS!r})")
        operator = sum_targets_operator()
    if inspect.isclass(method):
        kwargs = dict(params, batch_size=batch_size)
        if operator is not None:
            kwargs["operator"] = operator
        try:
            instance = method(model, **kwargs)
        except TypeError as err:
            raise ConfigError(f"explainer {spec.name!r}: bad parameters {sorted(kwargs)}: "
                              f"{err}") from None

        def run(inputs: np.ndarray, targets: np.ndarray) -> Any:
            return instance.explain(inputs, targets)
    else:
        def run(inputs: np.ndarray, targets: np.ndarray) -> Any:
            return method(model, inputs, targets, **params)

    def explain(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        inputs = np.asarray(inputs, np.float32)
        targets = np.asarray(targets, np.float32)
        maps = run(inputs, targets)
        maps = np.asarray(maps.numpy() if hasattr(maps, "numpy") else maps, np.float32)
        return conform(maps, inputs.shape, spec)

    return explain


def conform(maps: np.ndarray, input_shape: tuple[int, ...],
            spec: catalog.ExplainerSpec) -> np.ndarray:
    """Maps shaped (N, H, W, channels): a missing channel axis is added, 3 channels are
    averaged when the catalog says 1; anything else is an error."""
    n, height, width = input_shape[:3]
    if maps.ndim == 3:
        maps = maps[..., None]
    if maps.ndim == 4 and maps.shape[-1] == 3 and spec.channels == 1:
        maps = maps.mean(axis=-1, keepdims=True)
    if maps.shape != (n, height, width, spec.channels):
        raise DinaError(f"explainer {spec.name!r} returned maps of shape {maps.shape}; expected "
                        f"{(n, height, width, spec.channels)} (the catalog's {spec.channels} "
                        "channel(s) at the input's size)")
    return np.ascontiguousarray(maps, dtype=np.float32)
