"""The Compare view: the paired scores of two configs under a metric, sorted by how much
they disagree (|difference of percentile ranks|), and their scatter plot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dina_datasets.errors import AlignmentError, ConfigError

TOP = 20  # images marked where two configs disagree most

_ROWS = ("SELECT model || '-' || explainer AS config, index, image_id, label, prediction, "
         "score FROM scores WHERE metric = $m AND score IS NOT NULL AND "
         "((model = $am AND explainer = $ae) OR (model = $bm AND explainer = $be))")
_KEYS = ("SELECT config, count(*) AS n, "
         "count(*) FILTER (WHERE coalesce(image_id, '') = '') AS keyless, "
         "count(image_id) FILTER (WHERE image_id <> '') "
         "- count(DISTINCT image_id) FILTER (WHERE image_id <> '') AS repeated "
         "FROM (" + _ROWS + ") GROUP BY config")
_SIDE = ("(SELECT *, percent_rank() OVER (ORDER BY score) AS r FROM (" + _ROWS + ") "
         "WHERE config = ${side})")
_SQL = ("SELECT a.index, a.image_id, a.label, a.prediction AS prediction_a, "
        "b.prediction AS prediction_b, a.score AS score_a, b.score AS score_b, "
        "abs(a.r - b.r) AS disagreement FROM " + _SIDE.replace("{side}", "a") + " a JOIN "
        + _SIDE.replace("{side}", "b") + " b ON a.{key} = b.{key} "
        "ORDER BY disagreement DESC, a.index")


def pairing_key(counts: Any, a: tuple[str, str], b: tuple[str, str]) -> str:
    """How two configs' rows pair into images: "image_id" when every row of both has an id
    and neither holds one twice; "index" (the record position) when neither has ids and
    both are cells of one model (one record order); else an AlignmentError saying what to
    give (`counts`: config, n, keyless, repeated)."""
    rows = list(counts.itertuples(index=False))
    if all(r.keyless == 0 and r.repeated == 0 for r in rows):
        return "image_id"
    if all(r.keyless == r.n for r in rows) and a[0] == b[0]:
        return "index"
    said = "; ".join(f"{r.config}: {r.n - r.keyless} of {r.n} rows with an image id"
                     + (f", {r.repeated} repeated" if r.repeated else "") for r in rows)
    raise AlignmentError(
        f"cannot pair the images of {a[0]}-{a[1]} and {b[0]}-{b[1]} ({said}): pairing by "
        "record position is only safe within one model's cells, which share one order. "
        "Open the explorer with the images the records were written from (`--images "
        "imagenet_data.json`, or the aligned.json of `dina align`), so every row has its id")


def compare(explorer: Any, config_a: str, config_b: str, metric: str,
            extra: Sequence[str] = ()) -> tuple[Any, bytes]:
    """(the paired scores sorted by disagreement, their scatter plot as PNG bytes); images
    paired by `pairing_key`."""
    a, b = explorer.config(config_a), explorer.config(config_b)
    explorer.known("metric", metric)
    table = explorer.table(extra)
    params = {"m": metric, "am": a[0], "ae": a[1], "bm": b[0], "be": b[1]}
    counts = table.frame(_KEYS, params)
    if len(counts) < 2:
        raise ConfigError(f"{a[0]}-{a[1]} and {b[0]}-{b[1]} share no image with a "
                          f"{metric} score under the filters ({', '.join(extra)})")
    key = pairing_key(counts, a, b)
    frame = table.frame(_SQL.format(key=key), params | {"a": f"{a[0]}-{a[1]}",
                                                         "b": f"{b[0]}-{b[1]}"})
    if frame.empty:
        raise ConfigError(f"{a[0]}-{a[1]} and {b[0]}-{b[1]} share no image with a "
                          f"{metric} score under the filters ({', '.join(extra)})")
    return frame, scatter(frame, f"{a[0]}-{a[1]}", f"{b[0]}-{b[1]}", metric)


def scatter(frame: Any, a: str, b: str, metric: str) -> bytes:
    """The per-image scatter of score_a against score_b, the most disagreeing marked."""
    from dina_datasets.viz import charts

    plt = charts._pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    shown = frame if len(frame) <= 20_000 else frame.iloc[
        np.linspace(0, len(frame) - 1, 20_000).astype(int)]
    ax.scatter(shown["score_a"], shown["score_b"], s=6, alpha=0.5)
    top = frame.head(min(TOP, len(frame)))
    ax.scatter(top["score_a"], top["score_b"], s=14, color="crimson",
               label=f"{len(top)} most disagreeing")
    low = float(np.nanmin([frame["score_a"].min(), frame["score_b"].min()]))
    high = float(np.nanmax([frame["score_a"].max(), frame["score_b"].max()]))
    ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")
    ax.set_xlabel(f"{a} {metric}")
    ax.set_ylabel(f"{b} {metric}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"{metric} per image, {len(frame):,} images", fontsize=10)
    return charts.render(fig, ("png",))["png"]
