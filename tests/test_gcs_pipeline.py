"""The builder, generation and evaluation through gs:// against a real GCS server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import BUCKET

from dina_datasets import Layout, catalog, load_dataset, storage
from dina_datasets.cli import main

pytest.importorskip("tensorflow")

TOY_MODULE = '''
def tiny(weights="none"):
    import tensorflow as tf
    inputs = tf.keras.Input((32, 32, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10, activation="softmax")(x))
'''
REGISTRY = '[models.Tiny]\nfactory = "dina_gcs_toy:tiny"\ninput_size = 32\nrescale_mode = "torch"\n'
GENERATE = ["--model", "Tiny", "--explainer", "Rise", "--weights", "none", "--batch-size", "64",
            "--part-size", "2", "--param", "nb_samples=2000", "--param", "grid_size=4"]
NUM_IMAGES = 10


def opts(server) -> dict:
    return {"endpoint_url": server.endpoint}


def rows_of(ds) -> list[dict]:
    return [{k: (np.asarray(v).tobytes() if k == "explanation" else v) for k, v in row.items()}
            for row in ds]


@pytest.mark.parametrize("config", ["ResNet50-Saliency", "DinoV2-Rise"])
def test_builder_over_gs_equals_local(emulator, tmp_path, config):
    server, local, _ = emulator
    common = dict(split="validation", cache_dir=str(tmp_path / "cache"))
    remote = load_dataset("dina", config, data_url=BUCKET, storage_options=opts(server),
                          **common)
    here = load_dataset("dina", config, data_url=local, **common)
    assert remote.num_rows == here.num_rows == 6
    assert rows_of(remote) == rows_of(here)
    streamed = load_dataset("dina", config, data_url=BUCKET, storage_options=opts(server),
                            split="validation", streaming=True)
    assert rows_of(streamed) == rows_of(here)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    from PIL import Image

    (tmp_path / "dina_gcs_toy.py").write_text(TOY_MODULE)
    (tmp_path / "registry.toml").write_text(REGISTRY)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(5)
    for i in range(NUM_IMAGES):
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(
            images / f"pic_{i:02d}.png")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path, str(images)
    if "Tiny" in catalog.MODELS:
        catalog.unregister("Tiny")


def dina(tmp_path, server, *argv: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from dina_datasets.cli import main; "
            "sys.exit(main())", argv[0], "--registry", str(tmp_path / "registry.toml"),
            *argv[1:]]


def env_for(tmp_path, server) -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]),
        STORAGE_EMULATOR_HOST=f"127.0.0.1:{server.port}", TF_USE_LEGACY_KERAS="1",
        CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3")


def wait_for(predicate, proc, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_generate_and_evaluate_killed_on_gs_leave_nothing_half_written(emulator, toy):
    server = emulator[0]
    tmp_path, images = toy
    fs, _ = storage.filesystem(BUCKET, opts(server))
    out = f"{BUCKET}/contrib"
    url = Layout(out).explanations("Tiny", "Rise")
    env = env_for(tmp_path, server)

    def listing() -> list[str]:
        fs.invalidate_cache()
        return fs.find("xai-deel/contrib")

    proc = subprocess.Popen(dina(tmp_path, server, "generate", "--images", images, "--out",
                                 out, *GENERATE), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    wait_for(lambda: any(".parts/" in p and p.endswith(".tfrecord") for p in listing()), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert url.removeprefix("gs://") not in listing()
    assert not any(storage.TMP_MARK in p for p in listing())
    done = subprocess.run(dina(tmp_path, server, "generate", "--images", images, "--out", out,
                               *GENERATE), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "already complete" in done.stdout or "part(s) written" in done.stdout

    reference = str(tmp_path / "reference")
    assert main(["generate", "--registry", str(tmp_path / "registry.toml"), "--images", images,
                 "--out", reference, "--no-progress", *GENERATE]) == 0
    with open(Layout(reference).explanations("Tiny", "Rise"), "rb") as handle:
        assert fs.cat_file(url.removeprefix("gs://")) == handle.read()

    metrics = ["Sparseness", "Complexity", "Deletion", "Insertion"]
    evaluate = dina(tmp_path, server, "evaluate", "--model", "Tiny", "--explainer", "Rise",
                    "--data-url", out, "--images", images, "--weights", "none",
                    "--batch-size", "4", "--metrics", *metrics)
    proc = subprocess.Popen(evaluate, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    score_files = [Layout(out).scores("Tiny", "Rise", m).removeprefix("gs://") for m in metrics]
    wait_for(lambda: any(p in listing() for p in score_files) or proc.poll() is not None, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for path in score_files:
        if path in listing():
            assert len(json.loads(fs.cat_file(path))) == NUM_IMAGES
    assert not any(storage.TMP_MARK in p for p in listing())
    done = subprocess.run(evaluate, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for path in score_files:
        assert len(json.loads(fs.cat_file(path))) == NUM_IMAGES
