"""`align`: the whole job, from a config, an images source and a data URL to
`aligned.json`.

1. checks, before any long work: the records file (shape, count), the images (at least as
   many as records), the explainer (one that can make maps of the records' shape), the
   weights (the model is built first: offline pretrained weights fail here);
2. the records' fingerprints, streamed in parts of `RECORD_PART`;
3. an early check on a sample of `SAMPLE` (64) images: when too few of them match any
   record (under a quarter of the expected hits), the images are not those of the file
   (or the model, weights or explainer differ): stop with the reason, before hours of
   work. The cost per image measured on the sample gives the estimate printed next;
4. the images' fingerprints in parts of `part_size` (the unit of `--shard K/N` and of
   resumption);
5. matching and the outputs (`report`); the parts are removed once they are written.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dina_datasets import catalog, storage
from dina_datasets.align import fingerprints, matching, recompute, report
from dina_datasets.align.published import EXPLANATIONS, PREPROCESS_INPUT, Published
from dina_datasets.align.store import FORMAT, Store
from dina_datasets.errors import AlignmentError, ConfigError, check_positive_int
from dina_datasets.images import ImageEntry, image_root, list_images
from dina_datasets.layout import Layout
from dina_datasets.runs import parts as parts_mod

SAMPLE = 64
# The early check stops when fewer than STOP_FRACTION of the hits expected from the sample
# (records / images of it) are found; it cannot tell when under MIN_EXPECTED hits are
# expected (a partial cell): then it only prints the estimate. Wrong images give ~0 hits.
STOP_FRACTION = 0.25
MIN_EXPECTED = 8
RECORD_PART = 4096
IMAGE_PART = 1024
ROUTES = ("auto", "maps", "preprocess")


@dataclass
class AlignResult:
    """What an alignment did: its outputs, the counts per status, and notes to print."""

    out: str
    complete: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        counts = ", ".join(f"{v} {k}" for k, v in self.counts.items())
        head = f"wrote {self.out}: {counts}" if self.complete else f"{self.out}: not complete"
        return "\n".join([head, *self.notes])


@dataclass(frozen=True)
class ImageWork:
    """What computing the images' parts needs, without the model (picklable: `--engine ray`
    sends it to workers, which build their own `maker` once and `write` parts)."""

    model: str
    explainer: str | None  # None: the preprocess route
    weights: str
    batch_size: int
    entries: list[ImageEntry]
    out: str
    storage_options: dict[str, Any] | None = None

    def maker(self) -> recompute.Recompute:
        """The model, preprocessing and explainer of this work."""
        if self.explainer is None:
            return recompute.Preprocessed(self.model, self.batch_size)
        return recompute.Recompute(self.model, self.explainer, self.weights, self.batch_size)

    def write(self, maker: recompute.Recompute, part: parts_mod.Part,
              update: Callable[[int], Any] | None = None) -> None:
        """Compute one part of the images' fingerprints and save it (atomically)."""
        Store(self.out, self.storage_options).save("images", part, maker.fingerprints(
            self.entries[part.start:part.stop], update))


# Computes the given image parts of a work (`--engine ray`); returns notes to print.
Compute = Callable[[ImageWork, list[parts_mod.Part]], list[str]]


@dataclass
class Job:
    """A checked alignment: what it matches, with what, and where it keeps its parts."""

    config: str
    published: Published
    entries: list[ImageEntry]
    root: str
    maker: recompute.Recompute
    manifest: dict[str, Any]
    store: Store
    notes: list[str]
    work: ImageWork


def prepare(config: str, images: str, data_url: str, out: str, *,
            weights: str = "pretrained", explainer: str | None = None, route: str = "auto",
            preprocess_url: str | None = None, batch_size: int = 32,
            part_size: int = IMAGE_PART, storage_options: dict[str, Any] | None = None) -> Job:
    """Check an alignment's inputs (step 1 of the module docstring) and build its model."""
    cell = catalog.Cell.from_name(config, allow_missing=True)
    check_positive_int("batch size", batch_size)
    check_positive_int("part size", part_size)
    if route not in ROUTES:
        raise ConfigError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
    layout, notes = Layout(data_url), []
    pre_url = preprocess_url or layout.preprocess(cell.model)
    if route == "preprocess" or (route == "auto" and (
            preprocess_url or storage.exists(pre_url, storage_options))):
        published = Published.open(pre_url, PREPROCESS_INPUT, storage_options)
        notes.append(f"preprocess route: matching the inputs of {pre_url} (no model)")
        method, name = None, f"{cell.model} inputs"
    else:
        method = _explainer(cell, explainer, notes)
        url = layout.explanations(cell.model, method)
        if method != cell.explainer and not storage.exists(url, storage_options):
            raise ConfigError(
                f"{cell.name} is aligned through {cell.model}-{method} (every explainer of "
                f"a model shares one record order), whose records are not at {url}: download "
                f"that cell too (its explanations.tfrecord), or, when {cell.model} has a "
                "preprocess_dataset.tfrecord, use --route preprocess")
        published = Published.open(url, EXPLANATIONS, storage_options)
        _check_shape(published, catalog.Cell(cell.model, method, allow_missing=True))
        name = f"{cell.model}-{method}"
    entries = list_images(images)
    if len(entries) < published.num_records:
        raise ConfigError(f"{images!r} lists {len(entries)} images but {published.url} holds "
                          f"{published.num_records} records: every record's image must be "
                          "in the source (the ImageNet validation set: 50,000 images)")
    work = ImageWork(cell.model, method, weights, batch_size, entries, out, storage_options)
    maker = work.maker()
    if tuple(maker.shape) != tuple(published.shape):
        raise ConfigError(f"the records of {published.url} have shape {published.shape} but "
                          f"{name} makes {tuple(maker.shape)} here: is {cell.model} the model "
                          "of this file?")
    listing = hashlib.sha256(json.dumps([(e.image_id, e.path) for e in entries]).encode())
    manifest = {"format": FORMAT, "config": cell.name, "matched": name,
                "records": published.url, "num_records": published.num_records,
                "feature": published.feature, "weights": weights if method else None,
                "images": images, "num_images": len(entries), "listing": listing.hexdigest(),
                "fingerprint": fingerprints.SIZE, "part_size": part_size,
                "min_similarity": matching.MIN_SIMILARITY, "max_ratio": matching.MAX_RATIO}
    return Job(cell.name, published, entries, image_root(images), maker, manifest,
               Store(out, storage_options), notes, work)


def _explainer(cell: catalog.Cell, explainer: str | None, notes: list[str]) -> str:
    """The explainer to recompute (`--explainer`, else the cheapest for the config)."""
    if explainer is not None:
        name = catalog.explainer(explainer).name
        if name not in recompute.CHEAP:
            raise ConfigError(f"--explainer {name}: {recompute.why_not(name)}; choose one of "
                              f"{', '.join(recompute.CHEAP)}")
        return name
    name = recompute.cheapest(cell.model, cell.explainer)
    if name != cell.explainer:
        notes.append(f"aligning {cell.name} through {cell.model}-{name}: "
                     f"{recompute.why_not(cell.explainer)}")
    return name


def _check_shape(published: Published, cell: catalog.Cell) -> None:
    """The records must be maps the explainer can make; say which explainer can."""
    if tuple(published.shape) == cell.shape:
        return
    shape = published.shape
    if len(shape) == 3 and shape[:2] == cell.shape[:2]:
        fits = [e for e in recompute.CHEAP if catalog.explainer(e).channels == shape[2]
                and (cell.model_spec.has_conv or not catalog.explainer(e).needs_conv)]
        hint = (f"use --explainer {fits[0]} (it makes {shape[2]}-channel maps)" if fits else
                f"no cheap explainer makes {shape[2]}-channel maps of {cell.model}: use "
                "another published cell of this model (e.g. --explainer Saliency)")
    else:
        hint = (f"{cell.model} makes {cell.shape[0]}x{cell.shape[1]} maps: is it the model "
                "of this file?")
    raise ConfigError(f"the records of {published.url} have shape {tuple(shape)} but "
                      f"{cell.name} makes maps of shape {cell.shape}: {hint}")


def align(config: str, images: str, data_url: str, out: str, *, weights: str = "pretrained",
          explainer: str | None = None, route: str = "auto", preprocess_url: str | None = None,
          shard: str | tuple[int, int] | None = None, part_size: int = IMAGE_PART,
          batch_size: int = 32, sample: int = SAMPLE, overwrite: bool = False,
          check_only: bool = False, progress: bool = False, say: Callable[[str], Any] = print,
          compute: Compute | None = None,
          storage_options: dict[str, Any] | None = None) -> AlignResult:
    """Recover which image of `images` each record of `config` at `data_url` explains, and
    write `out` (kecam json, record order), its report and CSV (module docstring).
    `check_only`: stop after the early check and the estimate (steps 1 to 3); `compute`:
    what computes the images' parts (default: this process; `--engine ray`: workers)."""
    started = time.perf_counter()
    k, n = parts_mod.parse_shard(shard)
    result = AlignResult(out)
    request = {"config": catalog.Cell.from_name(config, allow_missing=True).name,
               "images": images, "data_url": data_url.rstrip("/"), "weights": weights,
               "explainer": explainer, "route": route, "preprocess_url": preprocess_url}
    if n == 1 and not overwrite:
        earlier = report.read_report(out, storage_options)
        if earlier is not None:
            before = earlier.get("request") or {}
            differ = sorted(key for key in request if before.get(key) != request[key])
            if differ:
                raise ConfigError(f"{out} holds an alignment made with other settings "
                                  f"({', '.join(differ)} differ): pass --overwrite to redo "
                                  "it, or choose another --out")
            result.complete, result.counts = True, earlier["counts"]
            result.notes.append(f"{out} is already complete (pass --overwrite to redo it)")
            return result
    job = prepare(config, images, data_url, out, weights=weights, explainer=explainer,
                  route=route, preprocess_url=preprocess_url, batch_size=batch_size,
                  part_size=part_size, storage_options=storage_options)
    for note in job.notes:
        say(note)
    job.store.start(job.manifest, overwrite)
    plan = parts_mod.plan(len(job.entries), part_size)
    done = job.store.done("images", plan)
    mine = parts_mod.shard(plan, k, n)
    todo = [p for p in mine if p.index not in done]
    published = job.published
    say(f"to do: {published.num_records:,} records of {published.url} to read "
        f"({published.num_records * published.record_bytes / 1e9:.2f} GB), "
        f"{sum(len(p) for p in todo):,} of {len(job.entries):,} images to "
        f"{'preprocess' if job.maker.route == 'preprocess' else 'explain with'} "
        f"{job.manifest['matched']}")
    if n == 1 or check_only:
        records = _records(job, progress)
        if not done or check_only:
            _early_check(job, records, sample, sum(len(p) for p in todo), say)
        if check_only:
            result.notes.append("check passed: run again without --check-only to align")
            return result
    if compute is None:
        _images(job, todo, progress)
    elif todo:
        result.notes += compute(job.work, todo)
    if n > 1:
        left = len(plan) - len(job.store.done("images", plan))
        result.notes.append(f"shard {k}/{n}: {len(todo)} part(s) written; {left} part(s) of "
                            f"{len(plan)} left. Once every shard is done, run again without "
                            "--shard to match and write the outputs")
        result.seconds = time.perf_counter() - started
        return result
    local = job.store.load("images", plan)
    assignment = matching.assign(matching.top2(records, local))
    report.write(out, assignment, job.entries, job.root, {
        "manifest": job.manifest, "records": published.url, "request": request},
        storage_options)
    job.store.remove()
    result.complete = True
    result.counts = {s: assignment.count(s) for s in ("matched", "ambiguous", "unmatched")}
    if result.counts["ambiguous"] or result.counts["unmatched"]:
        result.notes.append(f"records not matched get no image in {out} (a placeholder "
                            f"such as {report.placeholder('unmatched', 0)!r}, label -1); see "
                            f"{report.paths(out)[2]} for their candidates")
    result.seconds = time.perf_counter() - started
    return result


def _records(job: Job, progress: bool) -> np.ndarray:
    """The records' fingerprints, part by part (parts already there are read back)."""
    from tqdm import tqdm

    plan = parts_mod.plan(job.published.num_records, RECORD_PART)
    done = job.store.done("records", plan)
    with tqdm(total=sum(len(p) for p in plan if p.index not in done), unit="rec",
              desc="records", disable=not progress) as bar:
        for part in plan:
            if part.index not in done:
                job.store.save("records", part, job.published.fingerprints(
                    part.start, part.stop, bar.update))
    return job.store.load("records", plan)


def _early_check(job: Job, records: np.ndarray, sample: int, left: int,
                 say: Callable[[str], Any]) -> None:
    """Stop when too few of a sample of images match a record; print the estimate."""
    flat = ~np.any(records, axis=1)  # a constant map's fingerprint is the zero vector
    if flat.mean() >= 0.5:
        raise AlignmentError(
            f"{int(flat.sum()):,} of {len(records):,} records of {job.published.url} are "
            "constant maps (all zero or flat): they match no image. Align this model through "
            "another of its cells (--explainer Saliency reads its Saliency file), or with "
            "--route preprocess")
    rng = np.random.default_rng(0)
    picked = np.sort(rng.choice(len(job.entries), min(sample, len(job.entries)),
                                replace=False))
    entries = [job.entries[i] for i in picked]
    job.maker.batch([entries[0].path])  # builds and traces the graphs, untimed
    clock = time.perf_counter()
    found = job.maker.fingerprints(entries)
    seconds = (time.perf_counter() - clock) / len(entries)
    if (~np.any(found, axis=1)).mean() >= 0.5:
        raise AlignmentError(
            f"the maps recomputed here are constant on most sampled images (weights: "
            f"{job.manifest['weights']}): they match nothing. Choose another --explainer "
            "(Saliency, GradientInput) or the weights that made the file")
    near = matching.top2(found, records)
    hits = int((near.similarity >= matching.MIN_SIMILARITY).sum())
    expected = min(1.0, job.published.num_records / len(job.entries)) * len(entries)
    if expected < MIN_EXPECTED:  # e.g. 5 records for 230 images: no hit is likely
        blind = (f": too few records ({job.published.num_records:,} for "
                 f"{len(job.entries):,} images) for the sample to tell, not stopping")
    elif hits < STOP_FRACTION * expected:
        raise AlignmentError(
            f"only {hits} of {len(entries)} sampled images of {job.manifest['images']!r} "
            f"match a record of {job.published.url} (best similarities: median "
            f"{np.median(near.similarity):.3f}, needed >= {matching.MIN_SIMILARITY}): these "
            "are not the images of this file, or the model, weights or explainer differ "
            f"from those that made it (weights: {job.manifest['weights']}). Stopped before "
            "the full run")
    else:
        blind = ""
    say(f"sample: {hits} of {len(entries)} images match a record{blind}; estimate "
        f"{seconds:.3f} s/image here, {left * seconds / 60:.1f} min for {left:,} images "
        "(split with --shard K/N)")


def _images(job: Job, todo: list[parts_mod.Part], progress: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=sum(len(p) for p in todo), unit="img", desc="images",
              disable=not progress) as bar:
        for part in todo:
            job.work.write(job.maker, part, bar.update)
