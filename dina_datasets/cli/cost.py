"""`dina cost`: what generating and scoring cost per image, and cost against quality."""

from __future__ import annotations

import argparse

from dina_datasets.layout import DEFAULT_DATA_URL

FILES = ("cost.csv", "cost_quality.csv", "cost_quality.png", "cost_quality.svg")
# how each output starts: an existing file that starts otherwise is a user's, not replaced
# without --overwrite
SIGNATURES = {"cost.csv": b"model,explainer,kind,", "cost_quality.csv": b"model,explainer,metric,",
              "cost_quality.png": b"\x89PNG", "cost_quality.svg": b"<?xml"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-url", default=DEFAULT_DATA_URL, metavar="URL",
                        help="root of a bucket-shaped folder written by `dina generate` and "
                        f"`dina evaluate` (any fsspec URL; default {DEFAULT_DATA_URL})")
    parser.add_argument("--out", default="cost", metavar="DIR",
                        help=f"folder (or URL) for {', '.join(FILES)} (default ./cost)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files of --out that are not previous cost outputs")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG and SVG")


def run(args: argparse.Namespace) -> int:
    from dina_datasets import storage
    from dina_datasets.analysis import cost
    from dina_datasets.cli import check_outputs, write_outputs
    from dina_datasets.errors import LayoutError

    names = [n for n in FILES if not (args.no_plot and n.endswith(("png", "svg")))]
    check_outputs({storage.join(args.out, n): SIGNATURES[n] for n in names},  # before the work
                  overwrite=args.overwrite, storage_options=args.storage_options,
                  folder=args.out)
    rows = cost.collect(args.data_url, args.storage_options)
    if not rows:
        raise LayoutError(f"no cost records under {args.data_url}: they are written by "
                          "`dina generate` (in the manifest beside the maps) and `dina "
                          "evaluate` ({Metric}_cost.{activation}.json beside the scores)")
    print(cost.text(rows))
    points = cost.cost_quality(rows, args.data_url, args.storage_options)
    outputs = {"cost.csv": cost.csv_text(rows).encode(),
               "cost_quality.csv": cost.points_csv(points).encode()}
    if points and not args.no_plot:
        outputs["cost_quality.png"] = cost.draw(points, "png")
        outputs["cost_quality.svg"] = cost.draw(points, "svg")
    elif not points:
        print("no cell has both generation cost records and score files: no cost-vs-quality "
              "picture")
    write_outputs(args.out, outputs, args.storage_options)
    return 0
