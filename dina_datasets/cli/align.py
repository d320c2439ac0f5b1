"""`dina align`: recover which image each published record explains (kecam json out)."""

from __future__ import annotations

import argparse
import sys

from dina_datasets.cli import engine
from dina_datasets.layout import DEFAULT_DATA_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG",
                        help="the config whose records to align, e.g. DinoV2-Rise (all "
                        "explainers of a model share one order)")
    parser.add_argument("--images", required=True, metavar="SRC",
                        help="the local images: a folder, class folders (ImageNet val) or a "
                        "kecam json")
    parser.add_argument("--data-url", default=DEFAULT_DATA_URL,
                        help="bucket-shaped folder or URL (default: %(default)s)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="aligned.json to write (kecam format, record order); the report "
                        "and the CSV go beside it")
    parser.add_argument("--weights", default="pretrained", metavar="pretrained|none|FILE",
                        help="the model's weights, as for `dina generate` (default: "
                        "pretrained, needs network)")
    parser.add_argument("--explainer", metavar="E",
                        help="the cheap explainer to recompute (Saliency, GradientInput, "
                        "GradCAM, GradCAMPP; default: the config's own when cheap, else "
                        "Saliency)")
    parser.add_argument("--route", choices=("auto", "maps", "preprocess"), default="auto",
                        help="match maps (recomputed with the model) or preprocessed inputs "
                        "(no model); auto: preprocess when the model's "
                        "preprocess_dataset.tfrecord exists")
    parser.add_argument("--preprocess-url", metavar="URL",
                        help="a preprocess_dataset.tfrecord to match (the preprocess route)")
    parser.add_argument("--verify", nargs="+", default=[], metavar="CONFIG",
                        help="check on 200 records that these configs follow the same order")
    parser.add_argument("--shard", metavar="K/N",
                        help="compute only the K-th of N slices of the images; then run again "
                        "without --shard")
    parser.add_argument("--check-only", action="store_true",
                        help="stop after the early check on 64 images and the estimate")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (32)")
    parser.add_argument("--part-size", type=int, default=1024, metavar="N",
                        help="images per part, the unit of resumption (1024)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again, discarding an earlier alignment and its parts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    engine.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dina_datasets.align.alignment import align
    from dina_datasets.align.verification import verify

    ray_engine = engine.engine(args)
    settings = dict(weights=args.weights, explainer=args.explainer, route=args.route,
                    preprocess_url=args.preprocess_url, shard=args.shard,
                    part_size=args.part_size, batch_size=args.batch_size,
                    overwrite=args.overwrite, check_only=args.check_only,
                    progress=not args.no_progress and sys.stderr.isatty(),
                    storage_options=args.storage_options)
    if ray_engine is not None:
        from dina_datasets.ray.alignment import align as align_on_ray

        result = align_on_ray(args.config, args.images, args.data_url, args.out, ray_engine,
                              **settings)
    else:
        result = align(args.config, args.images, args.data_url, args.out, **settings)
    print(result.summary())
    if args.verify and result.complete:
        for line in verify(args.verify, args.out, args.data_url, weights=args.weights,
                           batch_size=args.batch_size, storage_options=args.storage_options):
            print(line)
    return 0
