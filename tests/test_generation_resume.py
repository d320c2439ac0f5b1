"""A generation run killed mid-way (SIGKILL) leaves nothing that looks complete, and resuming
it writes exactly the bytes of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from conftest import TOY_RISE

from dina_datasets import Layout, inspect
from dina_datasets.generation import parts
from dina_datasets.recordio import storage

pytest.importorskip("tensorflow")

NUM_IMAGES, NUM_PARTS = 12, 6


def test_killed_run_resumes_to_identical_bytes(toy):
    tmp_path, src = toy.root, toy.images
    out = str(tmp_path / "interrupted")
    url = Layout(out).explanations("Tiny", "Rise")
    folder = parts.parts_folder(url)
    cmd, env = toy.command("generate", "--images", src, "--out", out, *TOY_RISE), toy.env()
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
    indexes = {n + ".index.json" for n in complete}  # each complete part's index
    others = set(names) - set(complete) - indexes - {"baseline.json"}
    assert all(storage.TMP_MARK in n for n in others), names

    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(complete)} already complete" in resumed.stdout
    assert not os.path.exists(folder)

    from dina_datasets.generation.pipeline import generate
    from dina_datasets.registry import load_registry

    load_registry(toy.registry)
    whole = str(tmp_path / "uninterrupted")
    generate("Tiny", "Rise", src, whole, weights="none", batch_size=64, part_size=2,
             params={"nb_samples": 2000, "grid_size": 4}, progress=False)
    with open(url, "rb") as a, open(Layout(whole).explanations("Tiny", "Rise"), "rb") as b:
        resumed_bytes, whole_bytes = a.read(), b.read()
    assert inspect(url).num_records == NUM_IMAGES
    assert resumed_bytes == whole_bytes
