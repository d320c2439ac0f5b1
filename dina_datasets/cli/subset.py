"""`dina subset`: the same records of several configs as a small DINA (records or Parquet)."""

from __future__ import annotations

import argparse
import re

from dina_datasets.layout import DEFAULT_DATA_URL

# What argparse takes for a value, not an option, though it starts with "-": negative numbers
# (its own rule) and negative ranges ("-10:", "-5:-1", "-1::-1"), so that `--indices -10:`
# works as written in the docs.
NEGATIVE_VALUE = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d*:[-\d:,]*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser._negative_number_matcher = NEGATIVE_VALUE  # argparse's own hook for this
    parser.add_argument("--configs", nargs="+", required=True, metavar="CONFIG",
                        help="config names (e.g. DinoV2-Rise), patterns (DinoV2-*) or 'all', "
                             "matched against the configs present under --data-url")
    parser.add_argument("--indices", nargs="+", required=True, metavar="SPEC",
                        help="record indices: START:STOP[:STEP] ranges (Python slice rules: "
                             "past the end clamps) or integers, e.g. 0:1000 (the first 1,000 "
                             "images) or 0:50000:50 or 3,17,42 or -10: (the last 10)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the folder to write (any fsspec URL)")
    parser.add_argument("--data-url", default=DEFAULT_DATA_URL, metavar="URL",
                        help=f"bucket-shaped folder to read (default {DEFAULT_DATA_URL})")
    parser.add_argument("--format", dest="output", choices=("records", "parquet"),
                        default="records",
                        help="records: the bucket layout (explanations.tfrecord with its "
                             "index, sliced score files; default); parquet: the Hub export")
    parser.add_argument("--encoding", choices=("array", "binary"), default="array",
                        help="explanation column of --format parquet (see `dina export`)")
    parser.add_argument("--imagenet-json", metavar="FILE",
                        help="kecam's imagenet_data.json of the full data: fills image_id, "
                             "label")
    parser.add_argument("--preprocess-url", metavar="URL",
                        help="preprocess_dataset.tfrecord, or a bucket holding them: fills "
                             "prediction")
    parser.add_argument("--jobs", type=int, default=2, metavar="N",
                        help="configs written at a time (default 2)")
    parser.add_argument("--no-crc", action="store_true", help="skip the records' CRC checks")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over: replace files of --out that are not this subset's "
                             "(another subset, a user's files at the paths written)")


def run(args: argparse.Namespace) -> int:
    from dina_datasets.errors import check_positive_int
    from dina_datasets.hf.subset import parse_indices, subset

    indices = parse_indices(args.indices)
    if args.output == "parquet":
        from dina_datasets.cli.export import check_out

        check_out(args.out, overwrite=args.overwrite, storage_options=args.storage_options)
    else:
        from dina_datasets.cli import check_outputs

        check_outputs({}, overwrite=args.overwrite, storage_options=args.storage_options,
                      folder=args.out)

    def done(result) -> None:
        state = "already complete, skipped" if result.skipped else "written"
        print(f"{result.name}: {result.rows:,} rows ({state})", flush=True)

    found = subset(args.configs, args.out, indices, data_url=args.data_url,
                   output=args.output, storage_options=args.storage_options,
                   imagenet_json=args.imagenet_json, preprocess_url=args.preprocess_url,
                   encoding=args.encoding, check_crc=not args.no_crc,
                   jobs=check_positive_int("--jobs", args.jobs), done=done,
                   overwrite=args.overwrite)
    rows = found[0].rows if found else 0
    print(f"{args.out}: {len(found)} configs x {rows:,} rows ({args.output})")
    return 0
