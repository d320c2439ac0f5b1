"""Write kecam's `imagenet_data.json` for ImageNet, deterministically (sorted).

    python scripts/make_imagenet_json.py --train_images .../CLS-LOC/train \
        --test_images .../CLS-LOC/val -s imagenet_data

The original used kecam's `custom_dataset_script.py`, which shuffles the file list without a
seed: its record order cannot be reproduced. This one sorts images by file name, so the
`test` list is ILSVRC2012_val_00000001, ...: the order `dina generate` uses.
"""

from __future__ import annotations

import argparse
import sys

from dina_datasets.errors import DinaError
from dina_datasets.generation.imagenet import make_imagenet_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_images", help="training folder of class folders (gives the "
                        "classes; optional: the test folders' classes otherwise)")
    parser.add_argument("--test_images", required=True,
                        help="validation folder of class folders (structured)")
    parser.add_argument("-s", "--save_name", default="imagenet_data",
                        help="output json (default: imagenet_data.json)")
    args = parser.parse_args(argv)
    try:
        doc = make_imagenet_json(args.test_images, args.save_name, args.train_images)
    except DinaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"train: {len(doc['train'])} images, test: {len(doc['test'])} images, "
          f"{doc['info']['num_classes']} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
