"""The reference explainers: maps that use no gradient and no model, computed in numpy/scipy
from the model's preprocessed input, so that any explainer can be compared with them.

Each is called as the catalog calls a contributed explainer, `method(model, inputs,
targets, **params)`, with `inputs` the model's preprocessed images (N, H, W, 3) float32 (as
fed to the model, after kecam's crop, resize and rescaling), and returns (N, H, W, 1)
float32 maps. The model and the targets are ignored: the same image gives the same map for
every model and class, which is what makes these references (a randomization metric scores
them as fully insensitive, correlation 1).

- `Sobel`: edge magnitude of the grey image, `g = mean over the 3 channels of the
  preprocessed input`; `sqrt(sobel(g, axis=0)**2 + sobel(g, axis=1)**2)` with
  `scipy.ndimage.sobel` (3x3 kernels: derivative [-1, 0, 1] along one axis, smoothing
  [1, 2, 1] along the other; borders `mode="reflect"`, scipy's default).
- `Laplace`: `|laplace(g)|` with `scipy.ndimage.laplace` (the 5-point [1, -2, 1] second
  difference summed over both axes; `mode="reflect"`); the absolute value, since both signs
  of the second derivative mark an edge.
- `RandomExp`: uniform [0, 1) values, one per pixel, drawn from
  `numpy.random.default_rng([seed, key])` where `key` is a 64-bit BLAKE2b digest of the
  input's float32 bytes: a map repeats with its seed whatever the batching, sharding or order
  of the run, and another seed gives other maps.

The filters run on each image of the batch separately (the batch axis is never smoothed).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from dina_datasets.errors import AlignmentError, ConfigError


def grey(inputs: np.ndarray) -> np.ndarray:
    """(N, H, W) float64: the mean over channels of preprocessed inputs (N, H, W, C)."""
    inputs = np.asarray(inputs)
    if inputs.ndim != 4:
        raise AlignmentError(f"reference explainers take a batch of images (N, H, W, C), got "
                             f"shape {inputs.shape}")
    return inputs.astype(np.float64).mean(axis=-1)


def _map(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values[..., None], dtype=np.float32)


def sobel(model: Any, inputs: np.ndarray, targets: Any = None) -> np.ndarray:
    """Sobel edge magnitude of the channel-mean image (see the module docstring)."""
    from scipy import ndimage

    g = grey(inputs)
    rows = ndimage.correlate1d(ndimage.correlate1d(g, [-1, 0, 1], axis=1), [1, 2, 1], axis=2)
    cols = ndimage.correlate1d(ndimage.correlate1d(g, [-1, 0, 1], axis=2), [1, 2, 1], axis=1)
    return _map(np.hypot(rows, cols))


def laplace(model: Any, inputs: np.ndarray, targets: Any = None) -> np.ndarray:
    """|Laplacian| of the channel-mean image (see the module docstring)."""
    from scipy import ndimage

    g = grey(inputs)
    second = ndimage.correlate1d(g, [1, -2, 1], axis=1) + \
        ndimage.correlate1d(g, [1, -2, 1], axis=2)
    return _map(np.abs(second))


def image_key(image: np.ndarray) -> int:
    """A 64-bit key of one image's float32 bytes (BLAKE2b)."""
    data = np.ascontiguousarray(image, dtype=np.float32).tobytes()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def random_exp(model: Any, inputs: np.ndarray, targets: Any = None, *, seed: int = 0
               ) -> np.ndarray:
    """Seeded uniform [0, 1) maps, one per image, keyed by the image's bytes."""
    inputs = np.asarray(inputs)
    if inputs.ndim != 4:
        raise AlignmentError(f"reference explainers take a batch of images (N, H, W, C), got "
                             f"shape {inputs.shape}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"RandomExp: seed must be a non-negative integer, got {seed!r}")
    n, height, width = inputs.shape[:3]
    out = np.empty((n, height, width, 1), np.float32)
    for i in range(n):
        rng = np.random.default_rng([int(seed), image_key(inputs[i])])
        out[i, ..., 0] = rng.random((height, width), np.float32)
    return out
