"""`dina leaderboard`: summaries worked out by hand, best per column by the catalog's
direction, CSV / Markdown / PNG outputs, any fsspec URL, clear errors."""

from __future__ import annotations

import csv
import json
import math
import uuid

import numpy as np
import pytest

from dina_datasets import Layout, catalog, leaderboard
from dina_datasets.cli import main
from dina_datasets.errors import FormatError
from dina_datasets.recordio.storage import atomic_write


def write(root: str, model: str, explainer: str, metric: str, values) -> None:
    with atomic_write(Layout(root).scores(model, explainer, metric), "w") as handle:
        json.dump(values, handle)


@pytest.fixture
def scores(tmp_path):
    root = str(tmp_path / "bucket")
    write(root, "ResNet50", "Saliency", "Deletion", [1.0, 2.0, 3.0])
    write(root, "ResNet50", "Saliency", "Insertion", [0.5, None, 0.5])
    write(root, "DinoV2", "Rise", "Deletion", [4.0, 4.0, 7.0])
    write(root, "DinoV2", "Rise", "Insertion", [0.9, 0.7])
    write(root, "DinoV2", "Rise", "MyMetric", [10.0])
    return root


def test_summaries_by_hand(scores):
    board = leaderboard.collect(scores)
    assert board.configs == ["DinoV2-Rise", "ResNet50-Saliency"]  # catalog order of models
    assert board.metrics == ["Insertion", "Deletion", "MyMetric"]  # catalog order, then others
    # [1, 2, 3]: mean 2, s = 1, half-width 1.96 / sqrt(3) = 1.1316
    entry = board.get("ResNet50-Saliency", "Deletion")
    assert (entry.n, entry.mean) == (3, 2.0)
    assert entry.half_width == pytest.approx(1.959964 / math.sqrt(3), rel=1e-6)
    # [4, 4, 7]: mean 5, s = sqrt((1 + 1 + 4) / 2) = sqrt(3) -> 1.96 sqrt(3) / sqrt(3) = 1.96
    assert board.get("DinoV2-Rise", "Deletion").half_width == pytest.approx(1.959964, rel=1e-6)
    # null is left out: [0.5, 0.5] -> mean 0.5, s = 0
    insertion = board.get("ResNet50-Saliency", "Insertion")
    assert (insertion.n, insertion.mean, insertion.half_width) == (2, 0.5, 0.0)
    # Deletion: lower is better -> ResNet50-Saliency (2 < 5); Insertion: higher (0.8 > 0.5)
    assert board.best("Deletion") == "ResNet50-Saliency"
    assert board.best("Insertion") == "DinoV2-Rise"
    assert board.best("MyMetric") is None  # unknown direction: nothing marked
    one = board.get("DinoV2-Rise", "MyMetric")
    assert one.n == 1 and math.isnan(one.half_width)
    text = board.text()
    assert "2 ± 1.1 *" in text and "5 ± 2 " in text and "0.8 ± " in text
    assert "Deletion (↓)" in text and "Insertion (↑)" in text


def test_cli_writes_csv_markdown_and_png(scores, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["leaderboard", "--data-url", scores, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "ResNet50-Saliency" in printed and "wrote" in printed
    with open(f"{out}/leaderboard.csv") as handle:
        rows = {r["config"]: r for r in csv.DictReader(handle)}
    assert float(rows["ResNet50-Saliency"]["Deletion_mean"]) == 2.0
    assert rows["ResNet50-Saliency"]["Deletion_best"] == "1"
    assert rows["DinoV2-Rise"]["Deletion_best"] == "0"
    low = float(rows["ResNet50-Saliency"]["Deletion_ci_low"])
    assert low == pytest.approx(2 - 1.959964 / math.sqrt(3), rel=1e-6)
    assert rows["ResNet50-Saliency"]["MyMetric_mean"] == ""
    with open(f"{out}/leaderboard.md") as handle:
        markdown = handle.read()
    assert "| ResNet50-Saliency | 0.5 ± 0 | **2 ± 1.1** |" in markdown
    from PIL import Image

    with Image.open(f"{out}/leaderboard.png") as image:
        assert image.format == "PNG" and image.size[0] > 400 and image.size[1] > 300
        pixels = np.asarray(image.convert("RGB"))
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    assert red.sum() > 100  # the frames around the best cells


def test_published_shaped_bucket(bucket):
    root, _ = bucket
    board = leaderboard.collect(root)
    assert board.configs == ["DinoV2-Rise", "ResNet50-Saliency"]
    assert board.metrics == list(catalog.METRICS)
    for spec in catalog.METRICS.values():
        assert board.get("DinoV2-Rise", spec.name).n == (3 if spec.subset else 5)
    with open(Layout(root).scores("DinoV2", "Rise", "Sparseness")) as handle:
        values = json.load(handle)
    assert board.get("DinoV2-Rise", "Sparseness").mean == pytest.approx(np.mean(values))


def test_any_fsspec_url():
    root = f"memory://lb-{uuid.uuid4().hex[:8]}"
    write(root, "MaxVIT", "Lime", "Complexity", [1.0, 3.0])
    write(root, "MaxVIT", "Occlusion", "Complexity", [0.5, 0.5])
    board = leaderboard.collect(root)
    assert board.get("MaxVIT-Lime", "Complexity").mean == 2.0
    assert board.best("Complexity") == "MaxVIT-Occlusion"
    assert "MaxVIT-Occlusion" in board.csv()


def test_errors_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["leaderboard", "--data-url", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no score files under" in capsys.readouterr().err
    root = str(tmp_path / "bad")
    write(root, "ResNet50", "Saliency", "Deletion", {"mean": 1})
    with pytest.raises(FormatError, match="must hold a JSON list of numbers"):
        leaderboard.collect(root)
    assert not (tmp_path / "o").exists()
    assert main(["leaderboard", "--data-url", str(tmp_path / "missing")]) == 2
    assert "no folder at" in capsys.readouterr().err
