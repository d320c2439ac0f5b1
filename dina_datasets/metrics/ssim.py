"""Structural similarity of two maps, per sample, as `tf.image.ssim` computes it.

Gaussian window (11x11, sigma 1.5) applied without padding, population (co)variances,
c1 = (k1 L)^2, c2 = (k2 L)^2 with L = max - min over both maps (SSIM = 1 when L = 0); the
SSIM map is averaged over positions and channels. The window shrinks to the largest odd
size that fits maps smaller than 11 pixels.
"""

from __future__ import annotations

import numpy as np

from dina_datasets.errors import AlignmentError


def gaussian_window(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of `size` taps; the 2-D window is its outer product."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    window = np.exp(-0.5 * coords ** 2 / sigma ** 2)
    return window / window.sum()


def _filter(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of (N, H, W, C) over H and W."""
    size = len(window)
    rows = x.shape[1] - size + 1
    acc = sum(w * x[:, i:i + rows] for i, w in enumerate(window))
    cols = x.shape[2] - size + 1
    return sum(w * acc[:, :, i:i + cols] for i, w in enumerate(window))


def _as_images(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise AlignmentError(f"ssim expects maps of shape (N, H, W) or (N, H, W, C), got "
                             f"{x.shape}")
    return x


def ssim(a: np.ndarray, b: np.ndarray, *, win_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """(N,) SSIM of each pair of maps a[i], b[i] of shape (H, W) or (H, W, C)."""
    a, b = _as_images(a), _as_images(b)
    if a.shape != b.shape:
        raise AlignmentError(f"ssim compares maps of the same shape, got {a.shape} and "
                             f"{b.shape}")
    size = max(1, min(win_size, a.shape[1], a.shape[2]))
    size -= 1 - size % 2
    window = gaussian_window(size, sigma)
    both = np.concatenate([a, b], axis=3).reshape(len(a), -1)
    data_range = both.max(axis=1) - both.min(axis=1) if both.size else np.zeros(len(a))
    safe = np.where(data_range > 0, data_range, 1.0)[:, None, None, None]
    c1, c2 = (k1 * safe) ** 2, (k2 * safe) ** 2
    mean_a, mean_b = _filter(a, window), _filter(b, window)
    num0 = 2.0 * mean_a * mean_b
    den0 = mean_a ** 2 + mean_b ** 2
    luminance = (num0 + c1) / (den0 + c1)
    num1 = 2.0 * _filter(a * b, window)
    den1 = _filter(a * a + b * b, window)
    contrast = (num1 - num0 + c2) / (den1 - den0 + c2)
    value = (luminance * contrast).reshape(len(a), -1).mean(axis=1)
    return np.where(data_range > 0, value, 1.0)
