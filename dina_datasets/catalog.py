"""The one table of truth: DINA's models, explainers, metrics and published cells.

Builder configs, command-line choices, the dataset card and the docs are all derived from
the tables here. `MODELS`, `EXPLAINERS` and `METRICS` are read-only views: contributed
models and explainers are added with `register_model` and `register_explainer` (and removed
with `unregister`); their configs then work everywhere.

Why this module is long: it is the table itself (nine models, fourteen explainers, eight
metrics with their published settings and directions) beside the few functions that read it;
splitting the table would make two places to look for one fact.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from dina_datasets.errors import ConfigError, check_positive_int

MAP_SIZE = 224
NUM_IMAGES = 50_000
NUM_CLASSES = 1000
RANDOMIZATION_SUBSET = 1_024


@dataclass(frozen=True)
class ModelSpec:
    """An ImageNet classifier: how to build it and feed it."""

    name: str
    constructor: str | Callable[..., Any]
    kwargs: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    input_size: int = MAP_SIZE
    rescale_mode: str = "torch"
    has_conv: bool = True
    operator: str | None = None
    contributed: bool = False


@dataclass(frozen=True)
class ExplainerSpec:
    """An attribution method with DINA's hyperparameters and its map channels."""

    name: str
    method: str | Callable[..., Any]
    params: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    channels: int = 1
    needs_conv: bool = False
    contributed: bool = False
    reference: bool = False  # a baseline to compare explainers with (Sobel, Laplace, RandomExp)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (MAP_SIZE, MAP_SIZE, self.channels)


@dataclass(frozen=True)
class MetricSpec:
    """A per-sample score of an explanation, as published in `{name}_scores.json`."""

    name: str
    family: str
    higher_is_better: bool
    needs_model: bool = True
    subset: int | None = None
    params: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    stochastic: bool = False  # draws random numbers (a seed changes its scores)

    @property
    def score_file(self) -> str:
        return f"{self.name}_scores.json"

    @property
    def depends_on_activation(self) -> bool:
        """Whether the scores change with the model's output activation (softmax, sigmoid,
        logits): true for every metric that runs the model, false for the map-only ones
        (Sparseness, Complexity), whose softmax scores stand for every activation."""
        return self.needs_model


def _frozen(**kw: Any) -> MappingProxyType:
    return MappingProxyType(kw)


# FACTS.md §3: kecam constructors, `classifier_activation="softmax"`.
_MODELS = (
    ModelSpec("BeitV2", "beit.BeitV2BasePatch16", rescale_mode="tf", has_conv=False),
    ModelSpec("ConvNeXtV2", "convnext.ConvNeXtV2Base"),
    ModelSpec("DinoV2", "beit.DINOv2_ViT_Small14", _frozen(input_shape=(224, 224, 3)),
              rescale_mode="tf", has_conv=False, operator="sum_targets"),
    ModelSpec("EfficientNetV2", "efficientnet.EfficientNetV2B0"),
    ModelSpec("InceptionNeXt", "inceptionnext.InceptionNeXtSmall"),
    ModelSpec("MaxVIT", "maxvit.MaxViT_Small", has_conv=False),
    ModelSpec("MLPMixer", "mlp_family.MLPMixerL16", rescale_mode="tf", has_conv=False),
    ModelSpec("ResNest50", "resnest.ResNest50"),
    ModelSpec("ResNet50", "resnet_family.ResNet50D"),
)

# FACTS.md §3: xplique classes and the original hyperparameters (batch_size comes from the CLI).
_EXPLAINERS = (
    ExplainerSpec("Saliency", "Saliency", _frozen(reducer=None), channels=3),
    ExplainerSpec("GradCAM", "GradCAM", needs_conv=True),
    ExplainerSpec("GradCAMPP", "GradCAMPP", needs_conv=True),
    ExplainerSpec("VarGrad", "VarGrad", _frozen(nb_samples=100, noise=0.62, reducer=None),
                  channels=3),
    ExplainerSpec("SmoothGrad", "SmoothGrad", _frozen(nb_samples=175, noise=0.11, reducer=None),
                  channels=3),
    ExplainerSpec("SquareGrad", "SquareGrad", _frozen(nb_samples=194, noise=0.63, reducer=None),
                  channels=3),
    ExplainerSpec("IntegratedGradients", "IntegratedGradients",
                  _frozen(steps=100, baseline_value="dataset_mean", reducer=None), channels=3),
    ExplainerSpec("Rise", "Rise", _frozen(nb_samples=8000, grid_size=10, mask_value=0)),
    ExplainerSpec("GradientInput", "GradientInput", _frozen(reducer=None), channels=3),
    ExplainerSpec("KernelShap", "KernelShap", _frozen(nb_samples=400)),
    ExplainerSpec("Occlusion", "Occlusion",
                  _frozen(patch_size=5, patch_stride=3, occlusion_value=0)),
    ExplainerSpec("Lime", "Lime",
                  _frozen(nb_samples=2000, distance_mode="cosine", kernel_width=46)),
    ExplainerSpec("HsicAttributionMethod", "HsicAttributionMethod",
                  _frozen(grid_size=11, estimator_batch_size=768)),
    ExplainerSpec("SobolAttributionMethod", "SobolAttributionMethod", _frozen(grid_size=11)),
)

# Reference explainers (FACTS.md §7): baselines that any explainer should beat, computed in
# numpy from the model's preprocessed input (definitions in dina_datasets.generation.baselines).
# Explainers of every model, contributed (not in the published bucket).
_BASELINES = "dina_datasets.generation.baselines:"
_REFERENCES = (
    ExplainerSpec("Sobel", _BASELINES + "sobel", contributed=True, reference=True),
    ExplainerSpec("Laplace", _BASELINES + "laplace", contributed=True, reference=True),
    ExplainerSpec("RandomExp", _BASELINES + "random_exp", _frozen(seed=0), contributed=True,
                  reference=True),
)

# FACTS.md §4: the definitions and parameters that produced the published scores.
_METRICS = (
    MetricSpec("Insertion", "fidelity", True, params=_frozen(nb_steps=200, baseline=0.0)),
    MetricSpec("Deletion", "fidelity", False, params=_frozen(nb_steps=200, baseline=0.0)),
    MetricSpec("MuFidelity", "fidelity", True,
               params=_frozen(nb_samples=200, grid_size=8, subset_percent=0.2, baseline=0.0),
               stochastic=True),
    MetricSpec("Sparseness", "complexity", True, needs_model=False),
    MetricSpec("Complexity", "complexity", False, needs_model=False),
    MetricSpec("RandomLogitMetric", "randomization", False, subset=RANDOMIZATION_SUBSET,
               stochastic=True),
    MetricSpec("ModelRandomizationMetric01", "randomization", False,
               subset=RANDOMIZATION_SUBSET, params=_frozen(fraction=0.015), stochastic=True),
    MetricSpec("ModelRandomizationMetric05", "randomization", False,
               subset=RANDOMIZATION_SUBSET, params=_frozen(fraction=0.05), stochastic=True),
)

# Cells that DINA does not publish, and why (FACTS.md §1).
_MISSING = {
    **{(m, e): f"{m} has no convolutional feature map for {e} (the original skipped it)"
       for m in ("BeitV2", "DinoV2", "MaxVIT", "MLPMixer") for e in ("GradCAM", "GradCAMPP")},
    ("MaxVIT", "Occlusion"): "the original authors did not publish Occlusion maps for MaxVIT",
}

# The tables themselves, changed only by register_*/unregister; everyone else reads the views.
_MODEL_TABLE: dict[str, ModelSpec] = {m.name: m for m in _MODELS}
_EXPLAINER_TABLE: dict[str, ExplainerSpec] = {e.name: e for e in (*_EXPLAINERS, *_REFERENCES)}
MODELS: Mapping[str, ModelSpec] = MappingProxyType(_MODEL_TABLE)
EXPLAINERS: Mapping[str, ExplainerSpec] = MappingProxyType(_EXPLAINER_TABLE)
METRICS: Mapping[str, MetricSpec] = MappingProxyType({m.name: m for m in _METRICS})


def _resolve(kind: str, name: str, table: Mapping[str, Any]) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"{kind} must be a string, got {type(name).__name__} {name!r}")
    if name in table:
        return name
    folded = {k.lower(): k for k in table}
    if name.lower() in folded:
        return folded[name.lower()]
    raise ConfigError(f"unknown {kind} {name!r}; {_suggest(name, list(table))}")


def _suggest(name: str, valid: list[str]) -> str:
    lower = {v.lower(): v for v in valid}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(lower[c]) for c in close)}? " if close else ""
    return f"{hint}valid: {', '.join(valid)}"


def model(name: str) -> ModelSpec:
    """The model named `name` (case-insensitive); ConfigError lists the valid ones."""
    return MODELS[_resolve("model", name, MODELS)]


def explainer(name: str) -> ExplainerSpec:
    """The explainer named `name` (case-insensitive); ConfigError lists the valid ones."""
    return EXPLAINERS[_resolve("explainer", name, EXPLAINERS)]


def metric(name: str) -> MetricSpec:
    """The metric named `name` (case-insensitive); ConfigError lists the valid ones."""
    return METRICS[_resolve("metric", name, METRICS)]


def missing_reason(model_name: str, explainer_name: str) -> str | None:
    """Why DINA lacks this cell, or None when the cell is published or contributed."""
    if (model_name, explainer_name) in _MISSING:
        return _MISSING[model_name, explainer_name]
    spec_m, spec_e = MODELS.get(model_name), EXPLAINERS.get(explainer_name)
    if spec_m and spec_e and spec_e.needs_conv and not spec_m.has_conv:
        return f"{model_name} has no convolutional feature map for {explainer_name}"
    return None


@dataclass(frozen=True)
class Cell:
    """One model/explainer cell of the grid; its name, e.g. `"DinoV2-Rise"`, derives from the
    fields. (`dina_datasets.DinaConfig` is the `datasets` builder config built on it.)

    Names are resolved case-insensitively to their canonical spelling. A cell that DINA
    does not publish raises a ConfigError saying why, unless `allow_missing=True`
    (for generating such a cell yourself).
    """

    model: str
    explainer: str
    allow_missing: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", model(self.model).name)
        object.__setattr__(self, "explainer", explainer(self.explainer).name)
        reason = missing_reason(self.model, self.explainer)
        if reason and not self.allow_missing:
            raise ConfigError(f"{self.name!r} is not in DINA: {reason}. "
                              f"Valid configs for {self.model}: "
                              f"{', '.join(c.name for c in cells() if c.model == self.model)}")

    @property
    def name(self) -> str:
        return f"{self.model}-{self.explainer}"

    @property
    def model_spec(self) -> ModelSpec:
        return MODELS[self.model]

    @property
    def explainer_spec(self) -> ExplainerSpec:
        return EXPLAINERS[self.explainer]

    @property
    def shape(self) -> tuple[int, int, int]:
        size = self.model_spec.input_size  # maps have the model's input size (224 in DINA)
        return (size, size, self.explainer_spec.channels)

    @property
    def published(self) -> bool:
        spec_m, spec_e = self.model_spec, self.explainer_spec
        return not (spec_m.contributed or spec_e.contributed or missing_reason(*self.key))

    @property
    def key(self) -> tuple[str, str]:
        return (self.model, self.explainer)

    @classmethod
    def from_name(cls, name: str, allow_missing: bool = False) -> Cell:
        """Parse `"{Model}-{Explainer}"`, case-insensitively, with suggestions when unknown."""
        if not isinstance(name, str) or "-" not in name:
            raise ConfigError(f"config name must look like 'Model-Explainer', got {name!r}; "
                              f"{_suggest_config(str(name))}")
        model_name, explainer_name = name.split("-", 1)
        try:
            return cls(model_name, explainer_name, allow_missing=allow_missing)
        except ConfigError as err:
            if model_name.lower() in {m.lower() for m in MODELS} and \
                    explainer_name.lower() in {e.lower() for e in EXPLAINERS}:
                raise
            what = str(err).split(";")[0]
            raise ConfigError(f"unknown config {name!r} ({what}); {_suggest_config(name)}"
                              ) from None


def _suggest_config(name: str) -> str:
    names = config_names()
    lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(lower[c]) for c in close)}? " if close else ""
    return f"{hint}`dina configs` lists the {len(names)} valid configs"


def cells() -> list[Cell]:
    """Every available config: the 117 published cells, then the reference explainers'
    (Sobel, Laplace, RandomExp of every model) and other contributed ones."""
    every = [Cell(m, e) for m in MODELS for e in EXPLAINERS if not missing_reason(m, e)]
    return sorted(every, key=lambda c: not c.published)


def published_cells() -> list[Cell]:
    """The 117 cells of the published DINA bucket."""
    return [c for c in cells() if c.published]


def config_names() -> list[str]:
    return [c.name for c in cells()]


def iter_metrics(family: str | None = None) -> Iterator[MetricSpec]:
    return (m for m in METRICS.values() if family is None or m.family == family)


def register_model(name: str, factory: str | Callable[..., Any], *, input_size: int = MAP_SIZE,
                   rescale_mode: str = "torch", has_conv: bool = True,
                   operator: str | None = None, replace: bool = False) -> ModelSpec:
    """Add a contributed model: `factory(weights=...)` returns a Keras model.

    `factory` is a callable or a `"package.module:function"` string.
    """
    check_positive_int(f"model {name!r}: input_size", input_size)
    _check_new_name("model", name, _MODEL_TABLE, replace)
    spec = ModelSpec(name, factory, input_size=input_size, rescale_mode=rescale_mode,
                     has_conv=has_conv, operator=operator, contributed=True)
    _MODEL_TABLE[name] = spec
    return spec


def register_explainer(name: str, method: str | Callable[..., Any], *, channels: int,
                       params: dict[str, Any] | None = None, needs_conv: bool = False,
                       replace: bool = False) -> ExplainerSpec:
    """Add a contributed explainer: an xplique class (or its name) or a callable.

    A callable is called as `method(model, inputs, targets, **params)` and returns maps of
    shape (N, H, W, channels).
    """
    _check_new_name("explainer", name, _EXPLAINER_TABLE, replace)
    if channels not in (1, 3):
        raise ConfigError(f"explainer {name!r}: channels must be 1 or 3, got {channels!r}")
    spec = ExplainerSpec(name, method, MappingProxyType(dict(params or {})), channels=channels,
                         needs_conv=needs_conv, contributed=True)
    _EXPLAINER_TABLE[name] = spec
    return spec


def _check_new_name(kind: str, name: str, table: dict[str, Any], replace: bool) -> None:
    if not isinstance(name, str) or not name or "-" in name or "/" in name or name != name.strip():
        raise ConfigError(f"{kind} name must be a non-empty string without '-', '/' or "
                          f"surrounding spaces, got {name!r}")
    clash = {k.lower(): k for k in table}.get(name.lower())
    if clash and not (replace and _replaceable(table[clash])):
        raise ConfigError(f"{kind} {name!r} already exists as {clash!r}; choose another name"
                          + (" (built-in entries cannot be replaced)" if replace else
                             " or pass replace=True for a contributed one"))
    if clash and clash != name:
        del table[clash]


def _replaceable(spec: ModelSpec | ExplainerSpec) -> bool:
    """Contributed by a user: the reference explainers ship with the package and stay."""
    return spec.contributed and not getattr(spec, "reference", False)


def reference_explainers() -> list[str]:
    """The reference explainers (baselines), in catalog order."""
    return [e.name for e in EXPLAINERS.values() if e.reference]


def unregister(name: str) -> None:
    """Remove a contributed model or explainer (tests, interactive sessions)."""
    for table in (_MODEL_TABLE, _EXPLAINER_TABLE):
        if name in table and _replaceable(table[name]):
            del table[name]
            return
    raise ConfigError(f"{name!r} is not a contributed model or explainer")
