"""DINA's metrics, per sample, on arrays or streams: `dina_datasets.metrics.<Name>`.

The names come from `catalog.METRICS`; each lives in the module named after its family
(`fidelity`, `complexity`, `randomization`) and is imported on first use, so the model-free
metrics never import TensorFlow.

    >>> from dina_datasets.metrics import Deletion, Sparseness
    >>> Deletion(model, nb_steps=200, batch_size=32)(inputs, targets, explanations)
    >>> Sparseness()(explanations)
"""

from __future__ import annotations

import importlib
from typing import Any

from dina_datasets import catalog
from dina_datasets.errors import ConfigError


def metric_class(name: str) -> type:
    """The class of the catalog metric `name` (case-insensitive; ConfigError lists valid)."""
    spec = catalog.metric(name)
    module = importlib.import_module(f"{__name__}.{spec.family}")
    return getattr(module, spec.name)


def build(name: str, model: Any = None, explainer_factory: Any = None, **params: Any) -> Any:
    """The metric `name` with its published parameters (catalog), overridden by `params`.

    Randomization metrics also need `explainer_factory(model) -> explain(inputs, targets)`.
    `activation` ("softmax", "sigmoid", "logits") applies to the metrics that run the model;
    the map-only ones (Sparseness, Complexity) refuse any other than softmax.
    """
    spec = catalog.metric(name)
    cls = metric_class(spec.name)
    kwargs = {**spec.params, **params}
    if not spec.depends_on_activation and "activation" in kwargs:
        from dina_datasets.layout import DEFAULT_ACTIVATION, check_activation

        if check_activation(kwargs.pop("activation")) != DEFAULT_ACTIVATION:
            raise ConfigError(f"{spec.name} does not depend on the output activation (it reads "
                              f"the maps alone): its {DEFAULT_ACTIVATION} scores stand for "
                              "every activation")
    if spec.family == "randomization":
        return cls(model, explainer_factory, **kwargs)
    return cls(model, **kwargs)


def __getattr__(name: str) -> Any:
    if name in catalog.METRICS:
        return metric_class(name)
    if name in ("Metric", "Forward", "rebatch"):
        from dina_datasets.metrics import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *catalog.METRICS, "Metric", "Forward", "rebatch"])
