"""The builder, generation and evaluation through gs:// against a real GCS server."""

from __future__ import annotations

import json
import signal
import subprocess

import numpy as np
import pytest
from conftest import BUCKET, TOY_RISE

from dina_datasets import Layout, load_dataset, storage
from dina_datasets.cli import main

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


def test_generate_and_evaluate_killed_on_gs_leave_nothing_half_written(emulator, toy, capsys,
                                                                      monkeypatch):
    """Runs killed at a known point (SIGKILL inside the process, see `ToyRun.command`) leave
    only complete objects; resumed runs finish with the bytes of an uninterrupted one."""
    pytest.importorskip("tensorflow")
    server = emulator[0]
    tmp_path, images = toy.root, toy.images
    fs, _ = storage.filesystem(BUCKET, opts(server))
    out = f"{BUCKET}/contrib"
    url = Layout(out).explanations("Tiny", "Rise")
    host = f"127.0.0.1:{server.port}"
    env = toy.env(STORAGE_EMULATOR_HOST=host)

    def listing() -> list[str]:
        fs.invalidate_cache()
        return fs.find("xai-deel/contrib")

    # generate, killed on its 4th record: part 0 uploaded, part 1 half written.
    generate = ["generate", "--images", images, "--out", out, *TOY_RISE]
    killed = subprocess.run(toy.command(*generate, kill_at=("dina_datasets:RecordWriter.write",
                                                            4)),
                            env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    written = listing()
    assert url.removeprefix("gs://") not in written
    assert not any(storage.TMP_MARK in p for p in written)
    assert [p.rsplit("/", 1)[1] for p in written if p.endswith(".tfrecord")] == [
        "part-00000-of-00006.tfrecord"], written
    # Resumed (in-process: the state it resumes from is in the bucket).
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
    assert main([*generate, "--registry", toy.registry, "--no-progress"]) == 0
    assert "5 part(s) written, 1 already complete" in capsys.readouterr().out

    reference = str(tmp_path / "reference")
    assert main(["generate", "--registry", toy.registry, "--images", images,
                 "--out", reference, "--no-progress", *TOY_RISE]) == 0
    with open(Layout(reference).explanations("Tiny", "Rise"), "rb") as handle:
        assert fs.cat_file(url.removeprefix("gs://")) == handle.read()

    # evaluate, killed as it writes its 2nd score file (model-free metrics: no TensorFlow in
    # the subprocess); then resumed with the model's metrics too.
    metrics = ["Sparseness", "Complexity", "Deletion", "Insertion"]
    evaluate = ["evaluate", "--model", "Tiny", "--explainer", "Rise", "--data-url", out,
                "--images", images, "--weights", "none", "--batch-size", "4", "--metrics"]
    score_files = [Layout(out).scores("Tiny", "Rise", m).removeprefix("gs://") for m in metrics]
    killed = subprocess.run(toy.command(*evaluate, *metrics[:2], kill_at=(
        "dina_datasets.formats:write_scores", 2)), env=env, capture_output=True, text=True,
        timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    written = listing()
    assert [p for p in score_files if p in written] == score_files[:1]
    assert len(json.loads(fs.cat_file(score_files[0]))) == NUM_IMAGES
    assert not any(storage.TMP_MARK in p for p in written)
    assert main([*evaluate, *metrics, "--registry", toy.registry, "--no-progress"]) == 0
    for path in score_files:
        assert len(json.loads(fs.cat_file(path))) == NUM_IMAGES
