"""Compute DINA's complexity metrics of a config: `dina evaluate` with those metrics by default.

    python scripts/compute_complexity.py --model ResNet50 --explainer Saliency \
        --data-url gs://xai-deel --out scores/ --preprocess-url preprocess_dataset.tfrecord
"""

import sys

from dina_datasets.cli.evaluate import script

if __name__ == "__main__":
    sys.exit(script("complexity"))
