"""DINA (DEEL ImageNet Attributions): loading script for `datasets` < 4.

Newer `datasets` (>= 4) no longer run loading scripts: they load this repository's Parquet
files through the `configs:` block of README.md, or use `dina_datasets.load_dataset("dina",
...)` in process. This script holds no logic of its own: it is the builder of the
`dina-datasets` package (`pip install dina-datasets`), which reads the original bucket
(`gs://xai-deel`, or any bucket-shaped folder given as `data_url=`):

    load_dataset("ORG/dina", "DinoV2-Rise", trust_remote_code=True)
"""

from dina_datasets.hf.builder import DinaBuilder, DinaConfig

__all__ = ["Dina", "DinaConfig"]


class Dina(DinaBuilder):
    """The `dina_datasets.hf.builder.DinaBuilder`, under the script's name."""
