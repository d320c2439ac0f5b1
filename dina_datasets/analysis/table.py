"""The scores table as a DuckDB relation: opened from a Parquet path (any fsspec URL), a
DuckDB relation or a pandas frame, filtered in SQL, and read back per (model, metric) as a
matrix of images x explainers for the paired statistics.

Filters: `dina_datasets.analysis.filters` (FILTER_HELP lists them).

Rows of one (model, activation, metric) computed with different settings are never compared
(`Scores.one_setting`, `dina_datasets.analysis.settings`) unless the view is opened with
`allow_mixed_settings=True` (`--allow-mixed-settings`). A table without a `settings` column
(built before it existed, or a frame) holds published scores only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.analysis import settings as mixing
from dina_datasets.analysis.filters import (
    Filter,
    condition,
    isin,
)
from dina_datasets.analysis.scores import COLUMNS as TABLE_COLUMNS
from dina_datasets.errors import AlignmentError, ConfigError, FormatError, LayoutError
from dina_datasets.layout import DEFAULT_ACTIVATION

# the columns a scores table must have; `settings` may be absent (then: published scores)
COLUMNS = tuple(c for c in TABLE_COLUMNS if c != "settings")
_VIEW = "dina_scores"


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
        # a row without a settings id (null or "": a frame, a table of older builds joined
        # to a new one) holds published scores, like a table without the column
        self.settings_column = (f"coalesce(nullif(\"settings\", ''), '{mixing.PUBLISHED}') "
                                "AS settings") if "settings" in base.columns else \
            f"'{mixing.PUBLISHED}' AS settings"
        self.requested = list(filters)
        chosen = [condition(f) for f in self.requested]
        if activation and not any(f.key == "activation" for f in chosen):
            chosen.append(Filter("activation", isin("activation", [activation])))
        self.conditions = chosen
        self.filters = [str(f) for f in chosen]  # as text, for messages and the report
        self.base = base
        self.relation = self._where(chosen)
        # the same rows under every metric: the sanity floor judges maps on all of them
        others = [f for f in chosen if f.key != "metric"]
        self.metric_filtered = len(others) < len(chosen)
        self.every_metric = self._where(others) if self.metric_filtered else self.relation
        self._view: str | None = None

    def _where(self, filters: list[Filter]):
        columns = ", ".join(f'"{c}"' for c in COLUMNS if c != "score")
        # NaN and infinities (a pandas frame may hold them) are undefined scores: NULL.
        relation = self.base.query(_VIEW, f"SELECT {columns}, CASE WHEN isfinite(score) "
                                          f"THEN score END AS score, {self.settings_column} "
                                          f"FROM {_VIEW}")
        for f in filters:
            relation = relation.filter(f.expression)
        return relation

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
            self.described = mixing.described(url, storage_options)
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
        computed with different settings, naming them, their explainers and the settings
        that differ; nothing when `allow_mixed_settings`. Checked once per view."""
        if self.allow_mixed_settings or self._checked:
            return
        mixing.refuse_mixed(self.relation, self.described)
        self._checked = True

    def query(self, sql: str):
        """A DuckDB relation of `sql` over the filtered table, named `scores` in the query."""
        return self.relation.query("scores", sql)

    def frame(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None):
        """`sql` (over `scores`) as a pandas frame; `params` are bound to its `?` or `$name`
        placeholders by DuckDB."""
        if params is None:
            return self.query(sql).df()
        if self._view is None:
            self._view = f"{_VIEW}_{id(self):x}"
            self.relation.create_view(self._view, replace=True)
        return self.con.execute(f"WITH scores AS (SELECT * FROM {self._view}) {sql}",
                                params).df()

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
        names = [m for m, spec in catalog.METRICS.items() if not spec.needs_model]
        return self.every_metric.filter(isin("metric", names or [""])).query(
            "scores", "SELECT model, metric, explainer, count(score) AS n, "
            "count(*) - count(score) AS n_undefined FROM scores "
            "GROUP BY model, metric, explainer").df()

    def _cell(self, model: str, metric: str, explainers: Sequence[str]):
        """The rows of one (model, metric) and some explainers, with `e` the explainer's
        position in `explainers` (values bound as constants)."""
        from duckdb import ColumnExpression, ConstantExpression, FunctionExpression

        rows = self.relation.filter(isin("model", [model]) & isin("metric", [metric])
                                    & isin("explainer", list(explainers)))
        position = FunctionExpression("list_position", ConstantExpression(list(explainers)),
                                      ColumnExpression("explainer")) - ConstantExpression(1)
        return rows.select(position.alias("e"), *map(ColumnExpression, COLUMNS))

    def pairing_key(self, model: str, metric: str, explainers: Sequence[str]) -> str:
        """How the rows of one (model, metric) pair into images: "image_id" when every row
        has an id and no explainer holds one twice; "index" (the record position) when no
        row has an id (cells written in one order: the published cells of one model), or
        when every row has an id and the ids at each index agree (one order, shown by the
        ids). Otherwise an AlignmentError naming the cells and what to pass."""
        cell = self._cell(model, metric, explainers)
        counts = cell.query(
            "cell", "SELECT e, count(*) AS n, "
            "count(*) FILTER (WHERE coalesce(image_id, '') = '') AS keyless, "
            "count(image_id) FILTER (WHERE image_id <> '') "
            "- count(DISTINCT image_id) FILTER (WHERE image_id <> '') AS repeated "
            "FROM cell GROUP BY e ORDER BY e").fetchall()
        if all(k == 0 and r == 0 for _, _, k, r in counts):
            return "image_id"
        if all(k == n for _, n, k, _ in counts):
            return "index"
        if all(k == 0 for _, _, k, _ in counts):
            ((disagree,),) = cell.query(
                "cell", "SELECT count(*) FROM (SELECT index FROM cell GROUP BY index "
                "HAVING count(DISTINCT image_id) > 1)").fetchall()
            if disagree == 0:
                return "index"
        raise AlignmentError(_refusal(model, metric, explainers, counts))

    def matrix(self, model: str, metric: str, explainers: Sequence[str]) -> Matrix:
        """The images x explainers matrix of one (model, metric), its rows paired into
        images by `pairing_key` (rows sorted by id when paired by `image_id`;
        `Matrix.paired_by` says which key)."""
        self.one_setting()
        key = self.pairing_key(model, metric, explainers)
        rank = "dense_rank() OVER (ORDER BY image_id) - 1" if key == "image_id" else "index"
        got = self._cell(model, metric, explainers).query(
            "cell", f"SELECT e, {rank} AS k, coalesce(score, 'NaN'::DOUBLE) AS score "
            "FROM cell").fetchnumpy()
        index, rows = np.unique(np.asarray(got["k"], np.int64), return_inverse=True)
        values = np.full((len(index), len(explainers)), np.nan)
        values[rows, np.asarray(got["e"], np.int64)] = np.asarray(got["score"], np.float64)
        return Matrix(model, metric, list(explainers), index, values, key)


def _refusal(model: str, metric: str, explainers: Sequence[str], counts: list[tuple]) -> str:
    """The message of a pairing that neither ids nor one record order can make."""
    with_ids = [explainers[e] for e, n, k, _ in counts if k == 0]
    without = [explainers[e] for e, n, k, _ in counts if k == n]
    partial = [explainers[e] for e, n, k, _ in counts if 0 < k < n]
    twice = [explainers[e] for e, _, k, r in counts if r > 0]
    said = []
    if with_ids and (without or partial):
        said.append(f"{', '.join(with_ids)} {'has' if len(with_ids) == 1 else 'have'} image "
                    "ids")
    if without:
        said.append(f"{', '.join(without)} {'has' if len(without) == 1 else 'have'} none")
    if partial:
        said.append(f"{', '.join(partial)} {'has' if len(partial) == 1 else 'have'} ids on "
                    "some rows only")
    if twice:
        said.append(f"{', '.join(twice)} {'holds' if len(twice) == 1 else 'hold'} an image id "
                    "twice" + ("" if without or partial else ", and the ids at one record "
                               "index differ between the cells"))
    return (f"cannot pair the images of {model} {metric}: {'; '.join(said)}. Pairing by "
            "record position would compare different images. Give every cell its image ids "
            "(`--imagenet-json imagenet_data.json` of the images the cells were written "
            "from, or records that carry image_id), or align the cells with `dina align`.")


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
