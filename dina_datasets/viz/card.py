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


def reliability_card(cards: Any, *, title: str | None = None) -> Any:
    """The coloured card of the `cards` frame (columns model, activation, metric, grade,
    split_half, separates_random, explainers): one column per model, or per (model,
    activation) when there are several activations."""
    from dina_datasets.viz.charts import _pyplot

    plt = _pyplot()
    metrics = _order(cards["metric"], catalog.METRICS)
    activations = list(dict.fromkeys(cards["activation"]))
    columns = [(m, a) for m in _order(cards["model"], catalog.MODELS) for a in activations
               if ((cards["model"] == m) & (cards["activation"] == a)).any()]
    cell = {(r.model, r.activation, r.metric): r for r in cards.itertuples()}
    fig, ax = plt.subplots(figsize=(1.8 + 1.15 * max(1, len(columns)),
                                    1.3 + 0.5 * max(1, len(metrics))))
    for i, metric in enumerate(metrics):
        for j, (model, activation) in enumerate(columns):
            r = cell.get((model, activation, metric))
            word = r.grade if r is not None else ""
            ax.add_patch(plt.Rectangle((j, i), 0.96, 0.92, color=COLOURS[word]))
            if r is None:
                continue
            sh = r.split_half
            detail = (f"SH {sh:.2f}" if math.isfinite(sh) else
                      "no explainer ranked" if getattr(r, "explainers", 1) == 0 else "SH n/a")
            text = SHORT[word] + "\n" + detail
            if r.separates_random is False:
                text += " =R"
            ax.text(j + 0.48, i + 0.46, text, ha="center", va="center", fontsize=7,
                    color="white" if word == "unreliable" else "black")
    labels = [m if len(activations) == 1 else f"{m}\n{a}" for m, a in columns]
    ax.set_xlim(0, max(1, len(columns)))
    ax.set_ylim(max(1, len(metrics)), 0)
    ax.set_xticks([j + 0.48 for j in range(len(columns))], labels, rotation=30, ha="right",
                  fontsize=8)
    ax.set_yticks([i + 0.46 for i in range(len(metrics))], metrics, fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title or "Can I trust the metric? (SH = split-half reliability; "
                 "=R: does not separate from random)", fontsize=9)
    fig.tight_layout()
    return fig
