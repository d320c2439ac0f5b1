"""`dina align --engine ray`: the images' fingerprints, part by part, on Ray actors.

The alignment is the one of a single process (`align.alignment.align`): the checks, the
records' fingerprints, the early check on a sample and the matching run here; only the
images' parts (the 50,000 forward and backward passes) go to the workers, each building
the model once (`PartWorker.align`) and saving its parts atomically in the same parts
folder, so an interrupted run resumes with either engine and the outputs are those of a
local run.
"""

from __future__ import annotations

import uuid
from typing import Any

from dina_datasets.ray.cluster import connect, fit_workers
from dina_datasets.ray.engine import Engine, Job, _run_jobs
from dina_datasets.runs import parts as parts_mod


def align(config: str, images: str, data_url: str, out: str, engine: Engine,
          **settings: Any) -> Any:
    """`dina align --engine ray`: `align.alignment.align` with its images' parts computed
    by the cluster's workers. Returns its `AlignResult`."""
    from dina_datasets.align.alignment import ImageWork
    from dina_datasets.align.alignment import align as align_here

    with connect(engine.address) as ray_:
        fit_workers(ray_, engine.workers, engine.gpus_per_worker)  # before anything is written

        def compute(work: ImageWork, todo: list[parts_mod.Part]) -> list[str]:
            key, ref = f"align-{uuid.uuid4().hex}", ray_.put(work)
            _, notes = _run_jobs(ray_, engine, [Job("align", key, ref, None, part)
                                                for part in todo], "img")
            return notes

        return align_here(config, images, data_url, out, compute=compute, **settings)
