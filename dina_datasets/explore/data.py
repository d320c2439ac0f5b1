"""What the explorer shows, without Gradio: the scores table (DuckDB over Parquet, through
`dina_datasets.stats`), maps read on demand (one ranged read per record, concurrently) and
drawn by `dina_datasets.viz.figures` exactly as `dina show` draws them.

Every method raises a `DinaError` naming the problem on bad input; the app turns it into a
message in the page.
"""

from __future__ import annotations

import atexit
import hashlib
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.analysis.table import literal
from dina_datasets.errors import ConfigError, DinaError, LayoutError, RecordIndexError
from dina_datasets.layout import DEFAULT_ACTIVATION, Layout
from dina_datasets.viz import figures

READERS = 16  # records fetched at once (gs:// requests overlap)
PREDICTIONS = ("all", "correct", "wrong")
TOP = 20  # images listed where two configs disagree most


def filters(prediction: str = "all", classes: str = "", image_ids: str = "",
            activation: str = DEFAULT_ACTIVATION) -> list[str]:
    """The scores table's filters (`dina_datasets.analysis.table`) of the app's controls."""
    out = []
    if prediction and prediction != "all":
        if prediction not in PREDICTIONS:
            raise ConfigError(f"prediction must be one of {', '.join(PREDICTIONS)}, "
                              f"got {prediction!r}")
        out.append(prediction)
    if classes and classes.strip():
        out.append(f"class={classes.strip()}")
    if image_ids and image_ids.strip():
        out.append(f"image_id={image_ids.strip()}")
    out.append(f"activation={activation or DEFAULT_ACTIVATION}")
    return out


def _render(panel: figures.Panel) -> bytes:
    """One panel drawn alone, as `dina show CONFIG --index I` draws it (a renderer keeps
    its figure and refills it: the same pixels in 60 % of the time)."""
    return figures.render([[panel]], reuse=True)


def _warm(_: int = 0) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return os.getpid()


def _warm_stats() -> None:
    """Import the statistics' libraries now, not on the first view."""
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401
    import statsmodels.stats.multitest  # noqa: F401


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


class Explorer:
    """The data behind the app: a bucket-shaped folder or URL and its scores table."""

    def __init__(self, data_url: str, *, scores: str | None = None, images: str | None = None,
                 imagenet_json: str | None = None,
                 storage_options: dict[str, Any] | None = None,
                 render_workers: int | None = None, cache_dir: str | None = None,
                 say: Any = print) -> None:
        self.data_url = data_url
        self.layout = Layout(data_url)
        self.images = images
        self.imagenet_json = imagenet_json
        self.storage_options = storage_options
        self.say = say
        self.cache_dir = cache_dir or tempfile.mkdtemp(prefix="dina-explore-")
        os.makedirs(self.cache_dir, exist_ok=True)
        if cache_dir is None:
            atexit.register(shutil.rmtree, self.cache_dir, True)
        self.scores_path = scores
        self.built = False
        self.problem: str | None = None
        self._entries: list[Any] | None = None
        self._cells: list[tuple[str, str]] | None = None
        self._choices: dict[str, list[str]] = {}
        self.readers = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="dina-read")
        workers = (min(4, os.cpu_count() or 1) if render_workers is None else render_workers)
        self.renderers: Executor | None = None
        self._drawing = threading.Lock()
        self._thread = threading.local()
        if workers > 1:
            import multiprocessing

            self.renderers = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"))

    # ---- set-up -------------------------------------------------------------------------
    def open(self) -> Explorer:
        """Build the scores table when none was given, list the cells, warm the renderers.
        A problem is kept in `self.problem` (shown by the app), not raised."""
        try:
            if self.scores_path is None:
                from dina_datasets.analysis import scores

                self.scores_path = os.path.join(self.cache_dir, "scores.parquet")
                self.say(f"building the scores table of {self.data_url} into "
                         f"{self.scores_path} (temporary; `dina scores --out FILE` then "
                         "`--scores FILE` reuses one)")
                scores.build(self.data_url, self.scores_path, imagenet_json=self.imagenet_json,
                             storage_options=self.storage_options)
                self.built = True
            self.cells()
            if self.images is not None:
                self.entries()
            _warm_stats()
        except DinaError as err:
            self.problem = str(err)
        if self.renderers is not None:
            list(self.renderers.map(_warm, range(self.renderers._max_workers)))
        return self

    def close(self) -> None:
        self.readers.shutdown(wait=False, cancel_futures=True)
        if self.renderers is not None:
            self.renderers.shutdown(wait=False, cancel_futures=True)

    def check(self) -> None:
        if self.problem:
            raise LayoutError(self.problem)

    def table(self, extra: Iterable[str] = ()) -> Any:
        """A filtered `stats.Scores` view on this thread's DuckDB connection (opened once per
        server thread, the Parquet footer read once: a connection serves one thread)."""
        from dina_datasets.analysis import stats

        self.check()
        base = getattr(self._thread, "scores", None)
        if base is None:
            base = self._thread.scores = stats.open_scores(
                self.scores_path, activation=None, storage_options=self.storage_options)
        # (the default activation filter applies to a view, not to the unfiltered base)
        return stats.open_scores(base, list(extra) or [f"activation={DEFAULT_ACTIVATION}"])

    def cells(self) -> list[tuple[str, str]]:
        """(model, explainer) of every cell in the scores table, in catalog order."""
        if self._cells is None:
            from dina_datasets.analysis import stats

            view = stats.open_scores(self.scores_path, activation=None,
                                     storage_options=self.storage_options)
            got = view.frame("SELECT DISTINCT model, explainer FROM scores")
            models, explainers = list(catalog.MODELS), list(catalog.EXPLAINERS)
            self._cells = sorted(zip(got["model"], got["explainer"], strict=True),
                                 key=lambda me: (_pos(me[0], models), _pos(me[1], explainers)))
            if not self._cells:
                raise LayoutError(f"the scores table {self.scores_path} is empty")
        return self._cells

    def choices(self, column: str) -> list[str]:
        """The distinct values of a text column (model, explainer, metric, activation)."""
        if column == "model":
            return list(dict.fromkeys(m for m, _ in self.cells()))
        if column == "explainer":
            return list(dict.fromkeys(e for _, e in self.cells()))
        if column == "config":
            return [f"{m}-{e}" for m, e in self.cells()]
        if column not in self._choices:  # the table does not change while the app runs
            got = self.table().frame(f'SELECT DISTINCT "{column}" AS v FROM scores')["v"]
            table = catalog.METRICS if column == "metric" else {}
            self._choices[column] = sorted(got, key=lambda v: _pos(v, list(table)))
        return list(self._choices[column])

    def entries(self) -> list[Any] | None:
        if self._entries is None and self.images is not None:
            from dina_datasets.images import list_images

            self._entries = list_images(self.images)
        return self._entries

    # ---- views --------------------------------------------------------------------------
    def leaderboard(self, model: str, metric: str, extra: Sequence[str] = ()) -> Any:
        """The ranked table of one model (and metric, or "all"): mean, 95 % interval, n,
        rank, markers and verdicts (`dina_datasets.analysis.leaderboard`)."""
        from dina_datasets.analysis import leaderboard

        self.check()
        self._known("model", model)
        wanted = [*extra, f"model={model}"]
        if metric and metric != "all":
            self._known("metric", metric)
            wanted.append(f"metric={metric}")
        # one view of the wanted rows: its activation filter replaces the default one
        board = leaderboard.from_table(self.table(wanted), storage_options=self.storage_options)
        s = board.summary
        half = (s["ci_high"] - s["ci_low"]) / 2
        out = s.assign(half_width=half)[["metric", "rank", "explainer", "mean", "half_width",
                                         "ci_low", "ci_high", "n", "n_undefined", "marker",
                                         "vs_next", "vs_random", "reason"]]
        return out.astype({"vs_next": object, "vs_random": object, "reason": object}).fillna(
            {"vs_next": "", "vs_random": "", "reason": ""})

    def resolve(self, model_or_explainer: str) -> tuple[str, list[tuple[str, str]]]:
        """('model'|'explainer', its cells) of a name typed by the user."""
        self.check()
        name = (model_or_explainer or "").strip()
        by_model = [c for c in self.cells() if c[0].lower() == name.lower()]
        by_explainer = [c for c in self.cells() if c[1].lower() == name.lower()]
        if by_model:
            return "model", by_model
        if by_explainer:
            return "explainer", by_explainer
        raise ConfigError(f"{name!r} is neither a model nor an explainer of this data; "
                          f"models: {', '.join(self.choices('model'))}; explainers: "
                          f"{', '.join(self.choices('explainer'))}")

    def index_of(self, model: str, image_id: str) -> int:
        """The record index of an image id (from the scores table)."""
        got = self.table().frame(f"SELECT min(index) AS i FROM scores WHERE model = "
                                 f"{literal(model)} AND image_id = {literal(image_id)}")
        value = got["i"].iloc[0]
        if _missing(value):
            raise ConfigError(f"no image {image_id!r} for {model} in the scores table "
                              "(image ids come from the records or --imagenet-json)")
        return int(value)

    def sample(self, name: str, index: Any, activation: str = DEFAULT_ACTIVATION,
               image_id: str = "") -> Sample:
        """One image under every explainer of a model (or every model of an explainer):
        maps read concurrently, drawn as `dina show` draws them, captioned with scores."""
        kind, cells = self.resolve(name)
        if image_id and image_id.strip():
            index = self.index_of(cells[0][0], image_id.strip())
        index = _index(index)
        # each map drawn as soon as it is read; the scores looked up meanwhile
        keys_job = self.readers.submit(self._keys, cells, index, activation)
        jobs = [self.readers.submit(self._drawn, m, e, index) for m, e in cells]
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
        sample = Sample(title=f"{kind} {name}", index=index, image_id=image_id,
                        label=keys.get("label", -1), prediction=keys.get("prediction", -1),
                        image=first.image, notes=notes, panels=panels)
        import pandas as pd

        sample.scores = pd.DataFrame([{"config": p.config, **keys["scores"].get(p.config, {})}
                                      for p in panels])
        for panel, png in zip(panels, pngs, strict=True):
            caption = panel.config + " · " + ", ".join(
                f"{m} {_fmt(v)}" for m, v in keys["scores"].get(panel.config, {}).items())
            sample.maps.append((self.save(png), caption))
        return sample

    def _drawn(self, model: str, explainer: str, index: int) -> tuple[figures.Panel, bytes]:
        """A panel and its PNG (drawn by a renderer process when there are several)."""
        panel = self._panel(model, explainer, index)
        if self.renderers is None:
            with self._drawing:  # matplotlib draws one figure at a time in a process
                return panel, _render(panel)
        return panel, self.renderers.submit(_render, panel).result()

    def _panel(self, model: str, explainer: str, index: int) -> figures.Panel:
        """One map and its image, paired exactly as `dina show` pairs them (by the record's
        own image id; keyless records only with the kecam json that produced them)."""
        return figures.load_panels([f"{model}-{explainer}"], [index], data_url=self.data_url,
                                   images=self.images,
                                   storage_options=self.storage_options)[0][0]

    def _keys(self, cells: list[tuple[str, str]], index: int, activation: str) -> dict:
        models = sorted({m for m, _ in cells})
        explainers = sorted({e for _, e in cells})
        # map-only metrics are scored once, under softmax: they stand for every activation
        map_only = [m for m, spec in catalog.METRICS.items() if not spec.needs_model]
        frame = self.table([f"activation={activation},{DEFAULT_ACTIVATION}"]).frame(
            "SELECT model, explainer, metric, image_id, label, prediction, score FROM scores "
            f"WHERE index = {int(index)} AND (activation = {literal(activation)} OR "
            f"metric IN ({', '.join(map(literal, map_only))})) "
            f"AND model IN ({', '.join(map(literal, models))}) "
            f"AND explainer IN ({', '.join(map(literal, explainers))})")
        metrics = list(catalog.METRICS)
        scores: dict[str, dict[str, float]] = {}
        for r in sorted(frame.itertuples(), key=lambda r: _pos(r.metric, metrics)):
            scores.setdefault(f"{r.model}-{r.explainer}", {})[r.metric] = r.score
        out: dict[str, Any] = {"scores": scores}
        if len(frame):
            out.update(image_id=str(frame["image_id"].iloc[0]),
                       label=int(frame["label"].iloc[0]),
                       prediction=int(frame["prediction"].iloc[0]))
        return out

    def compare(self, config_a: str, config_b: str, metric: str,
                extra: Sequence[str] = ()) -> tuple[Any, bytes]:
        """The paired scores of two configs under a metric, sorted by disagreement
        (|difference of percentile ranks|), and their scatter plot (PNG)."""
        a, b = self._config(config_a), self._config(config_b)
        self._known("metric", metric)
        table = self.table(extra)
        sql = ("WITH s AS (SELECT model || '-' || explainer AS config, index, image_id, label, "
               "prediction, score FROM scores WHERE metric = {m} AND score IS NOT NULL AND "
               "((model = {am} AND explainer = {ae}) OR (model = {bm} AND explainer = {be}))), "
               "a AS (SELECT *, percent_rank() OVER (ORDER BY score) AS r FROM s "
               "WHERE config = {a}), b AS (SELECT *, percent_rank() OVER (ORDER BY score) AS r "
               "FROM s WHERE config = {b}) "
               "SELECT a.index, a.image_id, a.label, a.prediction AS prediction_a, "
               "b.prediction AS prediction_b, a.score AS score_a, b.score AS score_b, "
               "abs(a.r - b.r) AS disagreement FROM a JOIN b USING (index) "
               "ORDER BY disagreement DESC, a.index")
        frame = table.frame(sql.format(m=literal(metric), am=literal(a[0]), ae=literal(a[1]),
                                       bm=literal(b[0]), be=literal(b[1]),
                                       a=literal(f"{a[0]}-{a[1]}"), b=literal(f"{b[0]}-{b[1]}")))
        if frame.empty:
            raise ConfigError(f"{a[0]}-{a[1]} and {b[0]}-{b[1]} share no image with a "
                              f"{metric} score under the filters ({', '.join(extra)})")
        return frame, _scatter(frame, f"{a[0]}-{a[1]}", f"{b[0]}-{b[1]}", metric)

    def agreement(self, between: str, extra: Sequence[str] = ()) -> tuple[Any, bytes]:
        """Kendall's tau between the explainer rankings of metrics (per model, averaged) or
        of models (per metric, averaged): the pairs table and the heatmap (PNG)."""
        from dina_datasets.analysis import stats
        from dina_datasets.viz import charts as stat_figures

        summary = stats.summary(self.table(extra), ci="normal")
        if between == "metrics":
            pairs, a, b = stats.metric_agreement(summary), "metric_a", "metric_b"
        elif between == "models":
            pairs, a, b = stats.model_agreement(summary), "model_a", "model_b"
        else:
            raise ConfigError(f"agreement is between 'metrics' or 'models', got {between!r}")
        if pairs.empty:
            raise ConfigError(f"no two {between} rank the same explainers here")
        fig = stat_figures.heatmap(stats.matrix(pairs, a, b),
                                   title=f"agreement of explainer rankings between {between} "
                                   "(Kendall's tau, mean)")
        return pairs, stat_figures.render(fig, ("png",))["png"]

    def stability(self, model: str, metric: str, extra: Sequence[str] = ()
                  ) -> tuple[Any, bytes]:
        """How many images the explainer ranking of (model, metric) needs: the curve."""
        from dina_datasets.analysis import stats
        from dina_datasets.viz import charts as stat_figures

        self._known("model", model)
        self._known("metric", metric)
        frame = stats.stability(self.table([*extra, f"model={model}", f"metric={metric}"]))
        if frame.empty:
            raise ConfigError(f"{model} has fewer than two explainers with {metric} scores on "
                              "the same images: no ranking to test")
        fig = stat_figures.stability_curves(frame, metric=metric)
        return frame, stat_figures.render(fig, ("png",))["png"]

    # ---- helpers ------------------------------------------------------------------------
    def save(self, png: bytes) -> str:
        """The PNG in the cache folder, named by its content; returns the path."""
        path = os.path.join(self.cache_dir, hashlib.sha1(png).hexdigest() + ".png")
        if not os.path.exists(path):
            with open(path + ".part", "wb") as handle:
                handle.write(png)
            os.replace(path + ".part", path)
        return path

    def _known(self, column: str, value: str) -> None:
        valid = self.choices(column)
        if value not in valid:
            raise ConfigError(f"unknown {column} {value!r} in this data; valid: "
                              f"{', '.join(valid)}")

    def _config(self, name: str) -> tuple[str, str]:
        cell = catalog.Cell.from_name((name or "").strip(), allow_missing=True)
        if (cell.model, cell.explainer) not in self.cells():
            raise ConfigError(f"config {cell.name!r} is not in this data; valid: "
                              f"{', '.join(self.choices('config'))}")
        return cell.model, cell.explainer


def _pos(name: str, names: list[str]) -> tuple[int, str]:
    return (names.index(name), "") if name in names else (len(names), name)


def _index(value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecordIndexError(f"index must be a whole number, got {value!r}") from None
    if not number.is_integer() or number < 0:
        raise RecordIndexError(f"index must be a whole number >= 0, got {value!r}")
    return int(number)


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value)) or not math.isfinite(float(value))


def _fmt(value: Any) -> str:
    if _missing(value):
        return "undefined"
    return f"{value:.3g}"


def _scatter(frame: Any, a: str, b: str, metric: str) -> bytes:
    from dina_datasets.viz import charts as stat_figures

    plt = stat_figures._pyplot()
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
    return stat_figures.render(fig, ("png",))["png"]
