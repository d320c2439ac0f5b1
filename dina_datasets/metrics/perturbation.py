"""Forward passes over many perturbed copies of a batch, built while the model runs.

The (sample, perturbation) pairs of a batch are laid end to end and cut into forward
batches of `batch_size` images. A worker thread fills the next forward batch while the model
computes the current one, so building the perturbations costs little beyond the model.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dina_datasets.metrics.base import Forward, target_scores

# fill(out, first_pair, stop_pair) writes the perturbed images of pairs [first, stop) to out.
Fill = Callable[[np.ndarray, int, int], None]


def perturbed_scores(forward: Forward, targets: np.ndarray, per_sample: int, fill: Fill,
                     image_shape: tuple[int, ...], batch_size: int) -> np.ndarray:
    """(N, per_sample) scores sum(model(x') * target) of every perturbed image x'.

    Pair p is perturbation p % per_sample of sample p // per_sample.
    """
    n = len(targets)
    total = n * per_sample
    out = np.empty(total, np.float64)
    if total == 0:
        return out.reshape(n, per_sample)
    chunks = [(a, min(a + batch_size, total)) for a in range(0, total, batch_size)]
    # Keras graphs see one batch shape: the last chunk is padded (with stale images).
    rows = batch_size if forward.keras else min(batch_size, total)
    buffers = forward.buffers((rows, *image_shape))
    targets = np.asarray(targets, np.float32)

    def build(k: int) -> np.ndarray:
        a, b = chunks[k]
        buffer = buffers[k % 2]
        fill(buffer, a, b)
        return buffer

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(build, 0)
        for k, (a, b) in enumerate(chunks):
            buffer = pending.result()
            if k + 1 < len(chunks):
                pending = pool.submit(build, k + 1)
            batch = buffer if forward.keras else buffer[:b - a]
            preds = forward(batch)[:b - a]
            out[a:b] = target_scores(preds, targets[np.arange(a, b) // per_sample])
    return out.reshape(n, per_sample)
