"""The rows of a DINA config: one `datasets.Features` schema, the same columns for every config.

- `index` (int64): position of the record in `explanations.tfrecord` (a record's own
  `index` feature wins).
- `model`, `explainer` (string): e.g. `"DinoV2"`, `"Rise"`.
- `explanation` (Array3D((224, 224, C), float32)): the attribution map; C = 3 for the six
  gradient explainers run with `reducer=None`, else 1.
- `image_id` (string, `""` when unknown): the ImageNet image id (file name without
  extension, e.g. `ILSVRC2012_val_00000293`), from the record's own `image_id` feature or
  from `imagenet_json`.
- `label` (int64, -1 when unknown): the true ImageNet class, from the record's own `label`
  or from `imagenet_json`.
- `prediction` (int64, -1 when unknown): the model's class (argmax of
  `one_hot_prediction`), from the record's own `prediction` or from `preprocess_url`.
- one float64 column per metric of the catalog (`Insertion`, ...,
  `ModelRandomizationMetric05`), null when unknown: the per-image score from
  `{Metric}_scores.json` beside the explanations; null where the file is missing or
  shorter (the randomization metrics cover the first 1,024 images).
- one float64 column `{Metric}_{activation}` per metric that depends on the model's output
  activation (all but Sparseness and Complexity) and per activation other than the
  published softmax (`sigmoid`, `logits`), e.g. `Insertion_logits`: the score from
  `{Metric}_scores.{activation}.json`, null where that file is missing or shorter.

Every config has every score column, so all configs share one schema except for the
channel count of `explanation`; a missing score file gives an all-null column, never an
error. Unknown labels are -1 and unknown image ids `""` (not null) so that batches of every
column collate in numpy, torch and jax.

A Parquet export made with `encoding="binary"` stores `explanation` as `binary` instead: the
map's float32 bytes in C order, decoded by
`np.frombuffer(value, "<f4").reshape(224, 224, C)`.
"""

from __future__ import annotations

import datasets

from dina_datasets import catalog
from dina_datasets.layout import ACTIVATIONS, DEFAULT_ACTIVATION

UNKNOWN_IMAGE_ID = ""
ENCODINGS = ("array", "binary")


def score_columns() -> list[tuple[str, str, str]]:
    """(column, metric, activation) of every score column: the catalog's metrics with the
    published softmax head, then `{Metric}_{activation}` for the other activations."""
    columns = [(name, name, DEFAULT_ACTIVATION) for name in catalog.METRICS]
    for activation in ACTIVATIONS:
        if activation != DEFAULT_ACTIVATION:
            columns += [(f"{spec.name}_{activation}", spec.name, activation)
                        for spec in catalog.iter_metrics() if spec.depends_on_activation]
    return columns


def metric_columns() -> list[str]:
    """The score columns' names, in `score_columns` order."""
    return [column for column, _, _ in score_columns()]


def explanation_feature(cell: catalog.Cell) -> datasets.Array3D:
    """The typed map feature of a cell: Array3D((224, 224, C), float32)."""
    return datasets.Array3D(shape=cell.shape, dtype="float32")


def features(cell: catalog.Cell, encoding: str = "array") -> datasets.Features:
    """The `datasets.Features` of a config's rows (see the module docstring).

    `encoding="binary"` gives the schema of a binary-encoded Parquet export.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    columns: dict[str, datasets.features.FeatureType] = {
        "index": datasets.Value("int64"),
        "model": datasets.Value("string"),
        "explainer": datasets.Value("string"),
        "explanation": explanation_feature(cell) if encoding == "array" else
        datasets.Value("binary"),
        "image_id": datasets.Value("string"),
        "label": datasets.Value("int64"),
        "prediction": datasets.Value("int64"),
    }
    for name in metric_columns():
        columns[name] = datasets.Value("float64")
    return datasets.Features(columns)
