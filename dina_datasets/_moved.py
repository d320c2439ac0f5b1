"""Old import paths of modules that moved in the 0.2 layout, kept for one release.

`import dina_datasets.scores` (and the other old paths below) still works: it gives a module
whose attributes are those of the new home, and warns once with a DeprecationWarning that
names the new path. Remove this table in the release after next.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

MOVED: dict[str, tuple[str, ...]] = {
    "dina_datasets.recordio.storage": ("dina_datasets.storage",),
    "dina_datasets.recordio.window": ("dina_datasets.readahead", "dina_datasets.recordio.planner"),
    "dina_datasets.metrics.sources": ("dina_datasets.metrics.inputs", "dina_datasets.readahead"),
    "dina_datasets.generation.parts": ("dina_datasets.runs.parts",),
    "dina_datasets.metrics.parts": ("dina_datasets.runs.score_parts",),
    "dina_datasets.cost": ("dina_datasets.runs.cost", "dina_datasets.analysis.cost"),
    "dina_datasets.scores": ("dina_datasets.analysis.scores",),
    "dina_datasets.leaderboard": ("dina_datasets.analysis.leaderboard",),
    "dina_datasets.report": ("dina_datasets.analysis.report",),
    "dina_datasets.figures": ("dina_datasets.viz.figures",),
    "dina_datasets.planted": ("dina_datasets.demo.planted",),
    "dina_datasets.subset": ("dina_datasets.hf.subset",),
    "dina_datasets.generation.images": ("dina_datasets.images",),
    "dina_datasets.stats.table": ("dina_datasets.analysis.table",),
    "dina_datasets.stats.figures": ("dina_datasets.viz.charts",),
}


class _Alias(types.ModuleType):
    """An old module path: attribute reads go to the new modules, in order."""

    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"Moved to {' and '.join(targets)}.")
        self.__dict__["_targets"] = targets

    def __getattr__(self, attr: str):
        for target in self.__dict__["_targets"]:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")

    def __dir__(self) -> list[str]:
        return sorted({n for t in self.__dict__["_targets"]
                       for n in dir(importlib.import_module(t))})


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname in MOVED:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        targets = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {' and '.join(targets)}; the old path is removed "
                      "in the next release", DeprecationWarning, stacklevel=2)
        for target in targets:
            importlib.import_module(target)  # an error names the new module, not the alias
        return _Alias(spec.name, targets)

    def exec_module(self, module) -> None:
        pass


def install() -> None:
    """Put the finder on `sys.meta_path` once; new paths resolve first (it is last)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
