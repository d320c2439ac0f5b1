"""`dina leaderboard`: mean and 95 % interval of every score file, as a table, CSV, Markdown
and a PNG heat map."""

from __future__ import annotations

import argparse
import sys

from dina_datasets.layout import DEFAULT_DATA_URL

FILES = ("leaderboard.csv", "leaderboard.md", "leaderboard.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-url", default=DEFAULT_DATA_URL, metavar="URL",
                        help="root of a bucket-shaped folder holding {Model}/{Explainer}/"
                        "{Metric}_scores.json files (any fsspec URL; default "
                        f"{DEFAULT_DATA_URL})")
    parser.add_argument("--out", default="leaderboard", metavar="DIR",
                        help=f"folder (or URL) for {', '.join(FILES)} (default ./leaderboard)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from dina_datasets import leaderboard
    from dina_datasets.recordio import storage

    board = leaderboard.collect(args.data_url, storage_options=args.storage_options,
                                progress=not args.no_progress and sys.stderr.isatty())
    print(board.text())
    outputs = {"leaderboard.csv": board.csv().encode(),
               "leaderboard.md": board.markdown().encode()}
    if not args.no_plot:
        outputs["leaderboard.png"] = board.png()
    for name, data in outputs.items():
        url = storage.join(args.out, name)
        with storage.atomic_write(url, "wb", args.storage_options) as handle:
            handle.write(data)
        print(f"wrote {url}")
    return 0
