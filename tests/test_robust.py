"""A stray file under a cell is skipped with one warning (or fails with --strict), and
commands check their outputs before working (issue 23 item 5, issue 22 item 11)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import make_bucket

from dina_datasets import Layout
from dina_datasets.analysis import scores
from dina_datasets.cli import main
from dina_datasets.errors import DinaWarning, LayoutError

CONFIGS = ["ResNet50-Saliency", "DinoV2-Rise"]
STRAY = "ResNet50/Saliency/Insertion_scores.backup.json"


@pytest.fixture
def bucket(tmp_path):
    root = str(tmp_path / "bucket")
    make_bucket(root, CONFIGS, n=5, size=8)
    return root


def add_stray(root: str, *names: str) -> None:
    for name in names:
        with open(f"{root}/{name}", "w") as handle:
            json.dump([0.1, 0.2], handle)


def test_stray_file_is_skipped_with_one_warning(bucket, tmp_path):
    clean = scores.build(bucket, str(tmp_path / "clean.parquet"))
    other = "DinoV2/Rise/Deletion_scores.old.json"
    add_stray(bucket, STRAY, other)
    # a sidecar of a real score file and a cost record are known files, not stray
    add_stray(bucket, "DinoV2/Rise/Deletion_scores.json.settings.json",
              "DinoV2/Rise/Deletion_cost.softmax.json")
    with pytest.warns(DinaWarning) as caught:
        built = scores.build(bucket, str(tmp_path / "scores.parquet"))
    messages = [str(w.message) for w in caught if issubclass(w.category, DinaWarning)]
    assert len(messages) == 1
    assert STRAY in messages[0] and other in messages[0] and "2 unknown" in messages[0]
    assert "settings" not in messages[0] and "cost" not in messages[0]
    assert built.rows == clean.rows == pq.read_metadata(built.out).num_rows
    assert {f.activation for f in built.files} == {"softmax"}


def test_stray_file_fails_with_strict(bucket, tmp_path, capsys):
    add_stray(bucket, STRAY)
    out = tmp_path / "scores.parquet"
    with pytest.raises(LayoutError, match=r"unknown file\(s\) under .*Insertion_scores\.backup"):
        scores.build(bucket, str(out), strict=True)
    assert main(["scores", "--data-url", bucket, "--out", str(out), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "dina scores: error:" in err and STRAY in err and not out.exists()
    assert main(["scores", "--data-url", bucket, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "dina scores: warning: skipped 1 unknown file(s)" in captured.err
    assert STRAY in captured.err and "scores from 16 score files" in captured.out


def test_leaderboard_survives_a_stray_file(bucket, tmp_path, capsys):
    add_stray(bucket, STRAY)
    assert main(["leaderboard", "--data-url", bucket, "--json", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["table"] and STRAY in captured.err
    assert Layout(bucket).root == bucket
