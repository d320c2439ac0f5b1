"""The classifiers DINA explains, built from the catalog: kecam constructors or contributed
factories, with pretrained, random (`none`) or file weights."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
from collections.abc import Callable, Iterator
from typing import Any

import dina_datasets.generation  # noqa: F401  (legacy Keras before TensorFlow)
from dina_datasets import catalog
from dina_datasets.errors import ConfigError, DinaError, WeightsError

PRETRAINED = "pretrained"
NONE = "none"
WEIGHT_SUFFIXES = (".h5", ".keras", ".hdf5")
INIT_SEED = 0


def resolve_callable(ref: str | Callable[..., Any], what: str) -> Callable[..., Any]:
    """A callable, or the one a `"package.module:function"` string names."""
    if callable(ref):
        return ref
    if not isinstance(ref, str) or ":" not in ref:
        raise ConfigError(f"{what}: expected a callable or 'package.module:function', got {ref!r}")
    module_name, _, attr = ref.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except ModuleNotFoundError as err:
        raise ConfigError(f"{what}: cannot import {ref!r}: {err}. Put the module beside the "
                          "registry file (its folder is searched), install it, or add its "
                          "folder to PYTHONPATH") from None
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{what}: cannot import {ref!r}: {err}") from None
    if not callable(target):
        raise ConfigError(f"{what}: {ref!r} is not callable")
    return target


def check_weights(weights: str) -> str:
    """`pretrained`, `none`, or the path of an existing weights file; ConfigError otherwise."""
    if not isinstance(weights, str) or not weights:
        raise ConfigError(f"weights must be 'pretrained', 'none' or a weights file, got "
                          f"{weights!r}")
    if weights.lower() in (PRETRAINED, NONE):
        return weights.lower()
    if not os.path.isfile(weights):
        raise ConfigError(f"weights {weights!r} is neither 'pretrained', 'none' nor an existing "
                          f"file; give a Keras weights file ({', '.join(WEIGHT_SUFFIXES)})")
    return weights


def build_model(name: str, weights: str = PRETRAINED) -> Any:
    """The Keras classifier `name` (catalog, case-insensitive), softmax head.

    `weights`: "pretrained" (kecam downloads them; without network a WeightsError says so),
    "none" (random initialisation with a fixed seed, offline) or a weights file (.h5/.keras).
    Contributed models call their factory as `factory(weights=weights)`.
    """
    spec = catalog.model(name)
    weights = check_weights(weights)
    from dina_datasets.generation.runtime import tensorflow

    tf = tensorflow()

    if str(getattr(tf.keras, "__version__", "2")).startswith("3"):
        raise DinaError("TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set, so "
                        "tf.keras is Keras 3, which kecam and xplique cannot use: export "
                        "TF_USE_LEGACY_KERAS=1, or import dina_datasets.generation before "
                        "tensorflow")
    tf.keras.utils.set_random_seed(INIT_SEED)
    if spec.contributed:
        factory = resolve_callable(spec.constructor, f"model {spec.name!r} factory")
        model = factory(weights=weights)
        if not isinstance(model, tf.keras.Model):
            raise ConfigError(f"model {spec.name!r}: its factory returned "
                              f"{type(model).__name__}, expected a Keras model")
        return model
    constructor = _kecam_constructor(spec)
    kwargs = dict(spec.kwargs, classifier_activation="softmax")
    if weights != PRETRAINED:
        model = _quiet(lambda: constructor(**kwargs, pretrained=None))
        if weights != NONE:
            load_weights(model, weights, spec.name)
        return model
    with _recording_downloads() as downloads:
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            model = constructor(**kwargs)
    failed = [err for ok, err in downloads if not ok]
    if failed or not downloads:
        why = (f"the download failed ({failed[0]})" if failed else
               f"kecam has no pretrained weights for {spec.constructor}{dict(spec.kwargs)}")
        raise WeightsError(
            f"cannot get the pretrained weights of {spec.name}: {why}. There is probably no "
            "network here: run with --weights none (random weights, offline) or --weights FILE "
            "(a weights file you downloaded elsewhere, e.g. kecam's .h5 for this model)")
    return model


def _kecam_constructor(spec: catalog.ModelSpec) -> Callable[..., Any]:
    if callable(spec.constructor):
        return spec.constructor
    module_name, _, attr = spec.constructor.rpartition(".")
    module = importlib.import_module(f"keras_cv_attention_models.{module_name}")
    return getattr(module, attr)


def _quiet(build: Callable[[], Any]) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return build()


@contextlib.contextmanager
def _recording_downloads() -> Iterator[list[tuple[bool, str]]]:
    """Record kecam's weight downloads (kecam prints a failure and goes on with random
    weights; we must not)."""
    from keras_cv_attention_models import backend

    original = backend.get_file
    calls: list[tuple[bool, str]] = []

    def get_file(*args: Any, **kwargs: Any) -> Any:
        try:
            path = original(*args, **kwargs)
        except Exception as err:
            calls.append((False, f"{type(err).__name__}: {err}"))
            raise
        calls.append((True, str(path)))
        return path

    backend.get_file = get_file
    try:
        yield calls
    finally:
        backend.get_file = original


def load_weights(model: Any, path: str, name: str) -> None:
    """Load every weighted layer of `model` from a weights file; a WeightsError naming the
    file, and the layers it lacks, when it does not fit.

    An HDF5 file is loaded by topology, or else by layer name when the file holds every
    weighted layer of the model under its name; never partly (a layer left random would give
    maps of a model that is not the one named).
    """
    try:
        status = model.load_weights(path)
        if status is not None:  # a TensorFlow checkpoint: every layer must have been restored
            status.assert_existing_objects_matched()
        return
    except Exception as err:
        if not _is_hdf5(path):
            raise WeightsError(f"cannot load weights {path!r} into {name}: {err}") from None
        first = err
    missing = unmatched_layers(model, path)
    if missing:
        raise WeightsError(
            f"cannot load weights {path!r} into {name}: {len(missing)} weighted layer(s) of "
            f"the model are not in the file: {', '.join(missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''} (loading by topology failed too: "
            f"{first}). Give the weights file of this very architecture")
    try:
        model.load_weights(path, by_name=True)
    except Exception as err:
        raise WeightsError(f"cannot load weights {path!r} into {name}: {err}") from None


def _is_hdf5(path: str) -> bool:
    import h5py

    return not path.endswith(".keras") and h5py.is_hdf5(path)


def unmatched_layers(model: Any, path: str) -> list[str]:
    """The names of `model`'s weighted layers that an HDF5 weights file does not hold."""
    import h5py

    with h5py.File(path, "r") as handle:
        group = handle["model_weights"] if ("layer_names" not in handle.attrs
                                            and "model_weights" in handle) else handle
        names = {n.decode() if isinstance(n, bytes) else str(n)
                 for n in group.attrs.get("layer_names", [])}
        stored = {n for n in names if n in group and len(group[n].attrs.get("weight_names", []))}
    return [layer.name for layer in model.layers if layer.weights and layer.name not in stored]


def with_activation(model: Any, activation: str) -> Any:
    """`model` with its classifier activation swapped for `activation` ("softmax", the
    published head: the model itself; "sigmoid"; "logits": none).

    The model's last layer must be its softmax head: a Dense (kecam's "predictions"/"head")
    or an Activation/Softmax layer. A new functional model reuses every other layer as it is
    (shared, not copied) and ends with a copy of the head with the new activation, so it has
    as many layers as `model`.
    """
    from dina_datasets.layout import check_activation

    activation = check_activation(activation)
    if activation == "softmax":
        return model
    from dina_datasets.generation.runtime import tensorflow

    tf = tensorflow()

    layers = list(getattr(model, "layers", None) or [])
    last = layers[-1] if layers else None
    config = last.get_config() if last is not None else {}
    softmax = isinstance(last, tf.keras.layers.Softmax) or config.get("activation") == "softmax"
    if not softmax or len(getattr(model, "outputs", None) or []) != 1 or \
            model.outputs[0] is not last.output:
        what = type(last).__name__ if last is not None else "no layer"
        raise ConfigError(f"cannot swap the output activation of model {model.name!r} for "
                          f"{activation!r}: its last layer ({what} "
                          f"{getattr(last, 'name', '')!r}) is not a softmax head (a Dense or "
                          "Activation layer with activation='softmax', or a Softmax layer)")
    new = "linear" if activation == "logits" else activation
    if isinstance(last, tf.keras.layers.Dense):
        head = type(last).from_config({**config, "activation": new,
                                       "name": f"{last.name}_{activation}"})
        outputs = head(last.input)
        head.set_weights(last.get_weights())
    else:
        head = tf.keras.layers.Activation(new, dtype=config.get("dtype"),
                                          name=f"{last.name}_{activation}")
        outputs = head(last.input)
    swapped = tf.keras.Model(model.inputs, outputs, name=f"{model.name}_{activation}")
    for attr in ("rescale_mode", "preprocess_input", "decode_predictions"):  # kecam's extras
        if hasattr(model, attr):
            setattr(swapped, attr, getattr(model, attr))
    return swapped


def input_size(model: Any) -> int:
    """The square input size of a Keras image model (channels last)."""
    shape = model.input_shape[0] if isinstance(model.input_shape, list) else model.input_shape
    height, width = shape[1], shape[2]
    if height is None or height != width:
        raise ConfigError(f"model {model.name!r} must take square images of a fixed size, "
                          f"its input shape is {shape}")
    return int(height)
