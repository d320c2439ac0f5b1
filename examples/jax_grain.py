"""JAX: a grain pipeline over a DINA config read by ranged requests (no download, no cache).

A global shuffle per epoch (grain), batches of numeric columns, and a jitted step: here the
mean absolute attribution of each map and its correlation with the Insertion score.

    python examples/jax_grain.py --config DinoV2-Rise [--data-url gs://xai-deel] [--steps 10]
"""

from __future__ import annotations

import argparse

import grain
import jax
import jax.numpy as jnp
import numpy as np

import dina_datasets as dd

COLUMNS = ("index", "explanation", "Insertion")


@jax.jit
def step(maps: jax.Array, scores: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean |attribution| per map, and its correlation with the scores of the batch."""
    energy = jnp.abs(maps).mean(axis=(1, 2, 3))
    ok = jnp.isfinite(scores)
    e = jnp.where(ok, energy - jnp.nanmean(jnp.where(ok, energy, jnp.nan)), 0.0)
    s = jnp.where(ok, scores - jnp.nanmean(scores), 0.0)
    return energy, (e * s).sum() / jnp.sqrt((e * e).sum() * (s * s).sum() + 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="DinoV2-Rise")
    parser.add_argument("--data-url", default=dd.DEFAULT_DATA_URL)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=16, help="grain read threads")
    args = parser.parse_args()

    source = dd.RandomAccessDataset(args.config, data_url=args.data_url)
    pipeline = (grain.MapDataset.source(source)
                .shuffle(seed=0)                        # a global shuffle, new each epoch
                .repeat()
                .map(lambda row: {k: row[k] for k in COLUMNS})
                .batch(args.batch_size, drop_remainder=True)
                .to_iter_dataset(grain.ReadOptions(num_threads=args.threads,
                                                   prefetch_buffer_size=2 * args.threads)))
    for k, batch in zip(range(args.steps), pipeline, strict=False):
        maps = jnp.asarray(batch["explanation"])     # (batch, 224, 224, C) float32
        energy, corr = step(maps, jnp.asarray(batch["Insertion"], jnp.float32))
        print(f"step {k}: rows {np.asarray(batch['index'])[:4].tolist()}..., "
              f"mean |map| {float(energy.mean()):.4f}, corr with Insertion {float(corr):+.3f}")


if __name__ == "__main__":
    main()
