"""The data a metric reads, batch by batch: stored maps joined with the model's inputs and
targets, from a preprocess file or from the images themselves.

Records written by `dina generate` carry `index` and `image_id`: they say which image (and
which preprocess record) each map belongs to. Records without them (the published files)
are joined by position: with a preprocess file (made from the same kecam json, in the same
order) or with images only when the caller allows it (the kecam json that produced them, or
`assume_order`); the two sources must then have the same length.

(Named `inputs`, not `sources`, so as not to be taken for `hf.source`; batches are read
ahead of the scorer by the package's one read-ahead helper, `readahead.prefetch`.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dina_datasets.errors import AlignmentError
from dina_datasets.images import is_placeholder
from dina_datasets.recordio import records

PREPROCESS_FEATURES = frozenset({"preprocess_input", "one_hot_prediction"})


@dataclass
class Batch:
    """Consecutive records [start, start + len) of the explanations file, with their keys
    and, once joined, the model's inputs and one-hot targets."""

    start: int
    explanations: np.ndarray
    index: list[int] | None = None
    image_id: list[str] | None = None
    prediction: list[int] | None = None
    inputs: np.ndarray | None = None
    targets: np.ndarray | None = None
    missing: np.ndarray | None = None  # rows whose image `dina align` could not name

    def present(self, count: int) -> np.ndarray:
        """Positions among the first `count` rows that have an image to score against."""
        rows = np.arange(min(count, len(self)))
        return rows if self.missing is None else rows[~self.missing[rows]]

    def __len__(self) -> int:
        return len(self.explanations)


def _key(record: dict, name: str) -> Any:
    value = record.get(name)
    return value.decode() if isinstance(value, bytes) else value


def explanation_batches(url: str, stop: int, batch_size: int, *, start: int = 0,
                        storage_options: dict[str, Any] | None = None) -> Iterator[Batch]:
    """Maps [start, stop) of an explanations file, `batch_size` at a time, with the
    `index`, `image_id` and `prediction` keys when the records carry them."""
    pending: list[dict] = []
    stream = records.read_records(url, start, stop, tensors=frozenset({"explanations"}),
                                  storage_options=storage_options)
    for record in stream:
        if "explanations" not in record:
            raise AlignmentError(f"record {start + len(pending)} of {url} has no "
                                 "'explanations' feature")
        pending.append(record)
        if len(pending) == batch_size:
            yield _batch(start, pending)
            start, pending = start + len(pending), []
    if pending:
        yield _batch(start, pending)


def _batch(start: int, items: list[dict]) -> Batch:
    keys = {}
    for name in ("index", "image_id", "prediction"):
        values = [_key(r, name) for r in items]
        keys[name] = values if all(v is not None for v in values) else None
    return Batch(start, np.stack([r["explanations"] for r in items]), **keys)


def join_preprocess(batches: Iterable[Batch], url: str, num_explanations: int, *,
                    storage_options: dict[str, Any] | None = None) -> Iterator[Batch]:
    """Batches with inputs and targets from a preprocess file (`preprocess_input`,
    `one_hot_prediction`): record `index` when the maps carry one, else the same position."""
    size = records.inspect(url, storage_options).num_records
    for batch in batches:
        rows = batch.index if batch.index is not None else \
            list(range(batch.start, batch.start + len(batch)))
        if batch.index is None and size != num_explanations:
            raise AlignmentError(f"{url} holds {size} records but the explanations file "
                                 f"{num_explanations}; without 'index' keys in the "
                                 "explanations they are joined by position and must match")
        if max(rows) >= size or min(rows) < 0:
            raise AlignmentError(f"explanation {batch.start} points to preprocess record "
                                 f"{max(rows)}, but {url} holds {size} records")
        if rows == list(range(rows[0], rows[0] + len(rows))):
            found = list(records.read_records(url, rows[0], rows[0] + len(rows),
                                              tensors=PREPROCESS_FEATURES,
                                              storage_options=storage_options))
        else:
            found = [records.read_record(url, r, tensors=PREPROCESS_FEATURES,
                                         storage_options=storage_options) for r in rows]
        for name in PREPROCESS_FEATURES:
            if name not in found[0]:
                raise AlignmentError(f"{url} is not a preprocess file: record {rows[0]} has "
                                     f"no {name!r} feature (features: {sorted(found[0])})")
        batch.inputs = np.stack([r["preprocess_input"] for r in found]).astype(np.float32)
        batch.targets = np.stack([r["one_hot_prediction"] for r in found]).astype(np.float32)
        yield batch


def image_rows(batch: Batch, entries: Sequence[Any], ids: dict[str, int], num_explanations: int,
               positional: Callable[[], None] | None = None) -> list[int]:
    """Positions in `entries` of the images of a batch: by image_id, else by index, else by
    position (the two lists must then have the same length). Without image_id,
    `positional()` is called first: it raises when pairing by position is not allowed."""
    if batch.image_id is not None:
        missing = [i for i in batch.image_id if i not in ids]
        if missing:
            raise AlignmentError(f"{len(missing)} explanation record(s) of [{batch.start}, "
                                 f"{batch.start + len(batch)}) name images absent from the "
                                 f"images source: {', '.join(map(repr, missing[:5]))}"
                                 f"{' ...' if len(missing) > 5 else ''}")
        return [ids[i] for i in batch.image_id]
    if positional is not None:
        positional()
    rows = batch.index if batch.index is not None else \
        list(range(batch.start, batch.start + len(batch)))
    if batch.index is None and len(entries) != num_explanations:
        raise AlignmentError(f"the images source lists {len(entries)} images but the "
                             f"explanations file holds {num_explanations} maps; without "
                             "'index'/'image_id' keys they are joined by position and must "
                             "match")
    if max(rows) >= len(entries):
        raise AlignmentError(f"explanation {batch.start} points to image {max(rows)}, but the "
                             f"images source lists {len(entries)}")
    return rows


def join_images(batches: Iterable[Batch], entries: Sequence[Any], num_explanations: int,
                load: Callable[[list[str]], np.ndarray],
                predict: Callable[[np.ndarray], np.ndarray],
                positional: Callable[[], None] | None = None) -> Iterator[Batch]:
    """Batches with inputs preprocessed from the images (`load(paths)`) and targets the
    one-hot of the model's own prediction, as DINA used. `positional()` is called before
    records without image_id are paired by position (it raises when that is not allowed)."""
    ids: dict[str, int] = {}
    for position, entry in enumerate(entries):
        ids.setdefault(entry.image_id, position)
    for batch in batches:
        rows = image_rows(batch, entries, ids, num_explanations, positional)
        missing = np.array([is_placeholder(entries[r].path) for r in rows], bool)
        if missing.any():  # records `dina align` left without an image: no score (NaN)
            batch.missing = missing
        if missing.all():
            yield batch
            continue
        present = load([entries[r].path for r, gone in zip(rows, missing, strict=True)
                        if not gone])
        scores = predict(present)
        targets = np.eye(scores.shape[-1], dtype=np.float32)[scores.argmax(axis=-1)]
        batch.inputs, batch.targets = _spread(present, missing), _spread(targets, missing)
        yield batch


def _spread(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """`values` of the rows not missing, placed among zeros for the missing ones."""
    if not missing.any():
        return values
    out = np.zeros((len(missing), *values.shape[1:]), values.dtype)
    out[~missing] = values
    return out
