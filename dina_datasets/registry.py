"""Contributed models and explainers from a small TOML file (`dina COMMAND --registry FILE`).

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

`write_registry(path, models=[...])` writes such a file for models and explainers registered
in this process (by name), so that another process (`dina show --registry FILE ...`) knows
them too: `dina demo` leaves one beside its data for the planted model.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tomllib
from collections.abc import Iterable
from typing import Any

from dina_datasets import catalog, storage
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

    The same as `dina COMMAND --registry FILE`: afterwards every `Model-Explainer` pair with a
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


def _toml(value: Any, where: str) -> str:
    """`value` as a TOML value (strings, booleans, finite numbers, lists and tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v, where) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(str(k))} = {_toml(v, where)}"
                                for k, v in value.items()) + " }"
    raise ConfigError(f"{where}: {value!r} ({type(value).__name__}) cannot be written to a "
                      "registry file (strings, booleans, finite numbers, lists and tables can)")


def _key(name: str) -> str:
    """A TOML key: bare when it may be, else quoted."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _reference(value: Any, kind: str, name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{kind} {name!r} was registered with a callable ({value!r}): only "
                          "a 'package.module:function' reference can be written to a registry "
                          "file; register it with such a string")
    return value


def registry_text(models: Iterable[str] = (), explainers: Iterable[str] = ()) -> str:
    """The TOML of a registry file that registers these contributed models and explainers
    (names registered in this process) as they are registered here."""
    lines: list[str] = []
    for name in models:
        spec = catalog.model(name)
        if not spec.contributed:
            raise ConfigError(f"model {name!r} is built in, not contributed: a registry file "
                              "holds contributed models only")
        entry: dict[str, Any] = {"factory": _reference(spec.constructor, "model", name),
                                 "input_size": spec.input_size,
                                 "rescale_mode": spec.rescale_mode, "has_conv": spec.has_conv}
        if spec.operator:
            entry["operator"] = spec.operator
        lines += [f"[models.{_key(spec.name)}]", *(f"{k} = {_toml(v, name)}"
                                             for k, v in entry.items()), ""]
    for name in explainers:
        spec = catalog.explainer(name)
        if not spec.contributed:
            raise ConfigError(f"explainer {name!r} is built in, not contributed: a registry "
                              "file holds contributed explainers only")
        entry = {"method": _reference(spec.method, "explainer", name),
                 "channels": spec.channels, "needs_conv": spec.needs_conv}
        if spec.params:
            entry["params"] = dict(spec.params)
        lines += [f"[explainers.{_key(spec.name)}]", *(f"{k} = {_toml(v, name)}"
                                                 for k, v in entry.items()), ""]
    if not lines:
        raise ConfigError("name at least one contributed model or explainer to write")
    return "\n".join(lines)


def write_registry(path: str, models: Iterable[str] = (), explainers: Iterable[str] = ()
                   ) -> str:
    """Write (atomically) a registry file for these registered contributed models and
    explainers (see `registry_text`); returns `path`. `dina COMMAND --registry PATH` loads it."""
    text = registry_text(models, explainers)
    with storage.atomic_write(path, "wb") as handle:
        handle.write(text.encode())
    return path
