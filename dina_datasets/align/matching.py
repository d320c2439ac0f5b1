"""Matching records to images by their fingerprints, one to one, never guessing.

Nearest neighbours are exact: blocked matrix products in numpy (`BLOCK` records at a time
against every image) find each record's two nearest images, or its `RECHECK` (8) nearest
where the first two are within `TIE` of each other; their distances are computed again in
float64 from the difference of the fingerprints and the best two kept (`top2`). A float32
dot product near 1 rounds distances of ~1e-7 (a map matched through float noise of 1e-3)
to 0 or to the next float, which would make exact duplicate images look separable, or rank
a near copy above the image itself; distances stay float64 up to the statuses. More than 8
images within float32 rounding of one record is beyond this check. 50,000 x 50,000
fingerprints of 256 values take 10-20 s and under 1 GB on 2 cores (`benchmarks/align.py`),
so no approximate index is needed.

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
RECHECK = 8
TIE = 1e-4  # float32 products of 256 unit values err by ~1e-6 (at most ~1.5e-5)
MATCHED, AMBIGUOUS, UNMATCHED = "matched", "ambiguous", "unmatched"
NO_IMAGE = -1


@dataclass
class Neighbours:
    """Per query: the index of its best candidate and the cosine distances (float64) to the
    best and to the second best (2.0 when there is one candidate only)."""

    best: np.ndarray
    distance: np.ndarray
    second_distance: np.ndarray

    @property
    def similarity(self) -> np.ndarray:
        return 1.0 - self.distance

    @property
    def second(self) -> np.ndarray:
        return 1.0 - self.second_distance

    @property
    def margin(self) -> np.ndarray:
        return self.second_distance - self.distance


def _exact(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Cosine distances of each query row (n, dim) to its k candidate rows (n, k, dim), in
    float64 from their difference (no cancellation near 0); 1 where either row is zero."""
    q = queries.astype(np.float64)[:, None, :]
    c = candidates.astype(np.float64)
    nq = np.linalg.norm(q, axis=2, keepdims=True)
    nc = np.linalg.norm(c, axis=2, keepdims=True)
    ok = (nq[..., 0] > 0) & (nc[..., 0] > 0)
    q = np.divide(q, nq, out=np.zeros_like(q), where=nq > 0)
    c = np.divide(c, nc, out=np.zeros_like(c), where=nc > 0)
    return np.where(ok, 0.5 * ((q - c) ** 2).sum(axis=2), 1.0)


def _closest(queries: np.ndarray, candidates: np.ndarray, near: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of each query's candidates `near[i]`: the closest one, its exact distance and the
    second smallest distance (2.0 with one candidate)."""
    exact = _exact(queries, candidates[near])
    order = np.argsort(exact, axis=1, kind="stable")
    rows = np.arange(len(queries))
    second = exact[rows, order[:, 1]] if near.shape[1] > 1 else np.full(len(queries), 2.0)
    return near[rows, order[:, 0]], exact[rows, order[:, 0]], second


def top2(queries: np.ndarray, candidates: np.ndarray, block: int = BLOCK,
         recheck: int = RECHECK) -> Neighbours:
    """The best and second best candidate of every query, by exact float64 distances: the
    float32 top two, or where they are within `TIE` of each other (a near tie the float32
    product cannot order), the `recheck` best by the product. A row holding a NaN or an
    infinity is taken as zero (it matches nothing)."""
    queries = np.ascontiguousarray(queries, np.float32)
    candidates = np.ascontiguousarray(candidates, np.float32)
    if queries.ndim != 2 or candidates.ndim != 2 or queries.shape[1] != candidates.shape[1]:
        raise ConfigError(f"fingerprints of different sizes: {queries.shape} and "
                          f"{candidates.shape}")
    if not len(candidates):
        raise ConfigError("no candidate fingerprints to match against")
    queries, candidates = _finite(queries), _finite(candidates)
    n, k = len(queries), min(recheck, len(candidates))
    best = np.empty(n, np.int64)
    distance = np.empty(n, np.float64)
    second = np.empty(n, np.float64)
    transposed = np.ascontiguousarray(candidates.T)
    for start in range(0, n, block):
        q = queries[start:start + block]
        out = slice(start, start + len(q))
        scores = q @ transposed
        rows = np.arange(len(q))
        near = scores.argmax(axis=1)[:, None]
        tied = np.empty(0, np.int64)
        if k > 1:
            top = scores[rows, near[:, 0]]
            scores[rows, near[:, 0]] = -np.inf
            near = np.hstack([near, scores.argmax(axis=1)[:, None]])
            tied = np.flatnonzero((top - scores[rows, near[:, 1]] < TIE) & q.any(axis=1))
            scores[rows, near[:, 0]] = top
        best[out], distance[out], second[out] = _closest(q, candidates, near)
        if k > 2 and len(tied):
            many = np.argpartition(-scores[tied], k - 1, axis=1)[:, :k]
            at = start + tied
            best[at], distance[at], second[at] = _closest(q[tied], candidates, many)
    return Neighbours(best, distance, second)


def _finite(rows: np.ndarray) -> np.ndarray:
    """The rows, those holding a NaN or an infinity set to zero (a copy only then)."""
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        rows = rows.copy()
        rows[bad] = 0.0
    return rows


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
    distance = np.maximum(0.0, neighbours.distance)
    second = np.maximum(0.0, neighbours.second_distance)
    sim = 1.0 - distance
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
