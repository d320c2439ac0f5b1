"""`dina scores`: every per-image score under a bucket-shaped folder in one long-format
Parquet table (model, explainer, metric, activation, index, image_id, label, prediction,
score), for DuckDB, pandas and `dina report`."""

from __future__ import annotations

import argparse
import sys

from dina_datasets.layout import DEFAULT_DATA_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-url", default=DEFAULT_DATA_URL, metavar="URL",
                        help="root of a bucket-shaped folder holding {Model}/{Explainer}/"
                        "{Metric}_scores.json (and {Metric}_scores.{activation}.json) files "
                        f"(any fsspec URL; default {DEFAULT_DATA_URL})")
    parser.add_argument("--configs", nargs="+", metavar="CONFIG",
                        help="configs (or patterns such as 'DinoV2-*') to include")
    parser.add_argument("--metrics", nargs="+", metavar="METRIC", help="metrics to include")
    parser.add_argument("--activations", nargs="+", metavar="ACTIVATION",
                        help="output activations to include (default: every one found)")
    parser.add_argument("--imagenet-json", metavar="FILE",
                        help="kecam's imagenet_data.json of the cells: fills image_id and label")
    parser.add_argument("--concurrency", type=int, default=16, metavar="N",
                        help="score files read at once (default 16)")
    parser.add_argument("--out", default="scores.parquet", metavar="FILE",
                        help="the Parquet file to write (any fsspec URL; default "
                        "./scores.parquet)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out even when it is not a Parquet file (a previous "
                        "table is replaced without it)")
    parser.add_argument("--strict", action="store_true",
                        help="fail on unknown files named like score files (e.g. "
                        "Insertion_scores.backup.json) instead of skipping them with a warning")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from dina_datasets.analysis import scores
    from dina_datasets.cli import PARQUET, check_outputs
    from dina_datasets.errors import check_positive_int

    check_positive_int("--concurrency", args.concurrency)
    check_outputs({args.out: PARQUET}, overwrite=args.overwrite,
                  storage_options=args.storage_options)
    built = scores.build(args.data_url, args.out, configs=args.configs, metrics=args.metrics,
                         activations=args.activations, imagenet_json=args.imagenet_json,
                         storage_options=args.storage_options, concurrency=args.concurrency,
                         progress=not args.no_progress and sys.stderr.isatty(),
                         strict=args.strict)
    print(built.summary())
    return 0
