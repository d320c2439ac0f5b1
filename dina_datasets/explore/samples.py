"""The Sample view: one image under every explainer of a model (or every model of an
explainer), maps read concurrently and drawn as `dina show` draws them, each captioned with
the image's scores."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.errors import ConfigError, DinaError, LayoutError, RecordIndexError
from dina_datasets.explore.controls import position, record_index
from dina_datasets.layout import DEFAULT_ACTIVATION
from dina_datasets.viz import figures, scales


@dataclass
class Sample:
    """One image under several configs: its picture, keys, and a drawn map per config."""

    title: str
    index: int
    image_id: str
    label: int
    prediction: int
    image: np.ndarray | None
    maps: list[tuple[str, str]] = field(default_factory=list)  # (png path, caption)
    notes: list[str] = field(default_factory=list)
    panels: list[figures.Panel] = field(default_factory=list)
    scores: Any = None  # pandas frame: one row per config, one column per metric


def sample(explorer: Any, name: str, index: Any, activation: str = DEFAULT_ACTIVATION,
           image_id: str = "") -> Sample:
    """The Sample of `name` (a model or an explainer) at a record index or an image id."""
    kind, cells = explorer.resolve(name)
    if image_id and image_id.strip():
        index = index_of(explorer, cells[0][0], image_id.strip())
    index = record_index(index)
    # each map drawn as soon as it is read; the scores looked up meanwhile
    keys_job = explorer.readers.submit(_keys, explorer, cells, index, activation)
    jobs = [explorer.readers.submit(explorer.drawn, m, e, index) for m, e in cells]
    panels, pngs, notes = [], [], []
    for (model, explainer), job in zip(cells, jobs, strict=True):
        try:
            panel, png = job.result()
        except RecordIndexError:
            raise
        except DinaError as err:
            notes.append(f"{model}-{explainer}: {err}")
            continue
        panels.append(panel)
        pngs.append(png)
    if not panels:
        raise LayoutError("no map could be read: " + "; ".join(notes))
    keys = keys_job.result()
    first = panels[0]
    image_id = first.image_id or keys.get("image_id", "")
    out = Sample(title=f"{kind} {name}", index=index, image_id=image_id,
                 label=keys.get("label", -1), prediction=keys.get("prediction", -1),
                 image=first.image, notes=notes, panels=panels)
    import pandas as pd

    out.scores = pd.DataFrame([{"config": p.config, **keys["scores"].get(p.config, {})}
                               for p in panels])
    for panel, png in zip(panels, pngs, strict=True):
        caption = panel.config + " · " + ", ".join(
            f"{m} {fmt(v)}" for m, v in keys["scores"].get(panel.config, {}).items())
        note = scales.near_zero(panel.explanation)
        if note:
            caption += f" · {note}"
        out.maps.append((explorer.save(png), caption))
    return out


def index_of(explorer: Any, model: str, image_id: str) -> int:
    """The record index of an image id (from the scores table)."""
    got = explorer.table().frame("SELECT min(index) AS i FROM scores WHERE model = $model "
                                 "AND image_id = $id", {"model": model, "id": image_id})
    value = got["i"].iloc[0]
    if missing(value):
        raise ConfigError(f"no image {image_id!r} for {model} in the scores table "
                          "(image ids come from the records or --imagenet-json)")
    return int(value)


def _keys(explorer: Any, cells: list[tuple[str, str]], index: int, activation: str) -> dict:
    models = sorted({m for m, _ in cells})
    explainers = sorted({e for _, e in cells})
    # map-only metrics are scored once, under softmax: they stand for every activation
    map_only = [m for m, spec in catalog.METRICS.items() if not spec.needs_model]
    frame = explorer.table([f"activation={activation},{DEFAULT_ACTIVATION}"]).frame(
        "SELECT model, explainer, metric, image_id, label, prediction, score FROM scores "
        "WHERE index = $index AND (activation = $activation OR list_contains($map_only, "
        "metric)) AND list_contains($models, model) AND list_contains($explainers, "
        "explainer)", {"index": int(index), "activation": activation, "map_only": map_only,
                       "models": models, "explainers": explainers})
    metrics = list(catalog.METRICS)
    scores: dict[str, dict[str, float]] = {}
    for r in sorted(frame.itertuples(), key=lambda r: position(r.metric, metrics)):
        scores.setdefault(f"{r.model}-{r.explainer}", {})[r.metric] = r.score
    out: dict[str, Any] = {"scores": scores}
    if len(frame):
        out.update(image_id=str(frame["image_id"].iloc[0]),
                   label=int(frame["label"].iloc[0]),
                   prediction=int(frame["prediction"].iloc[0]))
    return out


def missing(value: Any) -> bool:
    """True for None, NaN and infinities."""
    import pandas as pd

    return value is None or bool(pd.isna(value)) or not math.isfinite(float(value))


def fmt(value: Any) -> str:
    """A score for a caption: 3 significant digits, "undefined" when missing."""
    if missing(value):
        return "undefined"
    return f"{value:.3g}"
