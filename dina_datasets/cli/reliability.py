"""`dina reliability`: can I trust the metric? Per (model, activation, metric), the
split-half reliability of the explainer ranking, Krippendorff's alpha across images, the
validity against RandomExp (and Sobel, Laplace), the share of undefined scores and a grade
(`dina_datasets.analysis.stats.grades`), as CSV, Markdown, a coloured PNG card, or JSON.
`--planted N` adds the planted model's check, `--retest N` a re-run of the stochastic
metrics with another seed (both run the model: TensorFlow, the `generate` extra)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from dina_datasets.cli import options
from dina_datasets.layout import DEFAULT_DATA_URL

FILES = ("reliability.csv", "reliability_validity.csv", "reliability.md", "reliability.png")
SIGNATURES = {"reliability.csv": b"model,activation,metric,",
              "reliability_validity.csv": b"model,metric,explainer,control,",
              "reliability.md": b"## Metric reliability", "reliability.png": b"\x89PNG\r\n\x1a\n"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dina_datasets.analysis.filters import FILTER_HELP
    from dina_datasets.analysis.stats.consistency import N_SPLITS

    parser.add_argument("--data-url", default=DEFAULT_DATA_URL, metavar="URL",
                        help="root of a bucket-shaped folder of score files (any fsspec URL; "
                        f"default {DEFAULT_DATA_URL})")
    parser.add_argument("--scores", metavar="FILE",
                        help="a scores table made by `dina scores` (instead of --data-url)")
    parser.add_argument("--configs", nargs="+", metavar="CONFIG",
                        help="configs (or patterns such as 'DinoV2-*') to include")
    parser.add_argument("--filter", action="append", default=[], metavar="FILTER",
                        dest="filters", help=f"keep only some scores (repeatable, AND): "
                        f"{FILTER_HELP}")
    parser.add_argument("--activation", metavar="NAME",
                        help="one output activation (default: a card for each one found; "
                        "never pooled)")
    parser.add_argument("--splits", type=int, default=N_SPLITS, metavar="N",
                        help=f"random half splits (and as many bootstrap splits for the "
                        f"interval; default {N_SPLITS})")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the splits")
    parser.add_argument("--planted", type=int, metavar="N", default=0,
                        help="run the planted-model check on N images (needs TensorFlow); "
                        "default: only when the table holds Planted configs (64 images)")
    parser.add_argument("--retest", type=int, metavar="N", default=0,
                        help="re-score the first N maps of each cell with another seed for "
                        "the stochastic metrics and report the test-retest ICC (runs the "
                        "model: needs --data-url with the maps and inputs, and TensorFlow)")
    parser.add_argument("--retest-seed", type=int, default=1042, metavar="S",
                        help="seed of the re-run (default 1042; the scores' own seed is "
                        "`dina evaluate`'s, 42 by default: use another)")
    parser.add_argument("--images", metavar="SRC",
                        help="with --retest: the images of the maps (a folder or kecam's "
                        "imagenet_data.json), when the bucket holds no preprocess file")
    parser.add_argument("--preprocess-url", metavar="URL",
                        help="with --retest: the model's preprocessed inputs (default "
                        "{Model}/preprocess_dataset.tfrecord under --data-url)")
    parser.add_argument("--weights", default="pretrained",
                        help="model weights of the re-run: pretrained, none or a file")
    options.add_map_check(parser)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document (cards, validity) and write nothing")
    parser.add_argument("--out", default="reliability", metavar="DIR",
                        help=f"folder (or URL) for {', '.join(FILES)} (default ./reliability)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files of --out that are not previous outputs of this "
                        "command")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument("--no-progress", action="store_true", help="no progress output")


def _retest(args: argparse.Namespace, table: str):
    if not args.retest:
        return None
    from dina_datasets.metrics.retest import retest

    return retest(args.data_url, table, images=args.retest, seed=args.retest_seed,
                  weights=args.weights, filters=args.filters, activation=args.activation,
                  images_source=args.images, preprocess_url=args.preprocess_url,
                  storage_options=args.storage_options)


def _work(args: argparse.Namespace, table: str):
    from dina_datasets.analysis import stats
    from dina_datasets.demo.validity import planted_if_present

    maps_url = options.maps_url(args)
    maps = stats.table_maps(stats.open_scores(table, args.filters, None, args.storage_options),
                            maps_url, args.map_sample, args.storage_options)
    return stats.reliability(table, filters=args.filters, activation=args.activation,
                             n_splits=args.splits, seed=args.seed, maps=maps,
                             planted=planted_if_present(table, args.filters, args.planted,
                                                        args.storage_options),
                             retest=_retest(args, table),
                             storage_options=args.storage_options)


def run(args: argparse.Namespace) -> int:
    from dina_datasets import storage
    from dina_datasets.analysis import scores
    from dina_datasets.analysis.stats import grades
    from dina_datasets.cli import check_outputs, write_outputs
    from dina_datasets.errors import ConfigError, check_positive_int

    check_positive_int("--splits", args.splits)
    options.check_map_sample(args)
    for name in ("planted", "retest"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name} takes a number of images >= 0, got "
                              f"{getattr(args, name)}")
    if args.configs and args.scores:  # it chooses score files: it would be ignored
        raise ConfigError("--configs chooses the score files under --data-url; the table of "
                          f"--scores is already built: keep only some of it with --filter "
                          f"model=M / explainer=E (got --configs {' '.join(args.configs)})")
    if args.retest and args.scores:
        raise ConfigError("--retest re-runs the metrics on the maps: give --data-url (the "
                          "folder of the maps, inputs and score files), not --scores")
    if not args.json:  # before the work and any printing
        names = [n for n in FILES if not (args.no_plot and n.endswith(".png"))]
        check_outputs({storage.join(args.out, n): SIGNATURES[n] for n in names},
                      overwrite=args.overwrite, storage_options=args.storage_options,
                      folder=args.out)
    if args.scores:
        result = _work(args, args.scores)
    else:
        with tempfile.TemporaryDirectory(prefix="dina-scores-") as folder:
            path = os.path.join(folder, "scores.parquet")
            scores.build(args.data_url, path, configs=args.configs,
                         storage_options=args.storage_options,
                         progress=not args.no_progress and sys.stderr.isatty())
            result = _work(args, path)
    if args.json:
        print(json.dumps({"cards": grades.records(result),
                          "validity": json.loads(result.validity.to_json(orient="records"))},
                         indent=1))
        return 0
    shown = result.cards[["model", "activation", "metric", "n", "split_half", "alpha",
                          "separates_random", "grade"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    outputs = {"reliability.csv": result.cards.to_csv(index=False).encode(),
               "reliability_validity.csv": result.validity.to_csv(index=False).encode()}
    picture = None
    if not args.no_plot:
        from dina_datasets.viz import card, charts

        picture = "reliability.png"
        outputs[picture] = charts.render(card.reliability_card(result.cards), ("png",))["png"]
    outputs["reliability.md"] = grades.markdown_section(result, picture).encode()
    write_outputs(args.out, outputs, args.storage_options)
    return 0
