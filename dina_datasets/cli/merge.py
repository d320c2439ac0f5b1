"""`dina merge`: join the parts written by `dina generate --shard` into explanations.tfrecord."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name")
    parser.add_argument("--explainer", required=True, help="explainer name")
    parser.add_argument("--out", required=True, metavar="URL",
                        help="root of the bucket layout the shards wrote")
    parser.add_argument("--keep-parts", action="store_true",
                        help="keep the part files after merging")


def run(args: argparse.Namespace) -> int:
    from dina_datasets import catalog
    from dina_datasets.generation.merge import merge

    cell = catalog.Cell(args.model, args.explainer, allow_missing=True)
    result = merge(args.out, cell.model, cell.explainer, keep_parts=args.keep_parts,
                   storage_options=args.storage_options)
    if result.already_merged:
        print(f"{result.url} is already merged ({result.num_records} records)")
        return 0
    print(f"wrote {result.url}: {result.num_records} records from {result.num_parts} parts")
    if result.preprocess_url:
        print(f"wrote {result.preprocess_url}")
    return 0
