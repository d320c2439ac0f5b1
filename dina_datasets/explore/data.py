"""What the explorer shows, without Gradio: the `Explorer` over a bucket-shaped folder or
URL and its scores table (DuckDB over Parquet, through `dina_datasets.stats`). Its views
live beside it, one module each: `samples` (maps read on demand, one ranged read per record,
concurrently, drawn by `renderers` exactly as `dina show` draws them), `comparison`,
`rankings` (agreement, stability), `reliability` (the
reliability cards, computed when asked and kept); `controls` turns the app's controls into filters.

Every method raises a `DinaError` naming the problem on bad input; the app turns it into a
message in the page.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dina_datasets import catalog
from dina_datasets.errors import ConfigError, DinaError, LayoutError
from dina_datasets.explore import comparison, opening, rankings, samples
from dina_datasets.explore.controls import position
from dina_datasets.explore.reliability import Cards
from dina_datasets.explore.renderers import Renderers
from dina_datasets.explore.samples import Sample
from dina_datasets.layout import DEFAULT_ACTIVATION, Layout
from dina_datasets.viz import figures

READERS = 16  # records fetched at once (gs:// requests overlap)


def _warm_stats() -> None:
    """Import the statistics' libraries now, not on the first view."""
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401
    import statsmodels.stats.multitest  # noqa: F401


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
        self.owns_cache = cache_dir is None  # a folder of ours: removed by close (or at exit)
        if self.owns_cache:
            atexit.register(shutil.rmtree, self.cache_dir, True)
        self.scores_path = scores
        self.built = False
        self.problem: str | None = None
        self._entries: list[Any] | None = None
        self._cells: list[tuple[str, str]] | None = None
        self._choices: dict[str, list[str]] = {}
        self.start: tuple[str, str] | None = None  # (model, metric) the app opens on
        self.cards = Cards(self)  # the reliability cards, computed when first asked
        self.readers = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="dina-read")
        self._thread = threading.local()
        self.renderers = Renderers(min(4, os.cpu_count() or 1) if render_workers is None
                                   else render_workers,
                                   orphan_folder=self.cache_dir if self.owns_cache else None)

    # ---- set-up -------------------------------------------------------------------------
    def open(self) -> Explorer:
        """Build the scores table when none was given, list the cells, choose the opening
        (model, metric) (`opening`), warm the renderers. A problem is kept in
        `self.problem` (shown by the app), not raised."""
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
            self.start = opening.opening(self.table())
            if self.images is not None:
                self.entries()
            _warm_stats()
        except DinaError as err:
            self.problem = str(err)
        self.renderers.warm()
        return self

    def close(self) -> None:
        """Stop the readers and the renderers; remove the temporary folder if it is ours."""
        self.readers.shutdown(wait=False, cancel_futures=True)
        self.renderers.close()
        if self.owns_cache:
            shutil.rmtree(self.cache_dir, ignore_errors=True)

    def check(self) -> None:
        """LayoutError naming the problem found by `open`, if any."""
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
                                 key=lambda me: (position(me[0], models),
                                                 position(me[1], explainers)))
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
            self._choices[column] = sorted(got, key=lambda v: position(v, list(table)))
        return list(self._choices[column])

    def entries(self) -> list[Any] | None:
        """The images of `images` (listed once), None without it."""
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
        self.known("model", model)
        wanted = [*extra, f"model={model}"]
        if metric and metric != "all":
            self.known("metric", metric)
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

    def sample(self, name: str, index: Any, activation: str = DEFAULT_ACTIVATION,
               image_id: str = "") -> Sample:
        """One image under every explainer of a model (or every model of an explainer):
        maps read concurrently, drawn as `dina show` draws them, captioned with scores."""
        return samples.sample(self, name, index, activation, image_id)

    def drawn(self, model: str, explainer: str, index: int) -> tuple[figures.Panel, bytes]:
        """A panel and its PNG, paired exactly as `dina show` pairs them (by the record's own
        image id; keyless records only with the kecam json that produced them). The cell is
        read as the data hold it: a contributed model's maps need no registration here."""
        panel = figures.read_panels([(model, explainer)], [index], data_url=self.data_url,
                                    images=self.images,
                                    storage_options=self.storage_options)[0][0]
        return panel, self.renderers.draw(panel)

    def compare(self, config_a: str, config_b: str, metric: str,
                extra: Sequence[str] = ()) -> tuple[Any, bytes]:
        """The paired scores of two configs under a metric, sorted by disagreement, and
        their scatter plot (PNG): `comparison.compare`."""
        return comparison.compare(self, config_a, config_b, metric, extra)

    def agreement(self, between: str, extra: Sequence[str] = ()) -> tuple[Any, bytes]:
        """Kendall's tau between metrics' or models' rankings: `rankings.agreement`."""
        return rankings.agreement(self, between, extra)

    def stability(self, model: str, metric: str, extra: Sequence[str] = ()
                  ) -> tuple[Any, bytes]:
        """How many images the ranking of (model, metric) needs: `rankings.stability`."""
        return rankings.stability(self, model, metric, extra)

    def reliability(self, extra: Sequence[str] = ()) -> tuple[Any, bytes]:
        """The reliability cards of every (model, metric) under the filters and the
        coloured card (PNG): `reliability.compute`, computed once per filter set."""
        self.check()
        return self.cards(extra)

    # ---- helpers ------------------------------------------------------------------------
    def save(self, png: bytes) -> str:
        """The PNG in the cache folder, named by its content; returns the path."""
        path = os.path.join(self.cache_dir, hashlib.sha1(png).hexdigest() + ".png")
        if not os.path.exists(path):
            with open(path + ".part", "wb") as handle:
                handle.write(png)
            os.replace(path + ".part", path)
        return path

    def known(self, column: str, value: str) -> None:
        """ConfigError naming the valid values unless `value` is one of `column`'s."""
        valid = self.choices(column)
        if value not in valid:
            raise ConfigError(f"unknown {column} {value!r} in this data; valid: "
                              f"{', '.join(valid)}")

    def config(self, name: str) -> tuple[str, str]:
        """(model, explainer) of a config of this data (any case); ConfigError naming the
        valid ones otherwise."""
        import difflib

        text = (name or "").strip()
        for model, explainer in self.cells():
            if f"{model}-{explainer}".lower() == text.lower():
                return model, explainer
        valid = self.choices("config")
        close = difflib.get_close_matches(text, valid, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ConfigError(f"config {text!r} is not in this data{hint}; valid: "
                          f"{', '.join(valid)}")
