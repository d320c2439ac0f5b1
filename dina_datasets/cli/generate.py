"""`dina generate`: compute DINA attribution maps for new images (sharded, resumable)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dina_datasets.cli import engine
from dina_datasets.errors import ConfigError
from dina_datasets.runs.parts import PART_SIZE
from dina_datasets.runs.progress import LOG_INTERVAL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model name (see `dina configs`)")
    parser.add_argument("--explainer", help="explainer name")
    engine.add_config_arguments(parser)
    parser.add_argument("--images", required=True, metavar="SRC",
                        help="a folder of class folders (ImageNet val, structured), a kecam "
                        "imagenet_data.json, or a flat folder of images")
    parser.add_argument("--out", required=True, metavar="URL",
                        help="root of the bucket layout to write (folder or fsspec URL)")
    parser.add_argument("--weights", default="pretrained", metavar="pretrained|none|FILE",
                        help="pretrained (downloads, needs network), none (random, offline) "
                        "or a Keras weights file (default: pretrained)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (32)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N images")
    parser.add_argument("--shard", metavar="K/N",
                        help="write only the K-th of N slices (1 <= K <= N); then `dina merge`")
    parser.add_argument("--part-size", type=int, default=PART_SIZE, metavar="N",
                        help=f"images per part file, the unit of resumption ({PART_SIZE})")
    parser.add_argument("--write-preprocess", action="store_true",
                        help="also write the model's preprocess_dataset.tfrecord")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override an explainer hyperparameter (VALUE as JSON); the maps "
                        "are then not DINA's settings")
    parser.add_argument("--seed", type=int, default=0, help="random seed of every part (0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again, discarding an earlier run's parts")
    parser.add_argument("--keep-parts", action="store_true",
                        help="keep the part files after merging")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--progress-interval", type=float, default=LOG_INTERVAL,
                        metavar="SECONDS", help="when stderr is not a terminal (a log), a "
                        f"progress line every SECONDS ({LOG_INTERVAL:g})")
    engine.add_arguments(parser)


def parse_params(items: list[str]) -> dict[str, Any]:
    """`NAME=VALUE` strings as a dict; VALUE is JSON when it parses, else a string."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--param must look like NAME=VALUE (e.g. nb_samples=100), got "
                              f"{item!r}")
        try:
            params[name.strip()] = json.loads(value)
        except ValueError:
            params[name.strip()] = value
    return params


def run(args: argparse.Namespace) -> int:
    from dina_datasets.generation.pipeline import generate

    cells = engine.cells(args, allow_missing=True)
    ray_engine = engine.engine(args)
    settings = dict(weights=args.weights, batch_size=args.batch_size, limit=args.limit,
                    shard=args.shard, part_size=args.part_size,
                    write_preprocess=args.write_preprocess, params=parse_params(args.param),
                    seed=args.seed, overwrite=args.overwrite, keep_parts=args.keep_parts,
                    storage_options=args.storage_options)
    if ray_engine is not None:
        from dina_datasets.ray import engine as ray_engines

        results, interrupted = ray_engines.generate(cells, args.images, args.out,
                                                    ray_engine, **settings), False
    else:
        from dina_datasets.runs.progress import each, mode

        progress = mode(not args.no_progress, args.progress_interval)
        results, interrupted = each(
            cells, lambda cell: generate(cell.model, cell.explainer, args.images, args.out,
                                         progress=progress, **settings),
            "dina generate", f"the parts written so far are kept (each {args.part_size} "
            "images, beside the maps as *.parts/)")
    for result in results:
        print(result.summary())
    return 130 if interrupted else 0
