"""The embedded default: the whole DINA loop, offline, on real photographs.

Images (scikit-image's sample photographs) -> maps for 2 models x 4 explainers (1- and
3-channel) with random weights, and for the planted-truth model (whose right answer is
known; 64 small crops of the photographs) x 4 explainers -> metric scores -> `load_dataset`
map-style and streaming into a torch DataLoader -> a Hub-native Parquet export read by stock
`datasets` -> a leaderboard (with the planted model's verdict) -> pictures -> a report.
Every step is the package's own public code, and every `dina ...` line it prints runs as
printed.

The steps are one list, `STEPS`: each is a title and a function of the run (`Demo`), so a
step is added by appending to it. Where things live: `settings` (what is computed),
`session` (the run, its folder and printed commands), `photos` (the images), `production`
(images, maps, scores), `delivery` (loading and export), `findings` (leaderboard,
pictures, report, next steps). The demo writes only into a folder it created (it leaves a
`MARKER` file there) or an empty one, and refuses any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from dina_datasets.demo.delivery import export_maps, load_maps
from dina_datasets.demo.findings import leaderboard, next_steps, pictures, report
from dina_datasets.demo.photos import write_crops, write_photos
from dina_datasets.demo.production import (
    EVALUATE_PER_GENERATE,
    estimate_evaluate,
    evaluate_maps,
    generate_maps,
    make_images,
)
from dina_datasets.demo.session import (
    MARKER,
    REGISTRY,
    REPLACED,
    Demo,
    DemoResult,
    Step,
    claim_folder,
)
from dina_datasets.demo.settings import (
    EXPLAINERS,
    FULL,
    METRICS,
    MODELS,
    NB_STEPS,
    PHOTOS,
    PLANTED,
    PLANTED_IMAGES,
    PLANTED_METRICS,
    QUICK,
    Settings,
)

__all__ = ["EVALUATE_PER_GENERATE", "EXPLAINERS", "FULL", "MARKER", "METRICS", "MODELS",
           "NB_STEPS", "PHOTOS", "PLANTED", "PLANTED_IMAGES", "PLANTED_METRICS", "QUICK",
           "REGISTRY", "REPLACED", "STEPS", "Demo", "DemoResult", "Settings", "Step",
           "claim_folder", "estimate_evaluate", "next_steps", "run", "write_crops",
           "write_photos"]


def _evaluate_title(demo: Demo) -> str:
    s = demo.settings
    metrics = list(dict.fromkeys([*s.metrics, *(s.planted_metrics if s.planted_explainers
                                                 else ())]))
    steps = "/".join(m for m in ("Deletion", "Insertion") if m in metrics)
    return f"evaluate: {', '.join(metrics)}" + (
        f" ({steps} with {s.nb_steps} steps; published: 200)" if s.metric_params else "")


STEPS: list[Step] = [
    Step("images", lambda d: f"images: {len(d.settings.photos)} scikit-image photographs -> "
         f"{d.images}" + (f", and {d.settings.planted_images} 32x32 crops of them for the "
                          f"planted-truth model -> {d.planted_images}"
                          if d.settings.planted_explainers else ""), make_images),
    Step("generate", lambda d: f"generate: {len(d.settings.models)} model(s) x "
         f"{len(d.settings.explainers)} explainers with DINA's hyperparameters"
         + (f", and the planted-truth model x {len(d.settings.planted_explainers)}"
            if d.settings.planted_explainers else "") + f" -> {d.bucket}", generate_maps),
    Step("evaluate", _evaluate_title, evaluate_maps),
    Step("load", lambda d: "load: dina_datasets.load_dataset('dina', ...) map-style and "
         "streaming into a torch DataLoader", load_maps),
    Step("export", lambda d: "export: a Hub-native Parquet repository, read back by stock "
         "datasets.load_dataset", export_maps),
    Step("leaderboard", lambda d: "leaderboard", leaderboard),
    Step("pictures", lambda d: "pictures: maps over their images (rows: images, columns: "
         "explainers)", pictures),
    Step("report", lambda d: "report: which explainer can I trust? (paired tests, ranks, "
         "agreement, stability)", report),
]


def run(out: str = "demo_output", *, settings: Settings = FULL,
        models: tuple[str, ...] | None = None, explainers: tuple[str, ...] | None = None,
        metrics: tuple[str, ...] | None = None,
        planted_explainers: tuple[str, ...] | None = None, batch_size: int | None = None,
        say: Callable[[str], None] = print, steps: list[Step] | None = None) -> DemoResult:
    """Run the loop (`STEPS`) into `out`; returns what was made.

    `out` must be new, empty or an earlier demo's folder (`claim_folder`); `models`,
    `explainers`, `metrics`, `planted_explainers` (the planted-truth model's; () for none)
    and `batch_size` override the settings.
    """
    overrides = {k: v for k, v in (("models", models), ("explainers", explainers),
                                   ("metrics", metrics),
                                   ("planted_explainers", planted_explainers),
                                   ("batch_size", batch_size))
                 if v is not None}
    demo = Demo(replace(settings, **overrides), DemoResult(claim_folder(out)), say)
    steps = STEPS if steps is None else steps
    for k, step in enumerate(steps, 1):
        say(f"\n[{k}/{len(steps)}] {step.title(demo)}")
        started = time.perf_counter()
        step.run(demo)
        demo.result.seconds[step.name] = time.perf_counter() - started
    return demo.result
