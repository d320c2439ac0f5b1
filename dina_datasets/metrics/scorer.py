"""The model and metrics of an evaluation run, built once, scoring any of its parts: the unit
that `evaluate` runs part after part in one process, and a Ray worker runs on a cluster."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from dina_datasets import catalog
from dina_datasets.metrics.base import Forward
from dina_datasets.metrics.inputs import explanation_batches, join_preprocess
from dina_datasets.metrics.plan import Evaluation, _explainer_factory, _metric, _with_images
from dina_datasets.readahead import prefetch
from dina_datasets.runs import parts as parts_mod
from dina_datasets.runs import score_parts


class PartScorer:
    """The model and metrics of an evaluation, built once, scoring any of its parts. `net`
    reuses a model already built with the run's weights."""

    def __init__(self, run: Evaluation, net: Any = None) -> None:
        from dina_datasets.runs import cost

        self.run = run
        specs = [catalog.metric(name) for name in run.metrics]
        if run.inputs is not None and net is None:
            from dina_datasets.generation.models import build_model

            net = build_model(run.cell.model, run.weights)
        self.net = net
        self.entries, self.forward = None, None
        if run.inputs is not None and run.inputs[0] == "images":
            from dina_datasets.images import list_images

            self.entries, self.forward = list_images(run.inputs[1]), Forward(net)
        factory = None
        self.randomization = any(s.family == "randomization" for s in specs)
        if self.randomization:
            baseline = None if run.baseline is None else np.asarray(run.baseline, np.float32)
            factory = _explainer_factory(run.cell, run.batch_size, baseline)
        self.scorers = {s.name: _metric(s, net, factory, run.batch_size, run.seed, run.variant,
                                        run.activation, run.params.get(s.name, {}))
                        for s in specs}
        for scorer in self.scorers.values():
            if hasattr(scorer, "_explainer"):  # built before any part seeds the generator
                scorer._explainer()
        cost.environment()  # device and versions, looked up once TensorFlow is imported

    def score(self, part: parts_mod.Part) -> int:
        """Score the maps of `part` for every metric whose part file is missing; write those
        files. Returns the number of targets that differ from the recorded predictions."""
        run, options = self.run, self.run.storage_options
        started = time.perf_counter()
        wanted = {}
        for name in run.metrics:
            have = score_parts.present(run.score_url(name), options)
            for a, b in run.ranges(name, [part]):
                if score_parts.part_name(a, b) not in have:
                    wanted[name] = b
        if not wanted:
            return 0
        batches = explanation_batches(run.url, max(wanted.values()), run.batch_size,
                                      start=part.start, storage_options=options)
        if any(catalog.metric(name).needs_model for name in wanted):
            batches = self._join(batches)
        if self.randomization:
            from dina_datasets.generation.runtime import tensorflow

            tf = tensorflow()

            tf.keras.utils.set_random_seed(run.seed)
        scores: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
        seconds = dict.fromkeys(wanted, 0.0)
        mismatched = 0
        for batch in prefetch(batches):
            if batch.prediction is not None and batch.targets is not None:
                seen = batch.present(len(batch))
                mismatched += int(np.sum(np.asarray(batch.prediction)[seen] !=
                                         batch.targets[seen].argmax(axis=-1)))
            for name, end in wanted.items():
                count = min(len(batch), end - batch.start)
                if count <= 0:
                    continue
                rows = batch.present(count)  # records without an image: NaN
                values = np.full(count, np.nan)
                began = time.perf_counter()
                if len(rows):
                    values[rows] = np.asarray(self.scorers[name].scores(
                        None if batch.inputs is None else batch.inputs[rows],
                        None if batch.targets is None else batch.targets[rows],
                        batch.explanations[rows], start=batch.start), np.float64)
                scores[name].append(values)
                seconds[name] += time.perf_counter() - began
        wall = time.perf_counter() - started
        for name, values in scores.items():
            score_parts.write_part(run.score_url(name), part.start, np.concatenate(values),
                                   seconds[name], wall, options)
        return mismatched

    def _join(self, batches: Any) -> Any:
        run = self.run
        kind, source = run.inputs
        if kind == "images":
            return _with_images(batches, run.cell, source, self.entries, self.forward,
                                run.num_records, run.assume_order)
        return join_preprocess(batches, source, run.num_records,
                               storage_options=run.storage_options)
