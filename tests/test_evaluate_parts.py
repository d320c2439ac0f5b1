"""`dina evaluate` in parts: per-part score files written atomically, `--shard K/N`, resume
after a kill, and scores of other settings never mixed in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import make_bucket

from dina_datasets import Layout, catalog
from dina_datasets.cli import main
from dina_datasets.metrics import build
from dina_datasets.runs import score_parts
from dina_datasets.runs.parts import parts_folder
from dina_datasets.storage import TMP_MARK

MAPS = ["--metrics", "Sparseness", "Complexity"]


def scores(root: str, metric: str, config: str = "DinoV2-Rise") -> list:
    model, explainer = config.split("-", 1)
    with open(Layout(root).scores(model, explainer, metric)) as handle:
        return json.load(handle)


def listing(folder: str) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_shards_write_parts_and_the_last_joins_them(tmp_path, capsys):
    root = str(tmp_path / "bucket")
    maps = make_bucket(root, ["DinoV2-Rise"], n=5, scores=False, size=8)["DinoV2-Rise"]
    common = ["evaluate", "--model", "DinoV2", "--explainer", "Rise", "--data-url", root,
              *MAPS, "--part-size", "2"]
    assert main([*common, "--shard", "2/2"]) == 0  # parts 2 (maps 4-5 of 5)
    url = Layout(root).scores("DinoV2", "Rise", "Sparseness")
    assert not os.path.exists(url)
    assert listing(parts_folder(url)) == ["part-0000004-0000005.json", "run.json"]
    assert "1 of 3 parts scored" in capsys.readouterr().out
    assert main([*common, "--shard", "1/2"]) == 0  # parts 0 and 1, then the join
    assert "Sparseness: 5 scores" in capsys.readouterr().out
    assert not os.path.exists(parts_folder(url))
    whole = str(tmp_path / "whole")
    assert main(["evaluate", "--model", "DinoV2", "--explainer", "Rise", "--data-url", root,
                 "--out", whole, *MAPS]) == 0
    for metric in ("Sparseness", "Complexity"):
        with open(Layout(root).scores("DinoV2", "Rise", metric), "rb") as a, \
                open(Layout(whole).scores("DinoV2", "Rise", metric), "rb") as b:
            assert a.read() == b.read(), metric
        np.testing.assert_allclose(scores(root, metric), build(metric)(maps), rtol=1e-12)


def test_scores_of_other_settings_are_not_mixed_in(tmp_path, capsys):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=4, scores=False, size=8)
    common = ["evaluate", "--model", "DinoV2", "--explainer", "Rise", "--data-url", root,
              "--metrics", "Sparseness", "--part-size", "2"]
    assert main([*common, "--shard", "1/2"]) == 0
    url = Layout(root).scores("DinoV2", "Rise", "Sparseness")
    before = listing(parts_folder(url))
    assert main([*common, "--variant", "xplique"]) == 2
    err = capsys.readouterr().err
    assert "other settings (variant: 'dina' -> 'xplique')" in err and "--overwrite" in err
    assert listing(parts_folder(url)) == before and not os.path.exists(url)
    assert main([*common, "--variant", "xplique", "--overwrite"]) == 0
    assert "Sparseness: 4 scores" in capsys.readouterr().out
    assert not os.path.exists(parts_folder(url))
    for bad, match in ((["--shard", "3/2"], "between 1 and N"),
                       (["--part-size", "0"], "part size")):
        assert main([*common, *bad]) == 2
        assert match in capsys.readouterr().err


def test_a_killed_run_resumes_to_the_same_bytes(toy, tmp_path):
    """Deletion on a toy model, killed (SIGKILL) after its first part: the complete parts
    stay, the re-run scores only the others, and the files equal an uninterrupted run's."""
    pytest.importorskip("tensorflow")
    from dina_datasets.registry import load_registry

    load_registry(toy.registry)
    root = str(tmp_path / "bucket")
    make_bucket(root, ["Tiny-Saliency"], n=12, scores=False, size=32)  # 12 toy images
    args = ["--model", "Tiny", "--explainer", "Saliency", "--data-url", root, "--images",
            toy.images, "--assume-order", "--weights", "none", "--metrics", "Deletion",
            "Sparseness", "--batch-size", "2", "--part-size", "2"]
    url = Layout(root).scores("Tiny", "Saliency", "Deletion")
    folder = parts_folder(url)
    other = parts_folder(Layout(root).scores("Tiny", "Saliency", "Sparseness"))

    def complete(where: str) -> set[str]:
        return {n for n in listing(where) if n.startswith("part-") and TMP_MARK not in n}

    cmd, env = toy.command("evaluate", *args), toy.env()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    # a part is done when both metrics have it (killed between the two, it is scored again)
    while not complete(folder) & complete(other):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no part was scored in time"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [n for n in listing(folder) if n.startswith("part-") and TMP_MARK not in n]
    assert 1 <= len(done) < 6, done
    assert not os.path.exists(url)
    for name in done:
        values, seconds, _ = score_parts.read_part(os.path.join(folder, name), 2)
        assert len(values) == 2 and seconds > 0
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "already complete" in resumed.stdout
    assert "Deletion: 12 scores" in resumed.stdout
    assert not os.path.exists(folder)
    whole = str(tmp_path / "whole")
    assert main(["evaluate", *args, "--out", whole]) == 0
    for metric in ("Deletion", "Sparseness"):
        with open(Layout(root).scores("Tiny", "Saliency", metric), "rb") as a, \
                open(Layout(whole).scores("Tiny", "Saliency", metric), "rb") as b:
            assert a.read() == b.read(), metric


def test_part_names_cover_the_metric_subset():
    from dina_datasets.metrics.plan import Evaluation
    from dina_datasets.runs.parts import plan

    run = Evaluation(catalog.Cell("DinoV2", "Rise"), ["Sparseness", "RandomLogitMetric"],
                     "x", 10, {"Sparseness": 10, "RandomLogitMetric": 3}, "out", None,
                     "none", 4, 0, "dina", plan(10, 4), [])
    assert run.ranges("Sparseness") == [(0, 4), (4, 8), (8, 10)]
    assert run.ranges("RandomLogitMetric") == [(0, 3)]
    assert score_parts.part_name(0, 3) == "part-0000000-0000003.json"


def test_all_and_patterns_take_the_configs_present_and_a_missing_ray_extra_fails(
        tmp_path, capsys, monkeypatch):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise", "ResNet50-Rise"], n=2, scores=False, size=8)
    assert main(["evaluate", "--all", "--metrics", "Sparseness", "--data-url", root]) == 0
    out = capsys.readouterr().out
    assert out.count("Sparseness: 2 scores") == 2, out
    assert main(["evaluate", "--configs", "*-Rise", "--metrics", "Complexity", "--data-url",
                 root, "--out", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out.count("Complexity: 2 scores") == 2
    assert main(["evaluate", "--model", "DinoV2", "--configs", "DinoV2-Rise", "--metrics",
                 "Sparseness", "--data-url", root]) == 2
    assert "exactly one of them" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    out = str(tmp_path / "ray")
    assert main(["evaluate", "--configs", "DinoV2-Rise", "--metrics", "Sparseness",
                 "--data-url", root, "--out", out, "--engine", "ray"]) == 2
    assert "pip install 'dina-datasets[ray]'" in capsys.readouterr().err
    assert not os.path.exists(out)
