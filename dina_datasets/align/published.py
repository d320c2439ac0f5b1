"""The published side: a records file (explanations or preprocessed inputs) streamed with
ranged reads from any fsspec URL and reduced to fingerprints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets import storage
from dina_datasets.align.fingerprints import DIM, batched, fingerprints
from dina_datasets.errors import LayoutError

EXPLANATIONS = "explanations"
PREPROCESS_INPUT = "preprocess_input"


@dataclass
class Published:
    """One records file: its URL, the tensor feature matched, its record count and the
    shape of that tensor (read from the first record)."""

    url: str
    feature: str
    num_records: int
    shape: tuple[int, ...]
    storage_options: dict[str, Any] | None = None

    @classmethod
    def open(cls, url: str, feature: str = EXPLANATIONS,
             storage_options: dict[str, Any] | None = None) -> Published:
        from dina_datasets.recordio.records import inspect, read_records

        if not storage.exists(url, storage_options):
            raise LayoutError(f"no records at {url}: check --data-url (a bucket-shaped folder "
                              "or URL: Model/Explainer/explanations.tfrecord, "
                              "Model/preprocess_dataset.tfrecord)")
        info = inspect(url, storage_options)
        first = next(read_records(url, 0, 1, tensors=frozenset({feature}),
                                  storage_options=storage_options))
        if feature not in first:
            raise LayoutError(f"{url} has no {feature!r} feature (it holds "
                              f"{sorted(first)})")
        return cls(url, feature, int(info.num_records), tuple(first[feature].shape),
                   storage_options)

    @property
    def record_bytes(self) -> int:
        return int(np.prod(self.shape)) * 4

    def fingerprints(self, start: int, stop: int,
                     update: Callable[[int], Any] | None = None) -> np.ndarray:
        """(stop - start, DIM) fingerprints of records [start, stop), in order."""
        from dina_datasets.recordio.records import read_explanations, read_records

        if self.feature == EXPLANATIONS:
            arrays = read_explanations(self.url, start, stop,
                                       storage_options=self.storage_options)
        else:
            arrays = (r[self.feature] for r in read_records(
                self.url, start, stop, tensors=frozenset({self.feature}),
                storage_options=self.storage_options))
        out = np.empty((stop - start, DIM), np.float32)
        done = 0
        for chunk in batched(arrays, 128):
            out[done:done + len(chunk)] = fingerprints(chunk)
            done += len(chunk)
            if update:
                update(len(chunk))
        return out[:done]

    def fingerprints_at(self, indices: np.ndarray) -> np.ndarray:
        """Fingerprints of the records at `indices` (ranged reads)."""
        from dina_datasets.recordio.records import read_explanations_at, read_records_at

        if self.feature == EXPLANATIONS:
            arrays = read_explanations_at(self.url, indices,
                                          storage_options=self.storage_options)
        else:
            arrays = [r[self.feature] for r in read_records_at(
                self.url, indices, tensors=frozenset({self.feature}),
                storage_options=self.storage_options)]
        return fingerprints(np.stack(list(arrays)))
