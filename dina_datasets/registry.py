"""Contributed models and explainers from a small TOML file (`dina --registry FILE`).

```toml
[models.TinyNet]
factory = "my_package.models:tiny_net"   # factory(weights=...) -> Keras model
input_size = 224
rescale_mode = "torch"                   # kecam's: torch, tf, tf128, raw01, clip, raw
has_conv = true                          # optional (GradCAM needs a conv layer)
operator = "sum_targets"                 # optional: explain sum(model(x) * targets, -1)

[explainers.MyGrad]
method = "my_package.explain:my_grad"    # or an xplique class: "Saliency", "pkg.mod:Class"
channels = 1                             # 1 or 3
needs_conv = false                       # optional
params = { nb_samples = 50 }             # optional hyperparameters
```

Nothing is imported when the file is read (no TensorFlow here): factories and methods are
resolved when a run needs them. The registry file's folder is added to the end of `sys.path`,
so a module lying beside the file (`my_models.py` for `factory = "my_models:tiny"`) is
found without setting PYTHONPATH. Every problem raises a ConfigError naming the file, the
entry and what is wrong.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from typing import Any

from dina_datasets import catalog
from dina_datasets.errors import ConfigError, check_positive_int

RESCALE_MODES = ("torch", "tf", "tf128", "raw01", "clip", "raw")
OPERATORS = ("sum_targets",)
_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_NAME = re.compile(r"[A-Za-z_]\w*")

_MODEL_KEYS = {"factory": str, "input_size": int, "rescale_mode": str, "has_conv": bool,
               "operator": str}
_EXPLAINER_KEYS = {"method": str, "channels": int, "needs_conv": bool, "params": dict}


def load_registry(path: str) -> list[str]:
    """Register the models and explainers of a TOML registry file; returns their names.

    The same as `dina --registry FILE`: afterwards every `Model-Explainer` pair with a
    registered name is a config everywhere (`dina configs`, generation, the builder, the
    metrics). The file's folder is appended to `sys.path` for the modules it names.
    """
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as err:
        raise ConfigError(f"cannot read registry file {path!r}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"registry file {path!r} is not valid TOML: {err}") from None
    unknown = set(data) - {"models", "explainers"}
    if unknown:
        raise ConfigError(f"registry file {path!r}: unknown section(s) {sorted(unknown)}; "
                          "use [models.NAME] and [explainers.NAME]")
    names = []
    for section, register in (("models", _register_model),
                              ("explainers", _register_explainer)):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"registry file {path!r}: [{section}] must be a table of "
                              f"[{section}.NAME] entries")
        for name, entry in table.items():
            where = f"registry file {path!r}, entry [{section}.{name}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: must be a table of settings")
            try:
                register(name, entry, where)
            except ConfigError as err:
                if str(err).startswith(where):
                    raise
                raise ConfigError(f"{where}: {err}") from None
            names.append(name)
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.append(folder)
    return names


def _checked(entry: dict, schema: dict[str, type], required: tuple[str, ...],
             where: str) -> dict[str, Any]:
    unknown = set(entry) - set(schema)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; valid: "
                          f"{', '.join(schema)}")
    for key in required:
        if key not in entry:
            raise ConfigError(f"{where}: missing {key!r}")
    for key, value in entry.items():
        kind = schema[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: {key!r} must be a {kind.__name__}, got {value!r}")
    return entry


def _register_model(name: str, entry: dict, where: str) -> None:
    entry = _checked(entry, _MODEL_KEYS, ("factory", "input_size", "rescale_mode"), where)
    if not _REF.fullmatch(entry["factory"]):
        raise ConfigError(f"{where}: factory must look like 'package.module:function', got "
                          f"{entry['factory']!r}")
    check_positive_int(f"{where}: input_size", entry["input_size"])
    if entry["rescale_mode"] not in RESCALE_MODES:
        raise ConfigError(f"{where}: rescale_mode {entry['rescale_mode']!r} is not one of "
                          f"{', '.join(RESCALE_MODES)}")
    if entry.get("operator") not in (None, *OPERATORS):
        raise ConfigError(f"{where}: operator {entry['operator']!r} is not one of "
                          f"{', '.join(OPERATORS)}")
    catalog.register_model(name, entry["factory"], input_size=entry["input_size"],
                           rescale_mode=entry["rescale_mode"],
                           has_conv=entry.get("has_conv", True),
                           operator=entry.get("operator"), replace=True)


def _register_explainer(name: str, entry: dict, where: str) -> None:
    entry = _checked(entry, _EXPLAINER_KEYS, ("method", "channels"), where)
    method = entry["method"]
    if not (_REF.fullmatch(method) or _NAME.fullmatch(method)):
        raise ConfigError(f"{where}: method must be an xplique class name (e.g. 'Saliency') "
                          f"or 'package.module:callable', got {method!r}")
    catalog.register_explainer(name, method, channels=entry["channels"],
                               params=entry.get("params"),
                               needs_conv=entry.get("needs_conv", False), replace=True)
