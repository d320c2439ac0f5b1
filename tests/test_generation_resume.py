"""A generation run killed mid-way (SIGKILL) leaves nothing that looks complete, and resuming
it writes exactly the bytes of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dina_datasets import Layout, catalog, inspect, storage
from dina_datasets.generation import parts

pytest.importorskip("tensorflow")

TOY_MODULE = '''
def tiny(weights="none"):
    import tensorflow as tf
    inputs = tf.keras.Input((32, 32, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10, activation="softmax")(x))
'''
REGISTRY = '''
[models.Tiny]
factory = "dina_toy_models:tiny"
input_size = 32
rescale_mode = "torch"
'''
ARGS = ["--model", "Tiny", "--explainer", "Rise", "--weights", "none", "--batch-size", "64",
        "--part-size", "2", "--param", "nb_samples=2000", "--param", "grid_size=4"]
NUM_IMAGES, NUM_PARTS = 12, 6


@pytest.fixture
def setup(tmp_path, monkeypatch):
    from PIL import Image

    (tmp_path / "dina_toy_models.py").write_text(TOY_MODULE)
    (tmp_path / "registry.toml").write_text(REGISTRY)
    src = tmp_path / "images"
    src.mkdir()
    rng = np.random.default_rng(3)
    for i in range(NUM_IMAGES):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
            src / f"photo_{i:02d}.png")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path, str(src)
    if "Tiny" in catalog.MODELS:
        catalog.unregister("Tiny")


def command(tmp_path, src: str, out: str) -> tuple[list[str], dict]:
    code = "import sys; from dina_datasets.cli import main; sys.exit(main())"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]),
        TF_USE_LEGACY_KERAS="1", CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3")
    return [sys.executable, "-c", code, "generate", "--registry",
            str(tmp_path / "registry.toml"), "--images", src, "--out", out, *ARGS], env


def test_killed_run_resumes_to_identical_bytes(setup):
    tmp_path, src = setup
    out = str(tmp_path / "interrupted")
    url = Layout(out).explanations("Tiny", "Rise")
    folder = parts.parts_folder(url)
    cmd, env = command(tmp_path, src, out)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    first = os.path.join(folder, parts.plan(NUM_IMAGES, 2)[0].name)
    while not os.path.exists(first):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no part was completed in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Nothing that looks complete beyond the complete parts.
    assert not os.path.exists(url)
    names = sorted(os.listdir(folder))
    complete = [n for n in names if n.startswith("part-") and n.endswith(".tfrecord")]
    assert 1 <= len(complete) < NUM_PARTS, names
    for name in complete:
        assert inspect(os.path.join(folder, name)).num_records == 2
    others = set(names) - set(complete) - {"baseline.json"}
    assert all(storage.TMP_MARK in n for n in others), names

    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(complete)} already complete" in resumed.stdout
    assert not os.path.exists(folder)

    from dina_datasets.generation.pipeline import generate
    from dina_datasets.registry import load_registry

    load_registry(str(tmp_path / "registry.toml"))
    whole = str(tmp_path / "uninterrupted")
    generate("Tiny", "Rise", src, whole, weights="none", batch_size=64, part_size=2,
             params={"nb_samples": 2000, "grid_size": 4}, progress=False)
    with open(url, "rb") as a, open(Layout(whole).explanations("Tiny", "Rise"), "rb") as b:
        resumed_bytes, whole_bytes = a.read(), b.read()
    assert inspect(url).num_records == NUM_IMAGES
    assert resumed_bytes == whole_bytes
