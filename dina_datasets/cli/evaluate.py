"""`dina evaluate`: per-sample metric scores of a config, written as `{Metric}_scores.json`
(`{Metric}_scores.{activation}.json` with `--activation sigmoid|logits`), each with its cost
record (`{Metric}_cost.{activation}.json`) and its settings
(`{Metric}_settings.{activation}.json`, `dina_datasets.runs.settings`).

The original scripts' option names (`--model_name`, `--explainer_name`, `--metric_name`,
`--batch_size`) are accepted as aliases; `--output_dir DIR` is the original's bench folder
(scores are written there, maps read from there unless `--data-url` is given) and
`--imagenet-json FILE` (or `--imagenet_json`) is kecam's imagenet_data.json of the cell's
images, as in `dina export`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dina_datasets import catalog
from dina_datasets.cli import engine
from dina_datasets.layout import ACTIVATIONS, DEFAULT_ACTIVATION, DEFAULT_DATA_URL
from dina_datasets.metrics.base import VARIANTS
from dina_datasets.runs.parts import PART_SIZE
from dina_datasets.runs.progress import LOG_INTERVAL


def add_arguments(parser: argparse.ArgumentParser, default_metrics: Sequence[str] = ()
                  ) -> None:
    names = ", ".join(catalog.METRICS)
    parser.add_argument("--model", "--model_name", help="model name (see `dina configs`)")
    parser.add_argument("--explainer", "--explainer_name", help="explainer name")
    engine.add_config_arguments(parser, "present under --data-url")
    parser.add_argument("--metrics", "--metric_name", nargs="+", metavar="METRIC",
                        required=not default_metrics, default=list(default_metrics) or None,
                        help=f"metrics to compute: {names}"
                        + (f" (default: {' '.join(default_metrics)})" if default_metrics else ""))
    parser.add_argument("--data-url", metavar="URL",
                        help="root of the bucket layout holding the maps (folder or fsspec "
                        f"URL; default {DEFAULT_DATA_URL}, or --output_dir)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--out", metavar="URL",
                     help="root where the score files are written (default: --data-url)")
    out.add_argument("--output_dir", metavar="DIR",
                     help="the original scripts' bench folder: scores are written there, and "
                     "the maps read from there unless --data-url is given")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", metavar="SRC",
                        help="the images the maps explain (folder, class folders or kecam "
                        "json): preprocessed here, targets = the model's own prediction")
    source.add_argument("--imagenet-json", "--imagenet_json", metavar="FILE",
                        help="kecam's imagenet_data.json that produced the cell (as in `dina "
                        "export`): its images are the inputs, joined by image_id")
    source.add_argument("--preprocess-url", metavar="URL",
                        help="a preprocess_dataset.tfrecord (preprocess_input, "
                        "one_hot_prediction); default: the layout's, when it exists")
    parser.add_argument("--weights", default="pretrained", metavar="pretrained|none|FILE",
                        help="model weights for the metrics that run the model (pretrained)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N maps (a "
                        "longer existing score file is kept: see --out, --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing score files even with fewer scores or other "
                        "settings (published ones included), and discard the parts of an "
                        "earlier run made with other settings")
    parser.add_argument("--assume-order", action="store_true",
                        help="pair maps that carry no image_id (the published files) with the "
                        "images of a folder by position; without it, only the kecam json "
                        "that produced them pairs them")
    parser.add_argument("--subsample", type=int, metavar="N",
                        help="randomization metrics on the first N maps (default "
                        f"{catalog.RANDOMIZATION_SUBSET}, as published)")
    parser.add_argument("--batch-size", "--batch_size", type=int, default=32,
                        help="samples per batch; also perturbed images per forward pass (32)")
    parser.add_argument("--seed", type=int, default=42,
                        help="seed of MuFidelity's masks and the randomization metrics (42)")
    parser.add_argument("--variant", choices=VARIANTS, default="dina",
                        help="dina: the published definitions (default); xplique: xplique "
                        ">= 1.5's definitions where they differ (Insertion, Deletion, "
                        "MuFidelity, Sparseness, Complexity, ModelRandomization)")
    parser.add_argument("--metric-param", action="append", default=[], metavar="METRIC.NAME=V",
                        help="replace a metric's published parameter, e.g. Deletion.nb_steps=20"
                        " (VALUE as JSON; repeatable); the scores are then not DINA's")
    parser.add_argument("--activation", choices=ACTIVATIONS, default=DEFAULT_ACTIVATION,
                        help="the model's output head while scoring: softmax (published, "
                        "default), sigmoid or logits; written as {Metric}_scores.{activation}"
                        ".json. Sparseness and Complexity read the maps alone and are skipped")
    parser.add_argument("--part-size", type=int, default=PART_SIZE, metavar="N",
                        help=f"maps per part, the unit of resumption ({PART_SIZE})")
    parser.add_argument("--shard", metavar="K/N",
                        help="score only the K-th of N blocks of parts (1 <= K <= N); the "
                        "score files are written by the run that completes the last part")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--progress-interval", type=float, default=LOG_INTERVAL,
                        metavar="SECONDS", help="when stderr is not a terminal (a log), a "
                        f"progress line every SECONDS ({LOG_INTERVAL:g})")
    engine.add_arguments(parser)


def metric_params(items: list[str]) -> dict[str, dict]:
    """`METRIC.NAME=VALUE` strings as {metric: {name: value}}; VALUE is JSON when it parses."""
    import json

    from dina_datasets.errors import ConfigError

    params: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        metric, dot, name = key.strip().partition(".")
        if not sep or not dot or not metric or not name:
            raise ConfigError(f"--metric-param must look like METRIC.NAME=VALUE (e.g. "
                              f"Deletion.nb_steps=20), got {item!r}")
        try:
            params.setdefault(metric, {})[name] = json.loads(value)
        except ValueError:
            params.setdefault(metric, {})[name] = value
    return params


def run(args: argparse.Namespace) -> int:
    from dina_datasets.errors import ConfigError
    from dina_datasets.metrics.evaluation import evaluate

    if args.imagenet_json and not args.imagenet_json.lower().endswith(".json"):
        raise ConfigError(f"--imagenet-json takes kecam's imagenet_data.json, got "
                          f"{args.imagenet_json!r}; give a folder of images with --images")
    data_url = args.data_url or args.output_dir or DEFAULT_DATA_URL
    cells = engine.cells(args, allow_missing=True, data_url=data_url,
                         storage_options=args.storage_options)
    ray_engine = engine.engine(args)
    settings = dict(data_url=data_url, out=args.out or args.output_dir,
                    images=args.images or args.imagenet_json,
                    preprocess_url=args.preprocess_url, weights=args.weights, limit=args.limit,
                    subsample=args.subsample, batch_size=args.batch_size, seed=args.seed,
                    variant=args.variant, activation=args.activation,
                    assume_order=args.assume_order, overwrite=args.overwrite,
                    metric_params=metric_params(args.metric_param), part_size=args.part_size,
                    shard=args.shard, storage_options=args.storage_options)
    if ray_engine is not None:
        from dina_datasets.ray import engine as ray_engines

        results, interrupted = ray_engines.evaluate(cells, args.metrics, ray_engine,
                                                    **settings), False
    else:
        from dina_datasets.runs.progress import each, mode

        progress = mode(not args.no_progress, args.progress_interval)
        results, interrupted = each(
            cells, lambda cell: evaluate(cell.model, cell.explainer, args.metrics,
                                         progress=progress, **settings),
            "dina evaluate", f"the parts scored so far are kept (each {args.part_size} maps, "
            "beside the score files as *.parts/)")
    for result in results:
        print(result.summary())
    return 130 if interrupted else 0


def script(family: str, argv: Sequence[str] | None = None) -> int:
    """`scripts/compute_{family}.py`: `dina evaluate` whose metrics default to one family."""
    from dina_datasets.errors import DinaError

    defaults = [m.name for m in catalog.iter_metrics(family)]
    parser = argparse.ArgumentParser(
        prog=f"compute_{family}.py",
        description=f"{family} metrics ({', '.join(defaults)}) of a DINA config; the same as "
        f"`dina evaluate --metrics {' '.join(defaults)}`.")
    add_arguments(parser, defaults)
    args = parser.parse_args(argv)
    args.storage_options = None  # the scripts have no --storage-option
    try:
        return run(args)
    except DinaError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
