"""The embedded default: the whole DINA loop, offline, on real photographs.

Images (scikit-image's sample photographs) -> maps for 2 models x 4 explainers (1- and
3-channel) with random weights, and for the planted-truth model (whose right answer is
known) x 4 explainers -> metric scores -> `load_dataset` map-style and streaming
into a torch DataLoader -> a Hub-native Parquet export read by stock `datasets` -> a
leaderboard (with the planted model's verdict) -> pictures -> a report. Every step is the
package's own public code.

The steps are one list, `STEPS`: each is a title and a function of the run (`Demo`), so a
step is added by appending to it. The demo writes only into a folder it created (it leaves
a `MARKER` file there) or an empty one, and refuses any other.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from dina_datasets.errors import ConfigError

# scikit-image sample photographs (public domain or CC0; see the dataset card).
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
MODELS = ("EfficientNetV2", "ResNet50")
EXPLAINERS = ("Saliency", "GradientInput", "GradCAM", "GradCAMPP")
# Fidelity, complexity and randomization.
METRICS = ("Deletion", "Sparseness", "Complexity", "RandomLogitMetric")
# Deletion/Insertion steps: the published scores use 200 (the catalog's); 20 keep the
# demo's forward passes (images x steps) ten times fewer, on the same definition.
NB_STEPS = 20
# The planted-truth model (dina_datasets.demo.planted, 32x32): its right answer is known, so its
# leaderboard must rank the gradient maps above the reference explainers.
PLANTED = ("Saliency", "IntegratedGradients", "Sobel", "RandomExp")
MARKER = ".dina-demo"
REPLACED = ("bucket", "hub")  # what a new run replaces inside its own folder


@dataclass(frozen=True)
class Settings:
    """What the demo computes."""

    models: tuple[str, ...] = MODELS
    explainers: tuple[str, ...] = EXPLAINERS
    metrics: tuple[str, ...] = METRICS
    photos: tuple[str, ...] = PHOTOS
    planted_explainers: tuple[str, ...] = PLANTED  # explainers of the planted-truth model
    nb_steps: int = NB_STEPS
    batch_size: int = 8

    @property
    def metric_params(self) -> dict[str, dict[str, int]]:
        return {m: {"nb_steps": self.nb_steps} for m in ("Deletion", "Insertion")
                if m in self.metrics}


FULL = Settings()
# `dina demo --quick`: one model, a 3-channel and a 1-channel explainer, no re-explaining;
# the planted model's Saliency against RandomExp (32x32 inputs: seconds).
QUICK = Settings(models=("ResNet50",), explainers=("Saliency", "GradCAM"),
                 metrics=("Deletion", "Sparseness", "Complexity"), photos=PHOTOS[:2],
                 nb_steps=10, planted_explainers=("Saliency", "RandomExp"))


@dataclass
class DemoResult:
    """What the demo made, and where."""

    out: str
    images: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    score_files: int = 0
    pictures: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Demo:
    """One run: its settings, folders, what it made so far, and where it speaks."""

    settings: Settings
    result: DemoResult
    say: Callable[[str], None] = print

    @property
    def out(self) -> str:
        return self.result.out

    @property
    def images(self) -> str:
        return os.path.join(self.out, "images")

    @property
    def bucket(self) -> str:
        return os.path.join(self.out, "bucket")


@dataclass(frozen=True)
class Step:
    """One step: a short name (for the timings), its title, and what it does."""

    name: str
    title: Callable[[Demo], str]
    run: Callable[[Demo], None]


def write_photos(folder: str, names: tuple[str, ...] = PHOTOS) -> list[str]:
    """Save scikit-image's sample photographs as PNG files; returns their paths."""
    from PIL import Image
    from skimage import data

    os.makedirs(folder, exist_ok=True)
    paths = []
    for name in names:
        path = os.path.join(folder, f"{name}.png")
        Image.fromarray(getattr(data, name)()).convert("RGB").save(path)
        paths.append(path)
    return paths


def claim_folder(out: str) -> str:
    """`out` as an absolute path, made ready for the demo: created with a MARKER file, or
    already the demo's (MARKER present) or empty; ConfigError for anything else."""
    out = os.path.abspath(out)
    marker = os.path.join(out, MARKER)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"--out {out} is a file: give a new folder (or an earlier demo's)")
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(marker):
        raise ConfigError(f"--out {out} exists and was not made by `dina demo` (no {MARKER} "
                          "file in it): the demo replaces its own bucket/ and hub/, so it only "
                          "writes into a new or empty folder, or an earlier demo's")
    os.makedirs(out, exist_ok=True)
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write("made by `dina demo`: a new run replaces bucket/ and hub/ here\n")
    for name in REPLACED:
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    return out


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


def _images(demo: Demo) -> None:
    demo.result.images = write_photos(demo.images, demo.settings.photos)
    demo.say("  WEIGHTS ARE RANDOM: there is no network here, so the models are built with "
             "`--weights none` (seeded random initialisation). Maps and scores show that the "
             "pipeline works, not what a trained model attends to. On a machine with network, "
             "use `--weights pretrained` (kecam downloads them) or `--weights FILE`.")


def _generate(demo: Demo) -> None:
    import warnings

    from dina_datasets.generation.pipeline import generate

    s = demo.settings
    pairs = [(m, e) for m in s.models for e in s.explainers]
    if s.planted_explainers:
        from dina_datasets.demo import planted

        planted.register()  # a contributed model, registered as a user's would be
        pairs += [(planted.NAME, e) for e in s.planted_explainers]
    for model, explainer in pairs:
        demo.say(f"  $ dina generate --model {model} --explainer {explainer} --images "
                 f"{demo.images} --out {demo.bucket} --weights none --batch-size "
                 f"{s.batch_size}")
        with warnings.catch_warnings():  # the count is in the summary
            warnings.simplefilter("ignore")
            made = generate(model, explainer, demo.images, demo.bucket, weights="none",
                            batch_size=s.batch_size, progress=True)
        demo.say("  " + made.summary().replace("\n", "\n  "))
        config = f"{model}-{explainer}"
        demo.result.configs.append(config)


# Wall time of the evaluate step over that of the generate step, measured in whole runs on
# this project's 2-core machine (both steps are CPU-bound, so the ratio holds under load):
# FULL 930 s / 599 s, QUICK 96 s / 157 s. Re-explaining (randomization metrics) is what
# makes the first larger.
EVALUATE_PER_GENERATE = {"randomization": 1.55, "other": 0.61}


def estimate_evaluate(demo: Demo) -> float:
    """Seconds the evaluate step should take here: the generate step's time on this machine,
    times the ratio measured in earlier runs."""
    from dina_datasets import catalog

    randomization = any(catalog.metric(m).family == "randomization"
                        for m in demo.settings.metrics)
    ratio = EVALUATE_PER_GENERATE["randomization" if randomization else "other"]
    return demo.result.seconds.get("generate", 0.0) * ratio


def _evaluate(demo: Demo) -> None:
    from dina_datasets.metrics.evaluation import evaluate

    s = demo.settings
    demo.say(f"  estimate: about {max(1, round(estimate_evaluate(demo) / 60))} min (the "
             "generate step's time here times the ratio measured in earlier runs)")
    params = " ".join(f"--metric-param {m}.{k}={v}" for m, kv in s.metric_params.items()
                      for k, v in kv.items())
    for config in demo.result.configs:
        model, explainer = config.split("-", 1)
        demo.say(f"  $ dina evaluate --model {model} --explainer {explainer} --metrics "
                 f"{' '.join(s.metrics)} {params} --data-url {demo.bucket} --images "
                 f"{demo.images} --weights none --batch-size {4 * s.batch_size}")
        scored = evaluate(model, explainer, s.metrics, data_url=demo.bucket,
                          images=demo.images, weights="none", batch_size=4 * s.batch_size,
                          metric_params=s.metric_params, progress=True)
        demo.result.score_files += len(scored.written)


def _load(demo: Demo) -> None:
    import torch

    from dina_datasets.hf.loading import load_dataset

    configs, bucket = demo.result.configs, demo.bucket
    cache = os.path.join(demo.out, "hf_cache")
    for config in dict.fromkeys(configs[:1] + configs[-1:]):
        rows = load_dataset("dina", config, split="validation", data_url=bucket,
                            cache_dir=cache)
        row = rows[0]
        deletion = row.get("Deletion")
        demo.say(f"  {config}: {rows.num_rows} rows; row 0: image_id={row['image_id']!r} "
                 f"label={row['label']} prediction={row['prediction']} explanation "
                 f"{len(row['explanation'])}x{len(row['explanation'][0])}x"
                 f"{len(row['explanation'][0][0])}"
                 + ("" if deletion is None else f" Deletion={deletion:.4g}"))
    stream = load_dataset("dina", configs[0], split="validation", data_url=bucket,
                          streaming=True)
    loader = torch.utils.data.DataLoader(stream.with_format("torch"), batch_size=2,
                                         num_workers=2)
    shapes = [tuple(batch["explanation"].shape) for batch in loader]
    demo.say(f"  streamed {configs[0]} through DataLoader(num_workers=2): batches {shapes}")


def _export(demo: Demo) -> None:
    import datasets

    from dina_datasets.hf.export import export
    from dina_datasets.hf.loading import load_dataset

    config, bucket, hub = demo.result.configs[0], demo.bucket, os.path.join(demo.out, "hub")
    demo.say(f"  $ dina export {config} --data-url {bucket} --out {hub}")
    export([config], hub, data_url=bucket)
    stock = datasets.load_dataset(hub, config, split="validation")
    ours = load_dataset("dina", config, split="validation", data_url=bucket,
                        cache_dir=os.path.join(demo.out, "hf_cache"))
    same = stock["index"] == ours["index"] and stock["explanation"] == ours["explanation"]
    demo.say(f"  stock datasets.load_dataset({hub!r}, {config!r}): {stock.num_rows} rows, "
             f"{'identical to' if same else 'DIFFERENT FROM'} the builder's rows; its "
             "README.md says they were generated here, with random weights")
    if not same:
        raise RuntimeError("the export does not match the builder's rows")


def _leaderboard(demo: Demo) -> None:
    from dina_datasets import storage
    from dina_datasets.analysis.leaderboard import collect

    board = collect(demo.bucket)
    demo.say(board.text())
    from dina_datasets.demo import planted

    if demo.settings.planted_explainers:
        demo.say(planted.verdict(board))
    for suffix, content in (("csv", board.csv()), ("md", board.markdown()),
                            ("png", board.png())):
        path = os.path.join(demo.out, f"leaderboard.{suffix}")
        with storage.atomic_write(path, "wb") as handle:
            handle.write(content if isinstance(content, bytes) else content.encode())
        demo.result.tables.append(path)


def _pictures(demo: Demo) -> None:
    from dina_datasets.demo import planted
    from dina_datasets.viz import figures

    s, indices = demo.settings, range(len(demo.result.images))
    rows_of = [(m, s.explainers) for m in s.models]
    if s.planted_explainers:
        rows_of.append((planted.NAME, s.planted_explainers))
    for model, explainers in rows_of:
        configs = [f"{model}-{e}" for e in explainers]
        path = os.path.join(demo.out, "figures", f"{model}.png")
        demo.say(f"  $ dina show {' '.join(configs)} --index {' '.join(map(str, indices))} "
                 f"--data-url {demo.bucket} --images {demo.images} --out {path}")
        rows = figures.load_panels(configs, indices, data_url=demo.bucket, images=demo.images)
        demo.result.pictures.append(figures.draw(rows, path))


def _report(demo: Demo) -> None:
    from dina_datasets.analysis import scores
    from dina_datasets.analysis.report import markdown_table, write_report

    table = os.path.join(demo.out, "scores.parquet")
    folder = os.path.join(demo.out, "report")
    demo.say(f"  $ dina scores --data-url {demo.bucket} --out {table}")
    demo.say("  " + scores.build(demo.bucket, table).summary())
    demo.say(f"  $ dina report --scores {table} --out {folder}")
    made = write_report(table, folder)
    demo.say("  " + markdown_table(made.frames["leaders"]).replace("\n", "\n  "))
    for row in made.frames["degenerate"].itertuples():
        demo.say(f"  degenerate, not ranked: {row.model}-{row.explainer} under {row.metric} "
                 f"({row.reason})")
    demo.say(f"  {len(made.files)} files; read {os.path.join(folder, 'report.md')}")
    demo.result.tables.append(os.path.join(folder, "report.md"))


STEPS: list[Step] = [
    Step("images", lambda d: f"images: {len(d.settings.photos)} scikit-image photographs -> "
         f"{d.images}", _images),
    Step("generate", lambda d: f"generate: {len(d.settings.models)} model(s) x "
         f"{len(d.settings.explainers)} explainers with DINA's hyperparameters"
         + (f", and the planted-truth model x {len(d.settings.planted_explainers)}"
            if d.settings.planted_explainers else "") + f" -> {d.bucket}", _generate),
    Step("evaluate", lambda d: f"evaluate: {', '.join(d.settings.metrics)}"
         + (f" (Deletion/Insertion with {d.settings.nb_steps} steps; published: 200)"
            if d.settings.metric_params else ""), _evaluate),
    Step("load", lambda d: "load: dina_datasets.load_dataset('dina', ...) map-style and "
         "streaming into a torch DataLoader", _load),
    Step("export", lambda d: "export: a Hub-native Parquet repository, read back by stock "
         "datasets.load_dataset", _export),
    Step("leaderboard", lambda d: "leaderboard", _leaderboard),
    Step("pictures", lambda d: "pictures: maps over their images (rows: images, columns: "
         "explainers)", _pictures),
    Step("report", lambda d: "report: which explainer can I trust? (paired tests, ranks, "
         "agreement, stability)", _report),
]
