"""The explorer's web app (Gradio Blocks): leaderboard, sample, compare, agreement and
stability and reliability views, each also a named API endpoint (`/leaderboard`, `/sample`,
`/compare`, `/agreement`, `/stability`, `/reliability`) that `gradio_client` can call.

Bad input never shows a traceback: the handlers turn every error into `gr.Error` naming the
problem (a message in the page, an error from the API).
"""

from __future__ import annotations

import functools
import logging
import re
import traceback
from collections.abc import Callable
from typing import Any

import gradio as gr

from dina_datasets.errors import DinaError
from dina_datasets.explore.controls import PREDICTIONS, filters
from dina_datasets.explore.data import Explorer
from dina_datasets.layout import ACTIVATIONS, DEFAULT_ACTIVATION

log = logging.getLogger("dina.explore")
HELP = ("Filters apply to every view: `correct` / `wrong` predictions and classes need "
        "labels (records with keys, or `--imagenet-json`).")


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The handler with every error turned into a `gr.Error` that names the problem."""

    @functools.wraps(fn)
    def handler(*args: Any) -> Any:
        try:
            return fn(*args)
        except gr.Error:
            raise
        except DinaError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception as err:  # a bug of ours: logged here, named there, never a traceback
            log.error("explore: %s", traceback.format_exc())
            raise gr.Error(f"unexpected {type(err).__name__}: {err}",
                           print_exception=False) from None

    return handler


# a map's caption (its config and every per-sample score) wraps instead of being cut
CSS = ".caption-label { white-space: normal !important; max-width: 100% !important; }"


def build(explorer: Explorer) -> gr.Blocks:
    """The Blocks app over an opened `Explorer`."""
    problem = explorer.problem
    models = [] if problem else explorer.choices("model")
    metrics = [] if problem else explorer.choices("metric")
    configs = [] if problem else explorer.choices("config")
    names = [] if problem else models + explorer.choices("explainer")
    # the page opens on the (model, metric) that tells its explainers apart most clearly
    first, first_metric = explorer.start or (models[0] if models else None,
                                             metrics[0] if metrics else None)
    pair = [c for c in configs if c.split("-", 1)[0] == first] or configs

    def with_filters(prediction, classes, image_ids, activation):
        return filters(prediction, classes, image_ids, activation)

    # Every argument has a default (the API makes it optional: gradio gives the control's
    # initial value, or None where the control starts empty); None means "not set".
    @guarded
    def leaderboard(model: str | None = None, metric: str | None = None,
                    prediction: str | None = None, classes: str | None = None,
                    image_ids: str | None = None, activation: str | None = None):
        """The ranked explainers of a model under a metric ("all": every metric)."""
        frame = explorer.leaderboard(model, metric,
                                     with_filters(prediction, classes, image_ids, activation))
        return shown(frame)

    @guarded
    def sample(name: str | None = None, index: float | None = 0, image_id: str | None = None,
               activation: str | None = None):
        """An image under every explainer of a model (or every model of an explainer)."""
        s = explorer.sample(name, index, activation or DEFAULT_ACTIVATION, image_id or "")
        image = None
        if s.image is not None:
            image = explorer.save(_png(s.image))
        keys = (f"**{s.title}**, record **{s.index}**, image id `{s.image_id or 'unknown'}`, "
                f"label **{_key(s.label)}**, prediction **{_key(s.prediction)}**"
                + (" (correct)" if s.label >= 0 and s.label == s.prediction else
                   " (wrong)" if s.label >= 0 and s.prediction >= 0 else ""))
        if s.notes:
            keys += "\n\n" + "\n".join(f"- {markdown_text(n)}" for n in s.notes)
        return image, keys, s.maps, shown(s.scores)

    @guarded
    def compare(config_a: str | None = None, config_b: str | None = None,
                metric: str | None = None, prediction: str | None = None,
                classes: str | None = None, image_ids: str | None = None,
                activation: str | None = None):
        """Two configs' scores per image, where they disagree most first."""
        frame, png = explorer.compare(config_a, config_b, metric,
                                      with_filters(prediction, classes, image_ids, activation))
        return explorer.save(png), shown(frame.head(50))

    @guarded
    def agreement(between: str | None = None, prediction: str | None = None,
                  classes: str | None = None, image_ids: str | None = None,
                  activation: str | None = None):
        """Kendall's tau between the rankings of metrics (or of models)."""
        frame, png = explorer.agreement(between,
                                        with_filters(prediction, classes, image_ids,
                                                     activation))
        return explorer.save(png), shown(frame)

    @guarded
    def stability(model: str | None = None, metric: str | None = None,
                  prediction: str | None = None, classes: str | None = None,
                  image_ids: str | None = None, activation: str | None = None):
        """How many images the ranking of a model's explainers under a metric needs."""
        frame, png = explorer.stability(model, metric,
                                        with_filters(prediction, classes, image_ids,
                                                     activation))
        return explorer.save(png), shown(frame)

    @guarded
    def reliability(prediction: str | None = None, classes: str | None = None,
                    image_ids: str | None = None, activation: str | None = None):
        """Can I trust the metric? The reliability card of every model and metric."""
        frame, png = explorer.reliability(with_filters(prediction, classes, image_ids,
                                                       activation))
        return explorer.save(png), shown(frame)

    with gr.Blocks(title="DINA explorer") as demo:
        gr.Markdown(f"# DINA explorer\nData: `{explorer.data_url}` · scores: "
                    f"`{explorer.scores_path}`" + ("" if explorer.images else
                                                   " · no `--images`: maps drawn alone"))
        if problem:
            gr.Markdown(f"**Problem:** {markdown_text(problem)}", elem_id="problem")
        with gr.Row():
            prediction = gr.Radio(list(PREDICTIONS), value="all", label="predictions")
            classes = gr.Textbox(label="classes (true labels, e.g. 281,285)")
            image_ids = gr.Textbox(label="image ids (comma-separated)")
            activation = _choice(list(ACTIVATIONS), value=DEFAULT_ACTIVATION,
                                     label="activation")
        shared = [prediction, classes, image_ids, activation]
        gr.Markdown(HELP)
        with gr.Tabs() as tabs:
            with gr.Tab("Leaderboard", id="leaderboard"):
                with gr.Row():
                    lb_model = _choice(models, value=first, label="model", elem_id="lb-model")
                    lb_metric = _choice(["all", *metrics], value=first_metric,
                                            label="metric")
                    lb_go = gr.Button("Show leaderboard", elem_id="lb-go")
                from dina_datasets.analysis.leaderboard import LEGEND

                gr.Markdown(LEGEND.format(alpha=0.01))
                lb_table = gr.Dataframe(label="leaderboard", elem_id="lb-table",
                                        interactive=False)
            with gr.Tab("Sample", id="sample"):
                with gr.Row():
                    s_name = _choice(names, value=first, elem_id="s-name",
                                         label="model (its explainers) or explainer (its "
                                         "models)")
                    s_index = gr.Number(0, precision=0, label="record index", elem_id="s-index")
                    s_image_id = gr.Textbox(label="or image id")
                    s_go = gr.Button("Show sample", elem_id="s-go")
                with gr.Row():
                    s_image = gr.Image(type="filepath", label="image", height=260,
                                       interactive=False)
                    s_keys = gr.Markdown(elem_id="s-keys", label="keys")
                s_scores = gr.Dataframe(label="scores", elem_id="s-scores",
                                        interactive=False)
                s_maps = gr.Gallery(label="maps", columns=3,
                                    height="auto", object_fit="contain", elem_id="s-maps",
                                    interactive=False)
            with gr.Tab("Compare", id="compare"):
                with gr.Row():
                    c_a = _choice(configs, value=pair[0] if pair else None,
                                      label="config A")
                    c_b = _choice(configs, value=pair[1] if len(pair) > 1 else None,
                                      label="config B")
                    c_metric = _choice(metrics, value=first_metric, label="metric")
                    c_go = gr.Button("Compare", elem_id="c-go")
                c_plot = gr.Image(type="filepath", label="scatter", height=420,
                                  interactive=False)
                gr.Markdown("Images where A and B disagree most (difference of percentile "
                            "ranks): click a row to open it in Sample.")
                c_table = gr.Dataframe(label="disagreements", elem_id="c-table",
                                       interactive=False)
            with gr.Tab("Agreement", id="agreement"):
                with gr.Row():
                    a_between = gr.Radio(["metrics", "models"], value="metrics",
                                         label="between")
                    a_go = gr.Button("Show agreement", elem_id="a-go")
                a_plot = gr.Image(type="filepath", label="heatmap", interactive=False)
                a_table = gr.Dataframe(label="pairs", interactive=False)
            with gr.Tab("Stability", id="stability"):
                with gr.Row():
                    t_model = _choice(models, value=first, label="model")
                    t_metric = _choice(metrics, value=first_metric, label="metric")
                    t_go = gr.Button("Show stability", elem_id="t-go")
                t_plot = gr.Image(type="filepath", label="curve plot", interactive=False)
                t_table = gr.Dataframe(label="curve", interactive=False)
            with gr.Tab("Reliability", id="reliability") as r_tab:
                with gr.Row():
                    r_go = gr.Button("Show reliability", elem_id="r-go")
                from dina_datasets.analysis.stats.grades import SECTION_HOW_TO_READ

                gr.Markdown(SECTION_HOW_TO_READ + "\nComputed when this tab opens (about a "
                            "minute on the whole grid), then kept per filter set. "
                            "`planted` and `retest` run a model: `dina reliability "
                            "--planted N --retest N`.")
                r_plot = gr.Image(type="filepath", label="card", interactive=False)
                r_table = gr.Dataframe(label="cards", elem_id="r-table", interactive=False)

        lb_go.click(leaderboard, [lb_model, lb_metric, *shared], lb_table,
                    api_name="leaderboard")
        s_go.click(sample, [s_name, s_index, s_image_id, activation],
                   [s_image, s_keys, s_maps, s_scores], api_name="sample")
        c_go.click(compare, [c_a, c_b, c_metric, *shared], [c_plot, c_table],
                   api_name="compare")
        a_go.click(agreement, [a_between, *shared], [a_plot, a_table], api_name="agreement")
        t_go.click(stability, [t_model, t_metric, *shared], [t_plot, t_table],
                   api_name="stability")
        r_go.click(reliability, shared, [r_plot, r_table], api_name="reliability")
        # computed when the tab opens, not with the first page
        r_tab.select(reliability, shared, [r_plot, r_table], api_name=False)

        def open_row(config_a, frame, event: gr.SelectData):
            row = frame.iloc[event.index[0]]
            return (gr.Tabs(selected="sample"), config_a.split("-", 1)[0],
                    int(row["index"]), "")

        c_table.select(open_row, [c_a, c_table], [tabs, s_name, s_index, s_image_id],
                       api_name=False).then(
            sample, [s_name, s_index, s_image_id, activation], [s_image, s_keys, s_maps, s_scores],
            api_name=False)
        if not problem:
            demo.load(leaderboard, [lb_model, lb_metric, *shared], lb_table, api_name=False)
    return demo


def markdown_text(text: str) -> str:
    """Text shown as written in Markdown: its Markdown and HTML characters backslash-escaped
    (an HTML entity such as `&#x27;` would be shown as such, not as a quote)."""
    return re.sub(r"([\\`*_{}\[\]<>#|~&])", r"\\\1", text)


def shown(frame: Any) -> Any:
    """A table as the page shows it: floats to 4 significant digits, missing ones blank;
    the values themselves stay whole (what the API returns, what a copy takes)."""
    floats = [c for c in frame.columns if frame[c].dtype.kind == "f"]
    return frame.style.format({c: _rounded for c in floats})


def _rounded(value: Any) -> str:
    return "" if value is None or value != value else f"{value:.4g}"


def _choice(choices: list[str], value: str | None = None, label: str = "",
            elem_id: str | None = None) -> gr.Dropdown:
    """A dropdown that also takes a typed value: the handler checks it and names the
    valid ones (Gradio's own check would only print a traceback on the server)."""
    return gr.Dropdown(choices=choices, value=value, label=label, allow_custom_value=True,
                       elem_id=elem_id)


def _png(image: Any) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="png")
    return buffer.getvalue()


def _key(value: int) -> str:
    return "unknown" if value is None or value < 0 else str(value)


def launch(explorer: Explorer, *, host: str = "127.0.0.1", port: int = 7860,
           block: bool = True, quiet: bool = False) -> gr.Blocks:
    """Start the app on host:port (loopback by default); returns the Blocks."""
    demo = build(explorer)
    demo.queue(default_concurrency_limit=4)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block,
                show_error=True, allowed_paths=[explorer.cache_dir], quiet=quiet,
                footer_links=["api"], css=CSS)
    return demo
