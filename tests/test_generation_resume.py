"""A generation run killed mid-way (SIGKILL) leaves nothing that looks complete, and resuming
it writes exactly the bytes of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from conftest import TOY_RISE, TOY_RISE_PARAMS

from dina_datasets import Layout, inspect, storage
from dina_datasets.runs import parts

pytest.importorskip("tensorflow")

NUM_IMAGES, NUM_PARTS = 12, 6
# Killed on its 4th record: part 0 (records 0-1) is complete, part 1 holds one record.
KILL_AT = ("dina_datasets:RecordWriter.write", 4)


def test_killed_run_resumes_to_identical_bytes(toy, capsys):
    from dina_datasets.cli import main
    from dina_datasets.generation.pipeline import generate

    tmp_path, src = toy.root, toy.images
    out = str(tmp_path / "interrupted")
    url = Layout(out).explanations("Tiny", "Rise")
    folder = parts.parts_folder(url)
    argv = ["generate", "--images", src, "--out", out, *TOY_RISE]
    killed = subprocess.run(toy.command(*argv, kill_at=KILL_AT), env=toy.env(),
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Nothing that looks complete beyond the complete part.
    assert not os.path.exists(url)
    names = sorted(os.listdir(folder))
    complete = [n for n in names if n.startswith("part-") and n.endswith(".tfrecord")]
    assert complete == [parts.plan(NUM_IMAGES, 2)[0].name], names
    assert inspect(os.path.join(folder, complete[0])).num_records == 2
    indexes = {n + ".index.json" for n in complete}  # each complete part's index
    costs = {n for n in names if n.endswith(parts.COST_SUFFIX)}  # cost records of parts
    assert costs <= {n.removesuffix(".tfrecord") + parts.COST_SUFFIX for n in complete}
    others = set(names) - set(complete) - indexes - costs - {"baseline.json"}
    assert others and all(storage.TMP_MARK in n for n in others), names

    # The resumed run (here in-process: what it resumes from is on disk) redoes parts 1-5.
    assert main([*argv, "--registry", toy.registry, "--no-progress"]) == 0
    assert f"{NUM_PARTS - 1} part(s) written, 1 already complete" in capsys.readouterr().out
    assert not os.path.exists(folder)

    whole = str(tmp_path / "uninterrupted")
    generate("Tiny", "Rise", src, whole, weights="none", batch_size=64, part_size=2,
             params=TOY_RISE_PARAMS, progress=False)
    with open(url, "rb") as a, open(Layout(whole).explanations("Tiny", "Rise"), "rb") as b:
        resumed_bytes, whole_bytes = a.read(), b.read()
    assert inspect(url).num_records == NUM_IMAGES
    assert resumed_bytes == whole_bytes
