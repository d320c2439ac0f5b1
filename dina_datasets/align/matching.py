"""Matching records to images by their fingerprints, one to one, never guessing.

Nearest neighbours are exact: blocked matrix products in numpy (`BLOCK` records at a time
against every image), keeping for each record its best image, the best similarity and the
second best (`top2`). 50,000 x 50,000 fingerprints of 256 values take about a minute and
under 1 GB on 2 cores (`benchmarks/align.py`), so no approximate index is needed.

A record's status (`assign`):

- `unmatched`: its best similarity is under `MIN_SIMILARITY` (0.9): no image of the source
  made this map;
- `ambiguous`: the second best image is nearly as close: the distance (1 - similarity) to
  the best is at least `MAX_RATIO` (0.5) times the distance to the second (exact duplicate
  images give a ratio of about 1, or two distances of 0); or several records would take the
  same image;
- `matched`: otherwise. Every matched image is matched by one record only, so the
  assignment is one to one without a global solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dina_datasets.errors import ConfigError

MIN_SIMILARITY = 0.9
MAX_RATIO = 0.5
BLOCK = 1024
MATCHED, AMBIGUOUS, UNMATCHED = "matched", "ambiguous", "unmatched"
NO_IMAGE = -1


@dataclass
class Neighbours:
    """Per query: the index of its best candidate, the best similarity and the second best
    (-1 when there is one candidate only)."""

    best: np.ndarray
    similarity: np.ndarray
    second: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        return self.similarity - self.second


def top2(queries: np.ndarray, candidates: np.ndarray, block: int = BLOCK) -> Neighbours:
    """The best and second best candidate of every query (fingerprint rows, dot product)."""
    queries = np.ascontiguousarray(queries, np.float32)
    candidates = np.ascontiguousarray(candidates, np.float32)
    if queries.ndim != 2 or candidates.ndim != 2 or queries.shape[1] != candidates.shape[1]:
        raise ConfigError(f"fingerprints of different sizes: {queries.shape} and "
                          f"{candidates.shape}")
    if not len(candidates):
        raise ConfigError("no candidate fingerprints to match against")
    n = len(queries)
    best = np.empty(n, np.int64)
    similarity = np.empty(n, np.float32)
    second = np.full(n, -1.0, np.float32)
    transposed = np.ascontiguousarray(candidates.T)
    for start in range(0, n, block):
        scores = queries[start:start + block] @ transposed
        rows = np.arange(len(scores))
        top = scores.argmax(axis=1)
        best[start:start + len(scores)] = top
        similarity[start:start + len(scores)] = scores[rows, top]
        if candidates.shape[0] > 1:
            scores[rows, top] = -np.inf
            second[start:start + len(scores)] = scores.max(axis=1)
    return Neighbours(best, similarity, second)


@dataclass
class Assignment:
    """Per record: its image (NO_IMAGE unless matched), best candidate, similarity, margin
    and status."""

    image: np.ndarray
    candidate: np.ndarray
    similarity: np.ndarray
    margin: np.ndarray
    status: np.ndarray

    def count(self, status: str) -> int:
        return int((self.status == status).sum())


def assign(neighbours: Neighbours, min_similarity: float = MIN_SIMILARITY,
           max_ratio: float = MAX_RATIO) -> Assignment:
    """Statuses and one-to-one images of records from their neighbours (module docstring)."""
    sim = neighbours.similarity.astype(np.float64)
    distance = np.maximum(0.0, 1.0 - sim)
    second = np.maximum(0.0, 1.0 - neighbours.second.astype(np.float64))
    status = np.full(len(sim), MATCHED, dtype=object)
    near = distance >= max_ratio * second  # equal distances (0 too) are ambiguous
    status[near] = AMBIGUOUS
    status[sim < min_similarity] = UNMATCHED
    claims = np.bincount(neighbours.best[status == MATCHED],
                         minlength=int(neighbours.best.max(initial=0)) + 1)
    shared = (status == MATCHED) & (claims[neighbours.best] > 1)
    status[shared] = AMBIGUOUS
    image = np.where(status == MATCHED, neighbours.best, NO_IMAGE)
    return Assignment(image, neighbours.best.copy(), neighbours.similarity,
                      neighbours.margin, status.astype(str))
