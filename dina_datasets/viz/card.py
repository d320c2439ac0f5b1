"""The reliability card as a picture: one row per metric, one column per model, each cell
coloured by its grade (green reliable, amber questionable, red unreliable, grey not scored)
and labelled with its split-half reliability. matplotlib is imported when it draws.
"""

from __future__ import annotations

import math
from typing import Any

from dina_datasets import catalog

COLOURS = {"reliable": "#4caf50", "questionable": "#ffb300", "unreliable": "#e53935",
           "": "#e0e0e0"}
SHORT = {"reliable": "reliable", "questionable": "question.", "unreliable": "unreliable"}


def _order(names: Any, table: Any) -> list[str]:
    known = list(table)
    return sorted(set(names), key=lambda n: (known.index(n), "") if n in table
                  else (len(known), n))


def reliability_card(cards: Any, *, activation: str = "softmax", title: str | None = None
                     ) -> Any:
    """The coloured card of the `cards` frame of one activation (columns model, activation,
    metric, grade, split_half, and separates_random for a "≠R" mark)."""
    from dina_datasets.viz.charts import _pyplot

    plt = _pyplot()
    rows = cards[cards["activation"] == activation]
    metrics = _order(rows["metric"], catalog.METRICS)
    models = _order(rows["model"], catalog.MODELS)
    cell = {(r.model, r.metric): r for r in rows.itertuples()}
    fig, ax = plt.subplots(figsize=(1.6 + 1.15 * max(1, len(models)),
                                    1.3 + 0.5 * max(1, len(metrics))))
    for i, metric in enumerate(metrics):
        for j, model in enumerate(models):
            r = cell.get((model, metric))
            word = r.grade if r is not None else ""
            ax.add_patch(plt.Rectangle((j, i), 0.96, 0.92, color=COLOURS[word]))
            if r is None:
                continue
            sh = r.split_half
            text = SHORT[word] + "\n" + ("SH n/a" if not math.isfinite(sh) else f"SH {sh:.2f}")
            if r.separates_random is False:
                text += " =R"
            ax.text(j + 0.48, i + 0.46, text, ha="center", va="center", fontsize=7,
                    color="white" if word == "unreliable" else "black")
    ax.set_xlim(0, max(1, len(models)))
    ax.set_ylim(max(1, len(metrics)), 0)
    ax.set_xticks([j + 0.48 for j in range(len(models))], models, rotation=30, ha="right",
                  fontsize=8)
    ax.set_yticks([i + 0.46 for i in range(len(metrics))], metrics, fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title or f"Can I trust the metric? ({activation}; SH = split-half "
                 "reliability, =R does not separate from random)", fontsize=9)
    fig.tight_layout()
    return fig
