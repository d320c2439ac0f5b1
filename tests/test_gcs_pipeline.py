"""The builder, generation and evaluation through gs:// against a real GCS server."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import BUCKET, TOY_RISE

from dina_datasets import Layout, load_dataset
from dina_datasets.cli import main
from dina_datasets.recordio import storage

pytest.importorskip("tensorflow")

NUM_IMAGES = 12


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


def wait_for(predicate, proc, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_generate_and_evaluate_killed_on_gs_leave_nothing_half_written(emulator, toy):
    server = emulator[0]
    tmp_path, images = toy.root, toy.images
    fs, _ = storage.filesystem(BUCKET, opts(server))
    out = f"{BUCKET}/contrib"
    url = Layout(out).explanations("Tiny", "Rise")
    env = toy.env(STORAGE_EMULATOR_HOST=f"127.0.0.1:{server.port}")

    def listing() -> list[str]:
        fs.invalidate_cache()
        return fs.find("xai-deel/contrib")

    generate = toy.command("generate", "--images", images, "--out", out, *TOY_RISE)
    proc = subprocess.Popen(generate, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: any(".parts/" in p and p.endswith(".tfrecord") for p in listing()), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert url.removeprefix("gs://") not in listing()
    assert not any(storage.TMP_MARK in p for p in listing())
    done = subprocess.run(generate, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "already complete" in done.stdout or "part(s) written" in done.stdout

    reference = str(tmp_path / "reference")
    assert main(["generate", "--registry", toy.registry, "--images", images,
                 "--out", reference, "--no-progress", *TOY_RISE]) == 0
    with open(Layout(reference).explanations("Tiny", "Rise"), "rb") as handle:
        assert fs.cat_file(url.removeprefix("gs://")) == handle.read()

    metrics = ["Sparseness", "Complexity", "Deletion", "Insertion"]
    evaluate = toy.command("evaluate", "--model", "Tiny", "--explainer", "Rise",
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
