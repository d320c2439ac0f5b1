"""Move the ImageNet validation images into one folder per class (synset), as DINA expects.

    python scripts/structure_val_imagenet.py --raw_dir path/to/ILSVRC/Data/CLS-LOC

Needs `imagenet_2012_validation_synset_labels.txt` (from the tensorflow/models repository,
research/slim/datasets) in that folder, or passed with --labels. Every image is checked
before anything moves; running it again on a structured folder does nothing.
"""

from __future__ import annotations

import argparse
import sys

from dina_datasets.errors import DinaError
from dina_datasets.generation.imagenet import SYNSET_LABELS, structure_val


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw_dir", required=True,
                        help="the ILSVRC/Data/CLS-LOC folder (holding 'val')")
    parser.add_argument("--labels", help=f"the synset labels file (default: RAW_DIR/"
                        f"{SYNSET_LABELS})")
    args = parser.parse_args(argv)
    try:
        result = structure_val(args.raw_dir, args.labels)
    except DinaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("already structured" if result.already_structured else
          f"moved {result.moved} images into class folders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
