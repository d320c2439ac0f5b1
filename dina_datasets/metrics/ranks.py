"""Row-wise ranks and Spearman correlation, as DINA and xplique compute them."""

from __future__ import annotations

import numpy as np

from dina_datasets.errors import ConfigError

TIES = ("ordinal", "average")
XPLIQUE_EPS = 1e-8


def ordinal_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..F-1 of each row by double argsort (ties: the lower index ranks first)."""
    x = np.asarray(x)
    return np.argsort(np.argsort(x, axis=-1, kind="stable"), axis=-1, kind="stable"
                      ).astype(np.float64)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """0-based ranks of each row where tied values share the mean of their positions."""
    x = np.atleast_2d(np.asarray(x))
    order = np.argsort(x, axis=-1, kind="stable")
    values = np.take_along_axis(x, order, axis=-1)
    width = x.shape[-1]
    pos = np.broadcast_to(np.arange(width), x.shape)
    first = np.ones(x.shape, bool)
    first[:, 1:] = values[:, 1:] != values[:, :-1]
    last = np.ones(x.shape, bool)
    last[:, :-1] = first[:, 1:]
    lo = np.maximum.accumulate(np.where(first, pos, 0), axis=-1)
    hi = np.minimum.accumulate(np.where(last, pos, width)[:, ::-1], axis=-1)[:, ::-1]
    ranks = np.empty(x.shape, np.float64)
    np.put_along_axis(ranks, order, (lo + hi) / 2.0, axis=-1)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray, *, ties: str = "ordinal",
             nan_to_zero: bool = False) -> np.ndarray:
    """Spearman correlation of each row of `a` with the same row of `b`: the Pearson
    correlation of their ranks (population moments).

    ties="ordinal": DINA's double-argsort ranks, cov / (sd_a sd_b).
    ties="average": xplique's averaged tied ranks, cov / (sd_a sd_b + 1e-8).
    """
    if ties not in TIES:
        raise ConfigError(f"ties must be one of {', '.join(TIES)}, got {ties!r}")
    a, b = np.atleast_2d(np.asarray(a)), np.atleast_2d(np.asarray(b))
    rank = ordinal_ranks if ties == "ordinal" else average_ranks
    ra, rb = rank(a), rank(b)
    da = ra - ra.mean(axis=-1, keepdims=True)
    db = rb - rb.mean(axis=-1, keepdims=True)
    cov = (da * db).mean(axis=-1)
    scale = ra.std(axis=-1) * rb.std(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = cov / (scale + XPLIQUE_EPS) if ties == "average" else cov / scale
    return np.nan_to_num(out, nan=0.0) if nan_to_zero else out
