"""`--engine ray`: the parts of generation and evaluation runs (and of alignments'
images, `ray.alignment`) on Ray actors, exports as Ray tasks.

The runs are the same as in one process (`generation.pipeline.prepare` / `PartWriter` /
`finish`, `metrics.evaluation.prepare` / `metrics.scorer.PartScorer` / `finish`): the same
parts, each written atomically, so a run interrupted anywhere resumes, and the files are
byte-identical to a local run. Each actor builds a model once and keeps it for the next
parts. Ray does the scheduling (`ray.util.ActorPool`), restarts a worker that dies
(`max_restarts`) and runs its part again (`max_task_retries`).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cachetools
import ray
from ray.util import ActorPool

from dina_datasets.errors import DinaError
from dina_datasets.ray.cluster import connect, fit_workers
from dina_datasets.ray.progress import Progress
from dina_datasets.runs import parts as parts_mod

MAX_RESTARTS = 3
MAX_TASK_RETRIES = 3
KEEP = 2  # models and runs an actor keeps built


@dataclass(frozen=True)
class Engine:
    """Where and how the parts run: the cluster's address (None: a new local cluster), the
    workers (None: as many as the cluster holds), GPUs per worker, the registry files every
    worker loads (contributed models and explainers)."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    registries: tuple[str, ...] = ()
    progress: bool = True


@dataclass(frozen=True)
class Done:
    """A part done by a worker: which, its images or maps, seconds, the worker's process id,
    and what it counted (degenerate maps made; targets that differ from the recorded
    predictions)."""

    key: str
    part: int
    items: int
    seconds: float
    pid: int
    counted: int = 0


class _LRU(cachetools.LRUCache):
    """The KEEP most recently used models or runs of an actor."""

    def __init__(self) -> None:
        super().__init__(KEEP)

    def get_or_make(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self:
            return self[key]  # a use: the least recently used goes first
        while len(self) >= self.maxsize:  # freed before the next one is built
            self.popitem()
        self[key] = value = make()
        return value


class PartWorker:
    """A Ray actor that runs parts of generation and evaluation runs (models built once)."""

    def __init__(self, registries: Sequence[str]) -> None:
        from dina_datasets.registry import load_registry

        for path in registries:
            load_registry(path)
        self.nets, self.runners = _LRU(), _LRU()

    def pid(self) -> int:
        return os.getpid()

    def _net(self, model: str, weights: str) -> Any:
        from dina_datasets.generation.models import build_model

        return self.nets.get_or_make((model, weights), lambda: build_model(model, weights))

    def generate(self, key: str, run: Any, baseline: Any, part: parts_mod.Part) -> Done:
        """Write one part of a generation run (`baseline`: its dataset mean, or None)."""
        from dina_datasets.generation.pipeline import PartWriter

        started = time.perf_counter()
        writer = self.runners.get_or_make(key, lambda: PartWriter(
            run, net=self._net(run.cell.model, run.weights), baseline=baseline))
        degenerate = writer.write([part])
        return Done(key, part.index, len(part), time.perf_counter() - started, os.getpid(),
                    degenerate)

    def evaluate(self, key: str, run: Any, _: Any, part: parts_mod.Part) -> Done:
        """Score one part of an evaluation run."""
        from dina_datasets.metrics.scorer import PartScorer

        started = time.perf_counter()
        net = self._net(run.cell.model, run.weights) if run.inputs is not None else None
        scorer = self.runners.get_or_make(key, lambda: PartScorer(run, net=net))
        mismatched = scorer.score(part)
        return Done(key, part.index, len(part), time.perf_counter() - started, os.getpid(),
                    mismatched)


    def align(self, key: str, work: Any, _: Any, part: parts_mod.Part) -> Done:
        """Compute and save one part of an alignment's image fingerprints."""
        started = time.perf_counter()
        work.write(self.runners.get_or_make(key, work.maker), part)
        return Done(key, part.index, len(part), time.perf_counter() - started, os.getpid())


@dataclass
class Job:
    """One part of one run, for a worker."""

    method: str
    key: str
    run: Any  # an ObjectRef of the run (resolved by Ray before the call)
    extra: Any  # what else the worker's method takes (a generation run's baseline)
    part: parts_mod.Part


def _get(ray_: Any, refs: list[Any]) -> list[Any]:
    """ray.get, with our own errors raised as they are (one line at the command line)."""
    try:
        return ray_.get(refs)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, DinaError):
            raise err.cause from None
        raise


def _run_jobs(ray_: Any, engine: Engine, jobs: list[Job], unit: str
              ) -> tuple[list[Done], list[str]]:
    """Run the jobs on a pool of actors; returns what each did, and a note when Ray
    restarted workers."""
    if not jobs:
        return [], []
    workers = min(fit_workers(ray_, engine.workers, engine.gpus_per_worker), len(jobs))
    actor = ray_.remote(PartWorker).options(
        num_cpus=1, num_gpus=engine.gpus_per_worker, max_restarts=MAX_RESTARTS,
        max_task_retries=MAX_TASK_RETRIES)
    actors = [actor.remote(list(engine.registries)) for _ in range(workers)]
    started = set(ray_.get([a.pid.remote() for a in actors]))
    progress = Progress(len(jobs), sum(len(j.part) for j in jobs), unit, workers,
                        engine.progress)
    done: list[Done] = []
    try:
        pool = ActorPool(actors)
        for out in pool.map_unordered(lambda a, job: getattr(a, job.method).remote(
                job.key, job.run, job.extra, job.part), jobs):
            done.append(out)
            progress.update(out.items)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, DinaError):
            raise err.cause from None
        raise
    finally:
        progress.close()
        for a in actors:
            ray_.kill(a, no_restart=True)
    restarted = {d.pid for d in done} - started
    return done, [f"Ray restarted {len(restarted)} worker process(es) that died and ran their "
                  "parts again"] if restarted else []


def generate(cells: Sequence[Any], images: str, out: str, engine: Engine, **settings: Any
             ) -> list[Any]:
    """`dina generate --engine ray`: every config's parts on the cluster's workers, then
    each complete, unsharded run merged (as Ray tasks). Returns the configs' results."""
    from dina_datasets.generation import pipeline

    started = time.perf_counter()
    with connect(engine.address) as ray_:
        fit_workers(ray_, engine.workers, engine.gpus_per_worker)  # before anything is written
        runs = [pipeline.prepare(cell.model, cell.explainer, images, out, **settings)
                for cell in cells]
        todo = [run for run in runs if run.todo and not run.result.complete]
        # dataset means first (Ray tasks), so that no worker waits on one while holding a CPU
        means = [run for run in todo if run.needs_baseline]
        baselines = dict(zip(map(id, means), _get(ray_, [
            _baseline.remote(list(engine.registries), run) for run in means]), strict=True))
        jobs, keys = [], {}
        for run in todo:
            key, ref = f"generate-{uuid.uuid4().hex}", ray_.put(run)
            keys[id(run)] = key
            jobs += [Job("generate", key, ref, baselines.get(id(run)), part)
                     for part in run.todo]
        loop_started = time.perf_counter()
        done, restarts = _run_jobs(ray_, engine, jobs, "img")
        loop = time.perf_counter() - loop_started
        for run in todo:
            degenerate = sum(d.counted for d in done if d.key == keys[id(run)])
            pipeline.wrote(run, degenerate)
            run.result.loop_seconds = loop
        finished = iter(_get(ray_, [_finish.remote(run) for run in runs
                                    if not run.result.complete]))
        results = [run.result if run.result.complete else next(finished) for run in runs]
    for result in results:
        result.seconds = time.perf_counter() - started
        result.notes += restarts
    return results


@ray.remote
def _baseline(registries: list[str], run: Any) -> Any:
    from dina_datasets.generation.pipeline import dataset_baseline
    from dina_datasets.registry import load_registry

    for path in registries:
        load_registry(path)
    return dataset_baseline(run)


@ray.remote
def _finish(run: Any) -> Any:
    from dina_datasets.generation.pipeline import finish

    return finish(run)


def evaluate(cells: Sequence[Any], metrics: Sequence[str], engine: Engine, **settings: Any
             ) -> list[Any]:
    """`dina evaluate --engine ray`: every config's parts on the cluster's workers; each
    metric's score file written when its parts are all there. Returns the results."""
    from dina_datasets.metrics import evaluation

    with connect(engine.address) as ray_:
        fit_workers(ray_, engine.workers, engine.gpus_per_worker)  # before anything is written
        runs = [evaluation.prepare(cell.model, cell.explainer, metrics, **settings)
                for cell in cells]
        jobs, by_key = [], {}
        for run in runs:
            if run.todo:
                key, ref = f"evaluate-{uuid.uuid4().hex}", ray_.put(run)
                by_key[key] = run
                jobs += [Job("evaluate", key, ref, None, part) for part in run.todo]
        done, restarts = _run_jobs(ray_, engine, jobs, "map")
        for d in done:
            by_key[d.key].result.add(d.items, d.counted)
        results = [evaluation.finish(run) for run in runs]
    for result in results:
        result.notes += restarts
    return results


def export(configs: Sequence[str], out: str, engine: Engine, **settings: Any) -> list[Any]:
    """`dina export --engine ray`: one Ray task per config, then the README."""
    from dina_datasets.hf.export import export as export_configs

    with connect(engine.address) as ray_:
        task = _write_config.options(num_gpus=0)

        def write_all(write: Callable[..., Any], sources: list[Any]) -> None:
            refs = [task.remote(list(engine.registries), write, s) for s in sources]
            progress = Progress(len(refs), sum(s.num_records for s in sources), "row",
                                len(refs), engine.progress)
            rows = {ref: s.num_records for ref, s in zip(refs, sources, strict=True)}
            try:
                waiting = list(refs)
                while waiting:
                    ready, waiting = ray_.wait(waiting, num_returns=1)
                    _get(ray_, ready)
                    progress.update(rows[ready[0]])
            finally:
                progress.close()

        return export_configs(configs, out, map_configs=write_all, **settings)


@ray.remote
def _write_config(registries: list[str], write: Callable[..., Any], source: Any) -> None:
    from dina_datasets.registry import load_registry

    for path in registries:
        load_registry(path)
    write(source)


__all__ = ["Engine", "PartWorker", "evaluate", "export", "generate"]
