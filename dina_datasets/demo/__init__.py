"""Demo material, kept out of the core: the embedded default (`tour`: `dina demo`, the whole
DINA loop offline on real photographs) and the planted-truth model (`planted`), whose right
answer is known.

The tour is split by idea: `settings` (what is computed), `session` (one run, its folder and
the commands it prints), `photos` (the images), `production` (images, maps, scores),
`delivery` (loading and export), `findings` (leaderboard, pictures, report), `tour` (the
steps in order, and `run`).

`dina_datasets.demo.run(...)` and the other names of `tour` stay reachable from here; they are
looked up on first use, so `dina_datasets.demo.planted` imports nothing of the tour.
"""

from __future__ import annotations

import pkgutil
from typing import Any


def __getattr__(name: str) -> Any:
    import importlib

    if name.startswith("__"):
        raise AttributeError(name)
    if name in {m.name for m in pkgutil.iter_modules(__path__)}:
        return importlib.import_module(f"{__name__}.{name}")
    tour = importlib.import_module(f"{__name__}.tour")
    try:
        return getattr(tour, name)
    except AttributeError:
        raise AttributeError(f"module 'dina_datasets.demo' has no attribute {name!r}") from None
