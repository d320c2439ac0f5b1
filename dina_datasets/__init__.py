"""DINA (DEEL ImageNet Attributions) as a Hugging Face-style dataset, without TensorFlow.

Reading needs numpy, pyarrow, fsspec and datasets only; generation imports TensorFlow,
keras-cv-attention-models and xplique inside `dina_datasets.generation`.
"""

from __future__ import annotations

from dina_datasets import _moved
from dina_datasets._version import __version__
from dina_datasets.catalog import (
    EXPLAINERS,
    METRICS,
    MODELS,
    Cell,
    cells,
    config_names,
    register_explainer,
    register_model,
)
from dina_datasets.errors import (
    AlignmentError,
    ConfigError,
    DinaError,
    FormatError,
    LayoutError,
    NetworkError,
    RecordError,
    RecordIndexError,
    TransferError,
)
from dina_datasets.layout import DEFAULT_DATA_URL, Layout
from dina_datasets.recordio.records import (
    RecordWriter,
    inspect,
    read_explanation,
    read_explanations,
    read_explanations_at,
    read_record,
    read_records,
    read_records_at,
    write_explanations,
    write_records,
)

_moved.install()

__all__ = [
    "DEFAULT_DATA_URL",
    "EXPLAINERS",
    "METRICS",
    "MODELS",
    "AlignmentError",
    "Cell",
    "ConfigError",
    "DinaConfig",
    "DinaError",
    "FormatError",
    "Layout",
    "LayoutError",
    "NetworkError",
    "RandomAccessDataset",
    "RecordError",
    "RecordIndexError",
    "RecordWriter",
    "TransferError",
    "__version__",
    "cells",
    "config_names",
    "inspect",
    "load_dataset",
    "read_explanation",
    "read_explanations",
    "read_explanations_at",
    "read_record",
    "read_records",
    "read_records_at",
    "register_explainer",
    "register_model",
    "write_explanations",
    "write_records",
]


def __getattr__(name: str):
    if name == "load_dataset":
        from dina_datasets.hf.loading import load_dataset

        return load_dataset
    if name == "RandomAccessDataset":
        from dina_datasets.hf.random_access import RandomAccessDataset

        return RandomAccessDataset
    if name in ("DinaConfig", "DinaBuilder"):
        from dina_datasets.hf import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'dina_datasets' has no attribute {name!r}")
