"""The scores table as a DuckDB relation: opened from a Parquet path (any fsspec URL), a
DuckDB relation or a pandas frame, filtered in SQL, and read back per (model, metric) as a
matrix of images x explainers for the paired statistics.

Filters (`--filter` on the command line, `filters=` in Python), combined with AND:

- `correct` / `wrong`: images the model classified right / wrong (labels and predictions
  known, i.e. not -1);
- `class=281,285` (or `label=`): true classes; `prediction=...`: predicted classes;
- `image_id=ILSVRC2012_val_00000001,...`; `index=0,1,2`;
- `activation=sigmoid`: the output activation (default: softmax only, the published one);
- `model=...`, `explainer=...`, `metric=...`;
- `settings=ID`: the settings id of the score files (`dina_datasets.runs.settings`).

Rows of one (model, activation, metric) computed with different settings are never compared
(`Scores.one_setting`) unless the view is opened with `allow_mixed_settings=True`
(`--allow-mixed-settings`). A table without a `settings` column (built before it existed, or
a frame) holds published scores only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.errors import ConfigError, FormatError, LayoutError
from dina_datasets.runs.settings import PUBLISHED, TABLE_METADATA

COLUMNS = ("model", "explainer", "metric", "activation", "index", "image_id", "label",
           "prediction", "score")
DEFAULT_ACTIVATION = "softmax"
FILTER_HELP = ("correct | wrong | class=C1,C2 | prediction=C | image_id=ID1,ID2 | index=I | "
               "activation=A | model=M | explainer=E | metric=X | settings=ID")
_INT_COLUMNS = {"class": "label", "label": "label", "prediction": "prediction",
                "index": "index"}
_TEXT_COLUMNS = ("image_id", "activation", "model", "explainer", "metric", "settings")

_VIEW = "dina_scores"


def literal(value: Any) -> str:
    """A SQL literal of a string or an integer."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


def condition(text: str) -> str:
    """The SQL condition of one filter (see the module docstring)."""
    key, sep, value = text.strip().partition("=")
    key = key.strip().lower()
    if not sep:
        if key == "correct":
            return "label >= 0 AND label = prediction"
        if key == "wrong":
            return "label >= 0 AND prediction >= 0 AND label <> prediction"
        raise ConfigError(f"unknown filter {text!r}; valid: {FILTER_HELP}")
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"filter {text!r} names no value; valid: {FILTER_HELP}")
    if key in _INT_COLUMNS:
        try:
            numbers = [int(v) for v in items]
        except ValueError:
            raise ConfigError(f"filter {text!r}: {key} takes integers, e.g. {key}=281,285"
                              ) from None
        return f'"{_INT_COLUMNS[key]}" IN ({", ".join(map(literal, numbers))})'
    if key in _TEXT_COLUMNS:
        return f'"{key}" IN ({", ".join(map(literal, items))})'
    raise ConfigError(f"unknown filter {text!r}; valid: {FILTER_HELP}")


def higher_is_better(metric: str) -> bool | None:
    """The catalog's direction of a metric; None when the catalog does not know it."""
    spec = catalog.METRICS.get(metric)
    return spec.higher_is_better if spec else None


def is_reference(explainer: str) -> bool:
    """Whether the catalog marks an explainer as a reference (Sobel, Laplace, RandomExp)."""
    return bool(getattr(catalog.EXPLAINERS.get(explainer), "reference", False))


def order(names: Iterable[str], table: dict[str, Any]) -> list[str]:
    """Names in catalog order, unknown ones after, alphabetically."""
    known = list(table)
    return sorted(set(names), key=lambda n: (known.index(n), "") if n in table
                  else (len(known), n))


@dataclass
class Matrix:
    """The scores of one (model, metric): rows = images, columns = explainers; NaN where a
    score is missing or undefined. `paired_by` is the key that made a row one image:
    "image_id" (then `index` holds the rows' rank in id order) or "index" (the record
    position, meaningful only when the cells were written in one order)."""

    model: str
    metric: str
    explainers: list[str]
    index: np.ndarray
    values: np.ndarray
    paired_by: str = "index"

    def complete(self) -> np.ndarray:
        """The rows where every explainer has a score."""
        return self.values[np.isfinite(self.values).all(axis=1)]


STATS_MODULES = ("duckdb", "pandas", "scipy", "statsmodels", "scikit_posthocs")


def require_stats() -> None:
    """ConfigError naming the `stats` extra when one of its packages is missing."""
    import importlib.util

    missing = [m for m in STATS_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"the statistics need the 'stats' extra (missing: "
                          f"{', '.join(missing)}): pip install 'dina-datasets[stats]'")


class Scores:
    """A filtered view of the scores table, queried with DuckDB."""

    def __init__(self, source: Any, filters: Iterable[str] = (),
                 activation: str | None = DEFAULT_ACTIVATION,
                 storage_options: dict[str, Any] | None = None, *,
                 allow_mixed_settings: bool | None = None) -> None:
        require_stats()
        import duckdb

        self.described: dict[str, dict] = {}
        if isinstance(source, Scores):
            self.con, base = source.con, source.base
            self.described = source.described
            filters = [*source.requested, *filters]
            if allow_mixed_settings is None:
                allow_mixed_settings = source.allow_mixed_settings
        else:
            # Parquet footers read once per connection, not at every query (5x faster views)
            self.con = duckdb.connect()
            self.con.execute("SET parquet_metadata_cache = true")
            base = self._open(source, storage_options)
        missing = [c for c in COLUMNS if c not in base.columns]
        if missing:
            raise FormatError(f"the scores table lacks the columns {', '.join(missing)}; "
                              f"expected {', '.join(COLUMNS)} (build it with `dina scores`)")
        self.allow_mixed_settings = bool(allow_mixed_settings)
        self._checked = False
        self.settings_column = '"settings"' if "settings" in base.columns else \
            f"{literal(PUBLISHED)} AS settings"
        self.requested = list(filters)
        self.filters = [condition(f) for f in self.requested]
        if activation and not any(f.startswith('"activation"') for f in self.filters):
            self.filters.append(f'"activation" = {literal(activation)}')
        self.base = base
        self.relation = self._where(self.filters)
        # the same rows under every metric: the sanity floor judges maps on all of them
        others = [f for f in self.filters if not f.startswith('"metric"')]
        self.metric_filtered = len(others) < len(self.filters)
        self.every_metric = self._where(others) if self.metric_filtered else self.relation

    def _where(self, filters: list[str]):
        columns = ", ".join(f'"{c}"' for c in COLUMNS if c != "score")
        where = " AND ".join(f"({f})" for f in filters) or "TRUE"
        # NaN and infinities (a pandas frame may hold them) are undefined scores: NULL.
        inner = f"SELECT *, {self.settings_column} FROM {_VIEW}" if \
            self.settings_column.endswith("AS settings") else f"SELECT * FROM {_VIEW}"
        return self.base.query(_VIEW, f"SELECT {columns}, CASE WHEN isfinite(score) "
                                      f"THEN score END AS score, settings FROM ({inner}) "
                                      f"WHERE {where}")

    def _open(self, source: Any, storage_options: dict[str, Any] | None):
        import duckdb

        if isinstance(source, duckdb.DuckDBPyRelation):
            return source
        if isinstance(source, (str, os.PathLike)):
            url = os.fspath(source)
            if "://" in url and not url.startswith("file://"):
                from dina_datasets import storage

                fs, _ = storage.filesystem(url, storage_options)
                self.con.register_filesystem(fs)
            elif not os.path.exists(url.removeprefix("file://")):
                raise LayoutError(f"no scores table at {url} (build one with `dina scores`)")
            try:
                relation = self.con.read_parquet(url)
            except duckdb.Error as err:
                raise FormatError(f"{url} is not a Parquet scores table: {err}") from None
            self.described = _described(url, storage_options)
            return relation
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas comes with the stats extra
            pd = None
        if pd is not None and isinstance(source, pd.DataFrame):
            return self.con.from_df(source)
        raise ConfigError(f"scores must be a Parquet path or URL, a DuckDB relation or a "
                          f"pandas DataFrame, got {type(source).__name__}")

    def one_activation(self) -> str | None:
        """The one output activation of the view's rows (None when it has no row); a
        ConfigError naming them when rows of several activations would be pooled (their
        scores are not on one scale, and an image would count once per activation)."""
        found = sorted(r[0] for r in self.relation.query(
            "scores", "SELECT DISTINCT activation FROM scores").fetchall())
        if len(found) > 1:
            raise ConfigError(
                f"the scores hold several output activations ({', '.join(found)}) and a "
                "statistic never pools them: pass activation= one of them (or the filter "
                "activation=NAME), and compute one table per activation")
        return found[0] if found else None

    def one_setting(self) -> None:
        """ConfigError when rows of one (model, activation, metric) come from score files
        computed with different settings (ids), naming them, their explainers and the
        settings that differ; nothing when `allow_mixed_settings`. Checked once per view."""
        if self.allow_mixed_settings or self._checked:
            return
        mixed = self.relation.query("scores", (
            "SELECT model, activation, metric FROM scores GROUP BY ALL "
            "HAVING min(settings) <> max(settings)")).fetchall()
        if mixed:
            keys = " OR ".join(f"(model = {literal(m)} AND activation = {literal(a)} AND "
                               f"metric = {literal(x)})" for m, a, x in mixed)
            found: dict[tuple[str, str, str], list[tuple[str, list[str]]]] = {}
            for model, activation, metric, setting, explainers in self.relation.query(
                    "scores", "SELECT model, activation, metric, settings, list(DISTINCT "
                    f"explainer ORDER BY explainer) FROM scores WHERE {keys} GROUP BY ALL "
                    "ORDER BY ALL").fetchall():
                found.setdefault((model, activation, metric), []).append((setting, explainers))
            raise ConfigError(
                "scores computed with different settings would be compared: "
                + "; ".join(self._mixed_line(k, v) for k, v in found.items())
                + ". Re-evaluate them with one setting (`dina evaluate --overwrite`), keep one "
                "(filter settings=ID), or pass --allow-mixed-settings "
                "(allow_mixed_settings=True) to compare them anyway")
        self._checked = True

    def _mixed_line(self, key: tuple[str, str, str], found: list[tuple[str, list[str]]]
                    ) -> str:
        """One (model, activation, metric) of mixed settings, in words."""
        model, activation, metric = key
        who = ", ".join(f"{setting} ({', '.join(explainers)})" for setting, explainers in found)
        known = [self.described.get(s) for s, _ in found]
        differ = sorted({k for a in known for b in known if a and b for k in {*a, *b}
                         if a.get(k) != b.get(k)})
        if any(s == PUBLISHED for s, _ in found):
            differ.append("published vs evaluated here")
        detail = f"; differing: {', '.join(differ)}" if differ else ""
        return f"{model} {metric} ({activation}): {who}{detail}"

    def query(self, sql: str):
        """A DuckDB relation of `sql` over the filtered table, named `scores` in the query."""
        return self.relation.query("scores", sql)

    def frame(self, sql: str):
        """`sql` as a pandas frame."""
        return self.query(sql).df()

    def cells(self, every_metric: bool = False):
        """One row per (model, metric, explainer): n (defined scores), n_undefined, mean,
        median, std. `every_metric`: ignoring the `metric=` filters."""
        self.one_setting()
        relation = self.every_metric if every_metric else self.relation
        frame = relation.query(
            "scores", "SELECT model, metric, explainer, count(score) AS n, "
            "count(*) - count(score) AS n_undefined, avg(score) AS mean, "
            "median(score) AS median, stddev_samp(score) AS std "
            "FROM scores GROUP BY model, metric, explainer").df()
        if frame.empty:
            raise ConfigError(
                f"no scores left after the filters ({' AND '.join(self.filters)}); label and "
                "prediction are -1 where unknown, so `correct`, `wrong` and `class=` need a "
                "table built with keys (`dina scores --imagenet-json FILE`, or records that "
                "carry them)")
        return frame

    def context(self):
        """n and n_undefined of the same rows under every map-only metric when a `metric=`
        filter dropped some (the sanity floor judges maps on them), else None."""
        if not self.metric_filtered:
            return None
        names = ", ".join(literal(m) for m, spec in catalog.METRICS.items()
                          if not spec.needs_model)
        return self.every_metric.query(
            "scores", "SELECT model, metric, explainer, count(score) AS n, "
            "count(*) - count(score) AS n_undefined FROM scores "
            f"WHERE metric IN ({names or 'NULL'}) GROUP BY model, metric, explainer").df()

    def matrix(self, model: str, metric: str, explainers: Sequence[str]) -> Matrix:
        """The images x explainers matrix of one (model, metric). Rows are images paired by
        identity: by `image_id` when every row has one and no explainer holds an id twice
        (rows sorted by id), else by the record `index` (`Matrix.paired_by` says which)."""
        self.one_setting()
        names = "[" + ", ".join(literal(e) for e in explainers) + "]"
        where = (f"WHERE model = {literal(model)} AND metric = {literal(metric)} "
                 f"AND list_contains({names}, explainer)")
        counts = self.query(
            "SELECT count(*) - count(DISTINCT image_id) AS repeated, "
            "count(*) FILTER (WHERE coalesce(image_id, '') = '') AS keyless "
            f"FROM scores {where} GROUP BY explainer").fetchall()
        by_id = bool(counts) and all(r == 0 and k == 0 for r, k in counts)
        key = "dense_rank() OVER (ORDER BY image_id) - 1" if by_id else "index"
        got = self.query(
            f"SELECT list_position({names}, explainer) - 1 AS e, {key} AS k, "
            f"coalesce(score, 'NaN'::DOUBLE) AS score FROM scores {where}").fetchnumpy()
        index, rows = np.unique(np.asarray(got["k"], np.int64), return_inverse=True)
        values = np.full((len(index), len(explainers)), np.nan)
        values[rows, np.asarray(got["e"], np.int64)] = np.asarray(got["score"], np.float64)
        return Matrix(model, metric, list(explainers), index, values,
                      "image_id" if by_id else "index")


def _described(url: str, storage_options: dict[str, Any] | None) -> dict[str, dict]:
    """What each settings id of a Parquet scores table stands for (its metadata)."""
    import json

    import pyarrow.parquet as pq

    from dina_datasets import storage

    fs, path = storage.filesystem(url, storage_options)
    with fs.open(path, "rb") as handle:
        metadata = pq.read_schema(handle).metadata or {}
    try:
        return json.loads(metadata.get(TABLE_METADATA, b"{}"))
    except ValueError:
        return {}


def open_scores(source: Any, filters: Iterable[str] = (),
                activation: str | None = DEFAULT_ACTIVATION,
                storage_options: dict[str, Any] | None = None, *,
                allow_mixed_settings: bool | None = None) -> Scores:
    """A `Scores` view of a path, relation, frame or `Scores` (filters added).
    `allow_mixed_settings`: compare scores of different settings (default: refused, or as
    the `Scores` given)."""
    if isinstance(source, Scores) and not filters and allow_mixed_settings is None:
        return source
    return Scores(source, filters, activation, storage_options,
                  allow_mixed_settings=allow_mixed_settings)
