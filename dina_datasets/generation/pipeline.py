"""A generation run in one process: images -> kecam preprocessing -> prediction ->
explanation -> DINA records, sharded and resumable (`generate`).

The steps live in `generation.run` (what a run is: `prepare`, `finish`) and
`generation.writer` (`PartWriter`, the dataset-mean baseline); their names are importable
from here too. An unsharded run merges its parts into the layout's `explanations.tfrecord` at
the end; sharded runs are merged with `dina merge`.
"""

from __future__ import annotations

import time
from typing import Any

from dina_datasets.generation.run import (
    SEED,
    GenerateResult,
    Run,
    finish,
    prepare,
    wrote,
)
from dina_datasets.generation.writer import BASELINE_FILE, PartWriter, dataset_baseline
from dina_datasets.runs import parts as parts_mod

__all__ = ["BASELINE_FILE", "SEED", "GenerateResult", "PartWriter", "Run", "dataset_baseline",
           "finish", "generate", "prepare", "wrote"]


def generate(model: str, explainer: str, images: str, out: str, *,
             weights: str = "pretrained", batch_size: int = 32, limit: int | None = None,
             shard: str | tuple[int, int] | None = None, part_size: int = parts_mod.PART_SIZE,
             write_preprocess: bool = False, params: dict[str, Any] | None = None,
             seed: int = SEED, overwrite: bool = False, keep_parts: bool = False,
             progress: bool | float = True, storage_options: dict[str, Any] | None = None
             ) -> GenerateResult:
    """Explain the images of `images` with `model` and `explainer`; write DINA records
    under the bucket layout at `out` (any fsspec URL).

    Records hold `explanations` (readable by the original loader) and the join keys `index`,
    `image_id`, `label`, `prediction`. `params` override the explainer's hyperparameters.
    `progress`: a bar (True), a plain line every `progress` seconds (a number), or nothing.
    """
    run = prepare(model, explainer, images, out, weights=weights, batch_size=batch_size,
                  limit=limit, shard=shard, part_size=part_size,
                  write_preprocess=write_preprocess, params=params, seed=seed,
                  overwrite=overwrite, keep_parts=keep_parts, storage_options=storage_options)
    if run.result.complete:
        return run.result
    if run.todo:
        from dina_datasets.runs.progress import progress as shown

        writer = PartWriter(run, progress=progress is True)
        loop_started = time.perf_counter()
        with shown(progress, sum(len(p) for p in run.todo), run.cell.name, "img") as bar:
            degenerate = writer.write(run.todo, bar.update)
        run.result.loop_seconds = time.perf_counter() - loop_started
        wrote(run, degenerate)
    return finish(run)
