"""Shared fixtures: small bucket-shaped folders written with the package's own writer."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

from dina_datasets import Layout, catalog, inspect, storage, write_explanations
from dina_datasets.recordio.records import explanation_record_size

# DINA's published grid as FACTS.md §1 states it, written out here rather than derived from the
# catalog, so that tests comparing the catalog or the builder with it can fail.
DINA_MODELS = ("BeitV2", "ConvNeXtV2", "DinoV2", "EfficientNetV2", "InceptionNeXt", "MaxVIT",
               "MLPMixer", "ResNest50", "ResNet50")
DINA_EXPLAINERS = ("Saliency", "GradCAM", "GradCAMPP", "VarGrad", "SmoothGrad", "SquareGrad",
                   "IntegratedGradients", "Rise", "GradientInput", "KernelShap", "Occlusion",
                   "Lime", "HsicAttributionMethod", "SobolAttributionMethod")
UNPUBLISHED = frozenset({"BeitV2-GradCAM", "BeitV2-GradCAMPP", "DinoV2-GradCAM",
                         "DinoV2-GradCAMPP", "MaxVIT-GradCAM", "MaxVIT-GradCAMPP",
                         "MLPMixer-GradCAM", "MLPMixer-GradCAMPP", "MaxVIT-Occlusion"})
THREE_CHANNELS = frozenset({"Saliency", "GradientInput", "IntegratedGradients", "SmoothGrad",
                            "VarGrad", "SquareGrad"})
PUBLISHED_CONFIGS = tuple(f"{m}-{e}" for m in DINA_MODELS for e in DINA_EXPLAINERS
                          if f"{m}-{e}" not in UNPUBLISHED)
DINA_METRICS = ("Insertion", "Deletion", "MuFidelity", "Sparseness", "Complexity",
                "RandomLogitMetric", "ModelRandomizationMetric01", "ModelRandomizationMetric05")

# The metrics whose scores depend on the output head, hence the activation score columns
# (the issue: Insertion, Deletion, MuFidelity and the randomization metrics).
ACTIVATION_METRICS = ("Insertion", "Deletion", "MuFidelity", "RandomLogitMetric",
                      "ModelRandomizationMetric01", "ModelRandomizationMetric05")
SCORE_COLUMNS = (*DINA_METRICS, *(f"{m}_sigmoid" for m in ACTIVATION_METRICS),
                 *(f"{m}_logits" for m in ACTIVATION_METRICS))
# Reference explainers (baselines) of every model, contributed, not published.
REFERENCE_EXPLAINERS = ("Sobel", "Laplace", "RandomExp")


def configs_with(channels: int) -> list[str]:
    """The published configs whose maps have `channels` channels."""
    return [n for n in PUBLISHED_CONFIGS if (n.split("-")[1] in THREE_CHANNELS) == (channels == 3)]


def make_maps(n: int, channels: int, seed: int = 0, size: int = catalog.MAP_SIZE) -> np.ndarray:
    """n deterministic float32 maps of shape (size, size, channels)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, size, size, channels)).astype(np.float32)


def make_bucket(root: str, configs: list[str], n: int = 5, *, scores: bool = True,
                keys: bool = False, size: int = catalog.MAP_SIZE) -> dict[str, np.ndarray]:
    """Write a bucket-shaped folder (explanations + score JSONs) under `root`.

    Returns the maps written per config. With `keys`, records carry index, image_id, label
    and prediction as the generation pipeline writes them. Randomization metrics cover the
    first min(n, 3) samples, mimicking the published 1,024-sample subset.
    """
    layout = Layout(root)
    written = {}
    for k, name in enumerate(configs):
        cell = catalog.Cell.from_name(name)
        maps = make_maps(n, cell.explainer_spec.channels, seed=k, size=size)
        extra = {}
        if keys:
            extra = dict(index=range(n), image_id=[f"img_{i:03d}" for i in range(n)],
                         label=[i % 7 for i in range(n)], prediction=[(i * 3) % 7
                                                                      for i in range(n)])
        write_explanations(layout.explanations(cell.model, cell.explainer), maps, **extra)
        if scores:
            for spec in catalog.METRICS.values():
                count = min(n, 3) if spec.subset else n
                values = np.random.default_rng(k).random(count).round(6).tolist()
                url = layout.scores(cell.model, cell.explainer, spec.name)
                from dina_datasets.storage import atomic_write

                with atomic_write(url, "w") as handle:
                    json.dump(values, handle)
        written[cell.name] = maps
    return written


STREAM_RECORDS = 12


@pytest.fixture(scope="module")
def stream_bucket(tmp_path_factory):
    """A bucket of two configs, 12 records each, shared by a test module: (root, maps)."""
    root = str(tmp_path_factory.mktemp("stream") / "bucket")
    return root, make_bucket(root, ["ResNet50-Saliency", "DinoV2-Rise"], n=STREAM_RECORDS)


def streaming(root: str, name: str = "ResNet50-Saliency", **config):
    """The streaming validation split of a config of a bucket-shaped folder."""
    from dina_datasets.hf.builder import DinaBuilder

    return DinaBuilder(config_name=name, data_url=root, **config).as_streaming_dataset(
        "validation")


@pytest.fixture
def bucket(tmp_path):
    """A local bucket with two configs (3-channel and 1-channel maps), 5 records each."""
    root = str(tmp_path / "bucket")
    maps = make_bucket(root, ["ResNet50-Saliency", "DinoV2-Rise"])
    return root, maps


BUCKET = "gs://xai-deel"
# Records of `make_bucket(keys=True)` carry index, image_id, label and prediction: 78 bytes.
RECORD = explanation_record_size((224, 224, 3)) + 78


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """The emulator holding a bucket-shaped `xai-deel` with two configs, and the local copy."""
    from gcs_server import Emulator

    server = Emulator()
    local = str(tmp_path_factory.mktemp("local"))
    maps = make_bucket(local, ["ResNet50-Saliency", "DinoV2-Rise"], n=6, keys=True)
    fs, _ = storage.filesystem(BUCKET, {"endpoint_url": server.endpoint})
    fs.put(local + "/", "xai-deel/", recursive=True)
    assert inspect(Layout(local).explanations("ResNet50", "Saliency")).record_size == RECORD
    yield server, local, maps
    server.stop()




TOY_MODEL = '''
def tiny(weights="none"):
    import tensorflow as tf
    inputs = tf.keras.Input((32, 32, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10, activation="softmax")(x))
'''
TOY_REGISTRY = ('[models.Tiny]\nfactory = "dina_toy_models:tiny"\ninput_size = 32\n'
                'rescale_mode = "torch"\n')
# A cheap but real Rise run of the toy model, in parts of 2 images.
TOY_RISE_PARAMS = {"nb_samples": 32, "grid_size": 4}
TOY_RISE = ["--model", "Tiny", "--explainer", "Rise", "--weights", "none", "--batch-size", "64",
            "--part-size", "2", "--param", "nb_samples=32", "--param", "grid_size=4"]
# Imported by a `ToyRun.command(..., kill_at=...)` process: SIGKILL at a chosen call, so that a
# test kills a run at a known point instead of racing it.
KILL_HOOK = '''
import importlib, os, signal


def arm(target, call):
    """SIGKILL this process when `target` ("module:attr.path") is called the `call`th time,
    before that call runs."""
    module_name, _, qualname = target.partition(":")
    owner = importlib.import_module(module_name)
    *path, attr = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original, calls = getattr(owner, attr), []

    def dying(*args, **kwargs):
        calls.append(None)
        if len(calls) == call:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, attr, dying)
'''


@dataclass
class ToyRun:
    """A registered 32x32 toy model (`Tiny`), its registry file and 12 small photos."""

    root: Path
    images: str
    registry: str

    def command(self, *argv: str, kill_at: tuple[str, int] | None = None) -> list[str]:
        """`dina ARGV` in a subprocess, with the toy registry; with `kill_at=(target, n)` the
        process SIGKILLs itself on the nth call of `target` ("module:attr.path")."""
        arm = (f"import dina_toy_kill; dina_toy_kill.arm({kill_at[0]!r}, {kill_at[1]}); "
               if kill_at else "")
        return [sys.executable, "-c", f"import sys; {arm}from dina_datasets.cli import main; "
                "sys.exit(main())", argv[0], "--registry", self.registry, *argv[1:]]

    def env(self, **extra: str) -> dict:
        return dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(self.root), *filter(None, [os.environ.get("PYTHONPATH")])]),
            TF_USE_LEGACY_KERAS="1", CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3",
            **extra)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    from PIL import Image

    (tmp_path / "dina_toy_models.py").write_text(TOY_MODEL)
    (tmp_path / "dina_toy_kill.py").write_text(KILL_HOOK)
    (tmp_path / "registry.toml").write_text(TOY_REGISTRY)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(3)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
            images / f"photo_{i:02d}.png")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield ToyRun(tmp_path, str(images), str(tmp_path / "registry.toml"))
    if "Tiny" in catalog.MODELS:
        catalog.unregister("Tiny")


@pytest.fixture(autouse=True, scope="module")
def _contributions_stay_in_their_module():
    """Models and explainers a test module registers (the planted model, toys) are removed
    after it, so no other module sees configs it did not make."""
    before = set(catalog.MODELS) | set(catalog.EXPLAINERS)
    yield
    for name in (set(catalog.MODELS) | set(catalog.EXPLAINERS)) - before:
        catalog.unregister(name)


@pytest.fixture
def fast_retries(monkeypatch):
    """Shorten the back-off sleeps of gcsfs and of our own retries; the logic is unchanged."""
    import gcsfs.retry

    real_sleep = asyncio.sleep

    async def short_sleep(_seconds):
        await real_sleep(0.01)

    monkeypatch.setattr(gcsfs.retry.asyncio, "sleep", short_sleep)
    monkeypatch.setattr(storage, "BACKOFF", 0.01)


# The modules that take longest (Ray actors, real architectures, killed runs, the browser)
# are collected first, so that `make test`'s two workers (pytest-xdist, a module per worker)
# do not end on one of them alone.
SLOW_FIRST = ("test_ray.py", "test_align.py", "test_demo.py", "test_models.py",
              "test_remote.py", "test_explore_browser.py",
              "test_gcs_pipeline.py", "test_evaluate_parts.py", "test_generation_resume.py",
              "test_generation.py")


def pytest_configure(config) -> None:
    """Processes that the tests start without naming a start method (torch DataLoader
    workers) come from a fork server, not from a fork of this process: a test process that
    has run TensorFlow and Ray (other modules of the same worker) crashed children forked
    from it (-11, seen in test runs). Fork itself is tested from fresh interpreters."""
    import multiprocessing

    multiprocessing.set_start_method("forkserver", force=True)
    # imported once by the fork server (a fresh process), not by each worker forked from it
    multiprocessing.set_forkserver_preload(["torch", "datasets", "dina_datasets.hf.batches",
                                            "dina_datasets.hf.random_access"])


def pytest_collection_modifyitems(items: list) -> None:
    rank = {name: k for k, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order kept
