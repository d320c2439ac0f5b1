"""The Reliability view: can I trust the metric? The reliability cards of the data's scores
(`dina_datasets.stats.reliability`, one per model, activation and metric) under the app's
filters, and the coloured card (`viz.card.reliability_card`: one row per metric, one column
per model). From the scores table alone: the planted-model check and the test-retest, which
run a model, are `dina reliability`'s (`--planted`, `--retest`), shown here as "not run".

The cards of the whole grid take about a minute of CPU, so they are computed when asked
(the tab opened or its button pressed), never on the first page, and kept per filter set
(`CACHED` of them, the oldest dropped first): the table does not change while the app runs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

CACHED = 8
SHOWN = ["model", "activation", "metric", "grade", "n", "explainers", "split_half",
         "split_half_low", "split_half_high", "alpha", "separates_random", "best_vs_random",
         "degenerate_share", "degenerate_explainers", "retest", "planted", "reasons"]
WORDS = {True: "yes", False: "no", None: "not checked"}


class Cards:
    """The reliability cards of an explorer's scores, computed once per filter set."""

    def __init__(self, explorer: Any) -> None:
        self.explorer = explorer
        self.lock = threading.Lock()  # one computation at a time; a second caller waits
        self.kept: OrderedDict[tuple[str, ...], tuple[Any, bytes]] = OrderedDict()

    def __call__(self, extra: Sequence[str] = ()) -> tuple[Any, bytes]:
        """(cards table, card PNG) of the scores under the filters `extra`."""
        key = tuple(extra)
        with self.lock:
            if key not in self.kept:
                self.kept[key] = compute(self.explorer, extra)
                while len(self.kept) > CACHED:
                    self.kept.popitem(last=False)
            self.kept.move_to_end(key)
            return self.kept[key]


def compute(explorer: Any, extra: Sequence[str] = ()) -> tuple[Any, bytes]:
    """The cards (`SHOWN` columns; `separates_random` as yes / no / "not checked": no
    RandomExp, or a metric of unknown direction) and the coloured card (PNG bytes) of the
    explorer's scores under `extra`."""
    from dina_datasets.analysis import stats
    from dina_datasets.viz import card, charts

    # a filter set that leaves nothing is a ConfigError naming the filters
    cards = stats.reliability(explorer.table(extra),
                              storage_options=explorer.storage_options).cards
    png = charts.render(card.reliability_card(cards), ("png",))["png"]
    shown = cards[SHOWN].copy()
    shown["separates_random"] = [WORDS[v] for v in shown["separates_random"]]
    return shown, png
