"""The embedded default: the whole DINA loop, offline, on real photographs.

Images (scikit-image's sample photographs) -> maps for 2 models x 4 explainers (1- and
3-channel) with random weights -> metric scores -> `load_dataset` map-style and streaming
into a torch DataLoader -> a Hub-native Parquet export read by stock `datasets` -> a
leaderboard -> pictures. Every step is the package's own public code.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# scikit-image sample photographs (public domain or CC0; see the dataset card).
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
MODELS = ("EfficientNetV2", "ResNet50")
EXPLAINERS = ("Saliency", "GradientInput", "GradCAM", "GradCAMPP")
# Fidelity, complexity and randomization, with the published parameters.
METRICS = ("Deletion", "Sparseness", "Complexity", "RandomLogitMetric")


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


def run(out: str = "demo_output", *, models: tuple[str, ...] = MODELS,
        explainers: tuple[str, ...] = EXPLAINERS, metrics: tuple[str, ...] = METRICS,
        batch_size: int = 8, say: Callable[[str], None] = print) -> DemoResult:
    """Run the loop into `out` (replaced); returns what was made."""
    from dina_datasets.generation.pipeline import generate
    from dina_datasets.metrics.evaluation import evaluate

    out = os.path.abspath(out)
    images, bucket = os.path.join(out, "images"), os.path.join(out, "bucket")
    for folder in (bucket, os.path.join(out, "hub")):
        shutil.rmtree(folder, ignore_errors=True)
    result = DemoResult(out)
    steps = 7

    def step(k: int, title: str) -> float:
        say(f"\n[{k}/{steps}] {title}")
        return time.perf_counter()

    started = step(1, f"images: {len(PHOTOS)} scikit-image photographs -> {images}")
    result.images = write_photos(images)
    say("  WEIGHTS ARE RANDOM: there is no network here, so the models are built with "
        "`--weights none` (seeded random initialisation). Maps and scores show that the "
        "pipeline works, not what a trained model attends to. On a machine with network, "
        "use `--weights pretrained` (kecam downloads them) or `--weights FILE`.")
    result.seconds["images"] = time.perf_counter() - started

    started = step(2, f"generate: {len(models)} models x {len(explainers)} explainers "
                      f"with DINA's hyperparameters -> {bucket}")
    for model in models:
        for explainer in explainers:
            say(f"  $ dina generate --model {model} --explainer {explainer} --images {images} "
                f"--out {bucket} --weights none --batch-size {batch_size}")
            made = generate(model, explainer, images, bucket, weights="none",
                            batch_size=batch_size, progress=True)
            say("  " + made.summary().replace("\n", "\n  "))
            result.configs.append(f"{model}-{explainer}")
    result.seconds["generate"] = time.perf_counter() - started

    started = step(3, f"evaluate: {', '.join(metrics)}")
    for config in result.configs:
        model, explainer = config.split("-", 1)
        say(f"  $ dina evaluate --model {model} --explainer {explainer} --metrics "
            f"{' '.join(metrics)} --data-url {bucket} --images {images} --weights none "
            f"--batch-size {4 * batch_size}")
        scored = evaluate(model, explainer, metrics, data_url=bucket, images=images,
                          weights="none", batch_size=4 * batch_size, progress=True)
        result.score_files += len(scored.written)
    result.seconds["evaluate"] = time.perf_counter() - started

    started = step(4, "load: dina_datasets.load_dataset('dina', ...) map-style and streaming "
                      "into a torch DataLoader")
    _load(result.configs, bucket, out, say)
    result.seconds["load"] = time.perf_counter() - started

    started = step(5, "export: a Hub-native Parquet repository, read back by stock "
                      "datasets.load_dataset")
    _export(result.configs[0], bucket, os.path.join(out, "hub"), say)
    result.seconds["export"] = time.perf_counter() - started

    started = step(6, "leaderboard")
    result.tables = _leaderboard(bucket, out, say)
    result.seconds["leaderboard"] = time.perf_counter() - started

    started = step(7, "pictures: maps over their images (rows: images, columns: explainers)")
    result.pictures = _pictures(models, explainers, bucket, images, out, say)
    result.seconds["pictures"] = time.perf_counter() - started

    started = time.perf_counter()
    say(f"\nreport: which explainer can I trust? $ dina report --data-url {bucket} --out "
        f"{os.path.join(out, 'report')}")
    result.tables.append(_report(bucket, out, say))
    result.seconds["report"] = time.perf_counter() - started
    return result


def _load(configs: list[str], bucket: str, out: str, say: Callable[[str], None]) -> None:
    import torch

    from dina_datasets import load_dataset

    cache = os.path.join(out, "hf_cache")
    for config in configs[:1] + configs[-1:]:
        rows = load_dataset("dina", config, split="validation", data_url=bucket,
                            cache_dir=cache)
        row = rows[0]
        say(f"  {config}: {rows.num_rows} rows; row 0: image_id={row['image_id']!r} "
            f"label={row['label']} prediction={row['prediction']} explanation "
            f"{len(row['explanation'])}x{len(row['explanation'][0])}x"
            f"{len(row['explanation'][0][0])} Deletion={row['Deletion']:.4g}")
    stream = load_dataset("dina", configs[0], split="validation", data_url=bucket,
                          streaming=True)
    loader = torch.utils.data.DataLoader(stream.with_format("torch"), batch_size=2,
                                         num_workers=2)
    shapes = [tuple(batch["explanation"].shape) for batch in loader]
    say(f"  streamed {configs[0]} through DataLoader(num_workers=2): batches {shapes}")


def _export(config: str, bucket: str, hub: str, say: Callable[[str], None]) -> None:
    import datasets

    from dina_datasets import load_dataset
    from dina_datasets.hf.export import export

    say(f"  $ dina export {config} --data-url {bucket} --out {hub}")
    export([config], hub, data_url=bucket)
    stock = datasets.load_dataset(hub, config, split="validation")
    ours = load_dataset("dina", config, split="validation", data_url=bucket,
                        cache_dir=os.path.join(os.path.dirname(hub), "hf_cache"))
    same = stock["index"] == ours["index"] and stock["explanation"] == ours["explanation"]
    say(f"  stock datasets.load_dataset({hub!r}, {config!r}): {stock.num_rows} rows, "
        f"{'identical to' if same else 'DIFFERENT FROM'} the builder's rows")
    if not same:
        raise RuntimeError("the export does not match the builder's rows")


def _leaderboard(bucket: str, out: str, say: Callable[[str], None]) -> list[str]:
    from dina_datasets.leaderboard import collect
    from dina_datasets.recordio import storage

    board = collect(bucket)
    say(board.text())
    paths = []
    for suffix, content in (("csv", board.csv()), ("md", board.markdown()),
                            ("png", board.png())):
        path = os.path.join(out, f"leaderboard.{suffix}")
        with storage.atomic_write(path, "wb") as handle:
            handle.write(content if isinstance(content, bytes) else content.encode())
        paths.append(path)
    return paths


def _pictures(models: tuple[str, ...], explainers: tuple[str, ...], bucket: str, images: str,
              out: str, say: Callable[[str], None]) -> list[str]:
    from dina_datasets import figures

    paths = []
    for model in models:
        configs = [f"{model}-{e}" for e in explainers]
        path = os.path.join(out, "figures", f"{model}.png")
        say(f"  $ dina show {' '.join(configs)} --index 0 1 2 3 --data-url {bucket} "
            f"--images {images} --out {path}")
        rows = figures.load_panels(configs, range(len(PHOTOS)), data_url=bucket,
                                   images=images)
        paths.append(figures.draw(rows, path))
    return paths


def _report(bucket: str, out: str, say: Callable[[str], None]) -> str:
    from dina_datasets import scores
    from dina_datasets.report import markdown_table, write_report

    table = os.path.join(out, "scores.parquet")
    say("  " + scores.build(bucket, table).summary())
    made = write_report(table, os.path.join(out, "report"))
    say("  " + markdown_table(made.frames["leaders"]).replace("\n", "\n  "))
    for row in made.frames["degenerate"].itertuples():
        say(f"  degenerate, not ranked: {row.model}-{row.explainer} under {row.metric} "
            f"({row.reason})")
    say(f"  {len(made.files)} files; read {os.path.join(out, 'report', 'report.md')}")
    return os.path.join(out, "report", "report.md")
