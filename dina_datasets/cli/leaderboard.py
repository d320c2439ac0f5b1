"""`dina leaderboard`: per model and metric, each explainer's mean, 95 % interval, n, rank
and the verdicts of the paired tests, as a table, CSV, Markdown, a PNG heat map, or JSON."""

from __future__ import annotations

import argparse
import sys

from dina_datasets.cli import options
from dina_datasets.layout import DEFAULT_DATA_URL

FILES = ("leaderboard.csv", "leaderboard_pairs.csv", "leaderboard.md", "leaderboard.png")
# the first bytes of each file as this command writes it (a file that does not start so is
# not replaced without --overwrite)
SIGNATURES = {"leaderboard.csv": b"model,explainer,metric,", "leaderboard_pairs.csv": b"model,",
              "leaderboard.md": b"| config ", "leaderboard.png": b"\x89PNG\r\n\x1a\n"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dina_datasets.analysis.filters import FILTER_HELP

    parser.add_argument("--data-url", default=DEFAULT_DATA_URL, metavar="URL",
                        help="root of a bucket-shaped folder holding {Model}/{Explainer}/"
                        "{Metric}_scores.json files (any fsspec URL; default "
                        f"{DEFAULT_DATA_URL})")
    parser.add_argument("--scores", metavar="FILE",
                        help="a scores table made by `dina scores` (instead of --data-url)")
    parser.add_argument("--configs", nargs="+", metavar="CONFIG",
                        help="configs (or patterns such as 'DinoV2-*') to include")
    parser.add_argument("--imagenet-json", metavar="FILE",
                        help="kecam's imagenet_data.json of the cells: image ids and labels "
                        "(for --filter class=...)")
    parser.add_argument("--filter", action="append", default=[], metavar="FILTER",
                        dest="filters", help=f"keep only some scores (repeatable, combined "
                        f"with AND): {FILTER_HELP}")
    parser.add_argument("--alpha", type=float, default=0.01,
                        help="significance level of the verdicts (default 0.01)")
    options.add_map_check(parser)
    options.add_verdicts(parser)
    parser.add_argument("--ci", choices=("normal", "bootstrap"), default="normal",
                        help="95 %% interval: normal approximation (default, instant) or "
                        "percentile bootstrap")
    parser.add_argument("--n-boot", type=int, default=1000, metavar="N",
                        help="bootstrap resamples with --ci bootstrap (default 1000)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document (table, pairs, flags) and write nothing")
    parser.add_argument("--out", default="leaderboard", metavar="DIR",
                        help=f"folder (or URL) for {', '.join(FILES)} (default ./leaderboard)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files of --out that are not previous leaderboard outputs")
    options.add_mixed_settings(parser)
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from dina_datasets import storage
    from dina_datasets.analysis import leaderboard
    from dina_datasets.analysis.stats.equivalence import check_margin
    from dina_datasets.cli import check_outputs, write_outputs

    check_margin(args.equivalence_margin, args.margin_units)
    options.check_map_sample(args)
    if not args.json:  # before the work and any printing
        names = [n for n in FILES if not (args.no_plot and n.endswith(".png"))]
        check_outputs({storage.join(args.out, n): SIGNATURES[n] for n in names},
                      overwrite=args.overwrite, storage_options=args.storage_options,
                      folder=args.out)
    board = leaderboard.collect(
        args.data_url, scores=args.scores, filters=args.filters, alpha=args.alpha,
        ci=args.ci, n_boot=args.n_boot, margin=args.equivalence_margin,
        margin_units=args.margin_units, maps_url=args.maps_url,
        map_sample=args.map_sample, configs=args.configs,
        imagenet_json=args.imagenet_json, storage_options=args.storage_options,
        progress=not args.no_progress and sys.stderr.isatty(),
        allow_mixed_settings=args.allow_mixed_settings or None)
    if args.json:
        print(board.json())
        return 0
    print(board.text())
    outputs = {"leaderboard.csv": board.csv().encode(),
               "leaderboard_pairs.csv": board.pairs_csv().encode(),
               "leaderboard.md": board.markdown().encode()}
    if not args.no_plot:
        outputs["leaderboard.png"] = board.png()
    write_outputs(args.out, outputs, args.storage_options)
    return 0
