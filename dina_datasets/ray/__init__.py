"""DINA on Ray (the optional extra `dina-datasets[ray]`): read configs as a Ray Dataset, and
run `dina generate`, `dina evaluate` and `dina export` across a cluster.

    >>> from dina_datasets.ray import read_dina
    >>> ds = read_dina(["DinoV2-Rise", "ResNet50-Saliency"], data_url="gs://xai-deel")

Ray is imported only inside this package, when used: without it, `read_dina` and the
`--engine ray` commands raise a ConfigError naming the extra to install.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from dina_datasets.errors import ConfigError

INSTALL = "pip install 'dina-datasets[ray]'"


def require() -> ModuleType:
    """The `ray` module; a ConfigError naming the extra when Ray is not installed."""
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise ConfigError(f"this needs Ray (Ray Data), which is not installed ({err}): "
                          f"{INSTALL}") from None
    return ray


def __getattr__(name: str) -> Any:
    if name in ("read_dina", "DinaDatasource"):
        require()
        from dina_datasets.ray import datasource

        return getattr(datasource, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["INSTALL", "DinaDatasource", "read_dina", "require"]
