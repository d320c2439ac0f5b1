"""Test-retest of the stochastic metrics (the catalog's `stochastic`: MuFidelity and the
randomization metrics): the first N maps of each cell are scored again with another seed
(`evaluate`, into a temporary folder) and paired with the table's scores of the same records;
per (model, activation, metric), the ICC(A,1) of the two runs over every (explainer, image)
(`analysis.stats.consistency.icc_agreement`). A deterministic metric gives the same scores
whatever the seed: it is not re-run.
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np

from dina_datasets import catalog, formats
from dina_datasets.analysis.stats.consistency import icc_agreement
from dina_datasets.analysis.table import open_scores
from dina_datasets.errors import ConfigError, check_positive_int
from dina_datasets.layout import Layout

SEED = 1042
COLUMNS = ["model", "activation", "metric", "n", "icc"]


def retest(data_url: str, scores: Any, *, images: int, seed: int = SEED,
           weights: str = "pretrained", filters=(), activation: str | None = None,
           batch_size: int = 32, metric_params: dict[str, dict[str, Any]] | None = None,
           images_source: str | None = None, preprocess_url: str | None = None,
           storage_options: dict[str, Any] | None = None) -> Any:
    """One row per (model, activation, metric) of a stochastic metric in `scores` (a table
    of the score files under `data_url`): `COLUMNS` (a pandas frame). `metric_params`: the
    parameters the scores were made with, when not the published ones. The model's inputs:
    `images_source` (a folder or kecam json of the images) or `preprocess_url`, else
    `{Model}/preprocess_dataset.tfrecord` under `data_url`."""
    import pandas as pd

    from dina_datasets.metrics.evaluation import evaluate

    check_positive_int("images", images)
    stochastic = [m for m, spec in catalog.METRICS.items() if spec.stochastic]
    table = open_scores(scores, [*filters, "metric=" + ",".join(stochastic)], activation,
                        storage_options)
    first = table.frame("SELECT model, explainer, activation, metric, index, "
                        "coalesce(score, 'NaN'::DOUBLE) AS score FROM scores "
                        f"WHERE index < {int(images)}")
    if first.empty:
        raise ConfigError(f"--retest: no scores of a stochastic metric ({', '.join(stochastic)})"
                          " in the table: the others are deterministic")
    pairs: dict[tuple[str, str, str], list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="dina-retest-") as out:
        for (model, explainer, act), rows in first.groupby(["model", "explainer",
                                                             "activation"]):
            metrics = sorted(set(rows["metric"]))
            params = {m: p for m, p in (metric_params or {}).items() if m in metrics}
            evaluate(model, explainer, metrics, data_url=data_url, out=out, limit=images,
                     images=images_source, preprocess_url=preprocess_url,
                     subsample=images, seed=seed, weights=weights, activation=act,
                     batch_size=batch_size, progress=False, metric_params=params or None,
                     storage_options=storage_options)
            for metric, mine in rows.groupby("metric"):
                again = formats.read_scores(Layout(out).scores(model, explainer, metric, act))
                original = np.full(len(again), np.nan)
                inside = mine["index"].to_numpy() < len(again)
                original[mine["index"].to_numpy()[inside]] = mine["score"].to_numpy()[inside]
                pairs.setdefault((model, act, metric), []).append(
                    np.column_stack([original, np.asarray(again, np.float64)]))
    rows = []
    for (model, act, metric), parts in pairs.items():
        both = np.concatenate(parts)
        usable = np.isfinite(both).all(axis=1)
        rows.append([model, act, metric, int(usable.sum()),
                     icc_agreement(both[:, 0], both[:, 1])])
    return pd.DataFrame(rows, columns=COLUMNS)
