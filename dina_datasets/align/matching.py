"""Matching records to images by their fingerprints, one to one, never guessing.

Nearest neighbours are exact: blocked matrix products in numpy (`BLOCK` records at a time
against every image) find each record's two nearest images (`top2`); their distances are
then computed again in float64 from the difference of the fingerprints, because a float32
dot product near 1 rounds distances of ~1e-7 (a map matched through float noise of 1e-3) to
0 or to the next float, which would make exact duplicate images look separable.
50,000 x 50,000 fingerprints of 256 values take about a minute and
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
    (-1 when there is one candidate only); similarities are 1 - cosine distance."""

    best: np.ndarray
    similarity: np.ndarray
    second: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        return self.similarity - self.second


def _distances(queries: np.ndarray, candidates: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Cosine distance of each query row to candidate `rows[i]`, in float64 from their
    difference (no cancellation near 0); 1 where either row is all zero."""
    return np.concatenate([_pairs(queries[k:k + BLOCK], candidates[rows[k:k + BLOCK]])
                           for k in range(0, len(queries), BLOCK)] or [np.empty(0)])


def _pairs(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    q = queries.astype(np.float64)
    c = candidates.astype(np.float64)
    nq = np.linalg.norm(q, axis=1, keepdims=True)
    nc = np.linalg.norm(c, axis=1, keepdims=True)
    ok = (nq[:, 0] > 0) & (nc[:, 0] > 0)
    q = np.divide(q, nq, out=np.zeros_like(q), where=nq > 0)
    c = np.divide(c, nc, out=np.zeros_like(c), where=nc > 0)
    return np.where(ok, 0.5 * ((q - c) ** 2).sum(axis=1), 1.0)


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
    runner_up = np.full(n, -1, np.int64)
    transposed = np.ascontiguousarray(candidates.T)
    for start in range(0, n, block):
        scores = queries[start:start + block] @ transposed
        rows = np.arange(len(scores))
        top = scores.argmax(axis=1)
        best[start:start + len(scores)] = top
        if candidates.shape[0] > 1:
            scores[rows, top] = -np.inf
            runner_up[start:start + len(scores)] = scores.argmax(axis=1)
    distance = _distances(queries, candidates, best)
    if candidates.shape[0] < 2:
        return Neighbours(best, 1.0 - distance, np.full(n, -1.0))
    second = _distances(queries, candidates, runner_up)
    swap = second < distance  # the float32 products ordered two near-equal candidates wrongly
    best = np.where(swap, runner_up, best)
    distance, second = np.where(swap, second, distance), np.where(swap, distance, second)
    return Neighbours(best, 1.0 - distance, 1.0 - second)


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
    second = np.maximum(0.0, 1.0 - neighbours.second.astype(np.float64))  # -1: distance 2
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
