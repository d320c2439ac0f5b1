"""Fingerprints: a map (or a preprocessed input) reduced to a short vector that identifies
its image.

A map (H, W, C) is averaged over its channels, block-averaged to `SIZE` x `SIZE` (16 x 16 =
256 values), centred and divided by its L2 norm: the dot product of two fingerprints is the
Pearson correlation of the two reduced maps. Float noise of another GPU, TensorFlow build or
JPEG decoder moves it by far less than the distance between two different images.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from dina_datasets.errors import ConfigError

SIZE = 16
DIM = SIZE * SIZE


def _edges(length: int, size: int) -> np.ndarray:
    """Start of each of `size` nearly equal blocks of `length` pixels."""
    return np.linspace(0, length, size + 1).astype(np.int64)[:-1]


def fingerprints(maps: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(N, size * size) float32 fingerprints of maps (N, H, W, C) or (N, H, W); a constant
    map gives the zero vector (it matches nothing)."""
    array = np.asarray(maps, np.float32)
    if array.ndim == 4:
        array = array.mean(axis=-1)
    if array.ndim != 3:
        raise ConfigError(f"fingerprints take maps (N, H, W, C) or (N, H, W), got shape "
                          f"{np.shape(maps)}")
    n, height, width = array.shape
    if height < size or width < size:
        raise ConfigError(f"maps of {height}x{width} pixels are smaller than the "
                          f"{size}x{size} fingerprint")
    rows, cols = _edges(height, size), _edges(width, size)
    counts = np.outer(np.diff(np.append(rows, height)), np.diff(np.append(cols, width)))
    blocks = np.add.reduceat(np.add.reduceat(array.astype(np.float64), rows, axis=1),
                             cols, axis=2) / counts
    flat = blocks.reshape(n, -1)
    flat -= flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    flat = np.divide(flat, norms, out=np.zeros_like(flat), where=norms > 0)
    return flat.astype(np.float32)


def batched(arrays: Iterable[np.ndarray], batch: int = 256) -> Iterator[np.ndarray]:
    """Arrays of one shape, stacked `batch` at a time."""
    chunk: list[np.ndarray] = []
    for array in arrays:
        chunk.append(array)
        if len(chunk) == batch:
            yield np.stack(chunk)
            chunk = []
    if chunk:
        yield np.stack(chunk)
