"""Compute the explanations of one model and explainer (DINA's original entry point), through
`dina generate`.

    python scripts/compute_explanations.py --model_name DinoV2 \
        --explainer_name IntegratedGradients --batch_size 32 \
        --imagenet_json imagenet_data.json --output_dir bench_dir

Writes {output_dir}/{model}/{explainer}/explanations.tfrecord (and, with
--write_preprocess, {output_dir}/{model}/preprocess_dataset.tfrecord). --images may replace
--imagenet_json with a folder of images.
"""

from __future__ import annotations

import argparse
import sys

from dina_datasets.errors import DinaError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name", required=True, help="e.g. DinoV2")
    parser.add_argument("--explainer_name", required=True, help="e.g. IntegratedGradients")
    parser.add_argument("--batch_size", type=int, default=64, help="batch size (64)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--imagenet_json", help="kecam's imagenet_data.json")
    source.add_argument("--images", help="a folder of images or of class folders")
    parser.add_argument("--output_dir", required=True, help="root of the bucket layout")
    parser.add_argument("--weights", default="pretrained", help="pretrained, none or a FILE")
    parser.add_argument("--write_preprocess", action="store_true",
                        help="also write preprocess_dataset.tfrecord (~30 GB per model)")
    parser.add_argument("--limit", type=int, help="only the first N images")
    parser.add_argument("--shard", help="K/N: only the K-th of N slices")
    args = parser.parse_args(argv)
    from dina_datasets.generation.pipeline import generate

    try:
        result = generate(args.model_name, args.explainer_name,
                          args.imagenet_json or args.images, args.output_dir,
                          weights=args.weights, batch_size=args.batch_size, limit=args.limit,
                          shard=args.shard, write_preprocess=args.write_preprocess)
    except DinaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
