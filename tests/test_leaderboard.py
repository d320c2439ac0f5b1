"""`dina leaderboard`: summaries worked out by hand, ranks per model in the catalog's
direction, n per cell, paired verdicts and their markers, `--json` with the documented
keys, `--filter`, CSV / Markdown / PNG outputs, any fsspec URL, clear errors."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import uuid

import numpy as np
import pandas as pd
import pytest
from test_stats import N, write_planted

from dina_datasets import Layout
from dina_datasets.analysis import leaderboard
from dina_datasets.cli import main
from dina_datasets.errors import FormatError
from dina_datasets.storage import atomic_write

PAIRED_BY = "index"  # score files alone carry no record keys: the images pair by position
Z = 1.959963984540054


def write(root: str, model: str, explainer: str, metric: str, values) -> None:
    with atomic_write(Layout(root).scores(model, explainer, metric), "w") as handle:
        json.dump(values, handle)


@pytest.fixture
def scores(tmp_path):
    root = str(tmp_path / "bucket")
    write(root, "ResNet50", "Saliency", "Deletion", [1.0, 2.0, 3.0])
    write(root, "ResNet50", "Saliency", "Insertion", [0.5, None, 0.5])
    write(root, "ResNet50", "Rise", "Deletion", [4.0, 4.0, 7.0])
    write(root, "ResNet50", "Rise", "Insertion", [0.9, 0.7, 0.8])
    write(root, "DinoV2", "Rise", "Deletion", [9.0, 9.0])
    write(root, "DinoV2", "Rise", "MyMetric", [10.0])
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("planted") / "bucket")
    write_planted(root)
    return root


def test_summaries_by_hand(scores):
    board = leaderboard.collect(scores)
    assert board.configs == ["DinoV2-Rise", "ResNet50-Saliency", "ResNet50-Rise"]
    assert board.metrics == ["Insertion", "Deletion", "MyMetric"]  # catalog order, then others
    # [1, 2, 3]: mean 2, s = 1, half-width 1.96 / sqrt(3) = 1.1316
    entry = board.get("ResNet50-Saliency", "Deletion")
    assert (entry.n, entry.mean, entry.rank) == (3, 2.0, 1)
    assert entry.half_width == pytest.approx(Z / math.sqrt(3), rel=1e-9)
    # [4, 4, 7]: mean 5, s = sqrt(3) -> half-width 1.96
    assert board.get("ResNet50-Rise", "Deletion").half_width == pytest.approx(Z, rel=1e-9)
    # null is left out: [0.5, 0.5] -> n 2, mean 0.5, s = 0
    insertion = board.get("ResNet50-Saliency", "Insertion")
    assert (insertion.n, insertion.mean, insertion.half_width) == (2, 0.5, 0.0)
    # ranks per model: Deletion lower is better (2 < 5), Insertion higher (0.8 > 0.5); the
    # DinoV2 row is ranked among DinoV2's explainers only
    assert board.best("ResNet50", "Deletion") == "Saliency"
    assert board.best("ResNet50", "Insertion") == "Rise"
    assert board.best("DinoV2", "Deletion") == "Rise"
    assert board.best("DinoV2", "MyMetric") is None  # unknown direction: nothing ranked
    one = board.get("DinoV2-Rise", "MyMetric")
    assert one.n == 1 and math.isnan(one.half_width) and math.isnan(one.rank)
    # 3 images cannot reach alpha 0.01 at all (the signed-rank test's smallest p-value is
    # 2 / 2**3): no verdict, the leader is marked `few` and the board says why
    assert board.get("ResNet50-Saliency", "Deletion").marker == "few"
    text = board.text()
    assert "2 ± 1.1 n=3 #1 few" in text and "5 ± 2 n=3 #2" in text and "10 n=1" in text
    assert "Deletion (↓)" in text and "Insertion (↑)" in text and "≈ leader equivalent" in text
    assert "ResNet50 Deletion: too few images to tell (n=3; a verdict needs about" in text


def test_cli_writes_csv_markdown_and_png(scores, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["leaderboard", "--data-url", scores, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "ResNet50-Saliency" in printed and "wrote" in printed
    with open(f"{out}/leaderboard.csv") as handle:
        rows = {(r["model"], r["explainer"], r["metric"]): r for r in csv.DictReader(handle)}
    saliency = rows["ResNet50", "Saliency", "Deletion"]
    assert float(saliency["mean"]) == 2.0 and saliency["rank"] == "1" and saliency["n"] == "3"
    assert float(saliency["ci_low"]) == pytest.approx(2 - Z / math.sqrt(3), rel=1e-9)
    assert saliency["vs_next"] == "inconclusive" and saliency["marker"] == "few"
    assert rows["DinoV2", "Rise", "MyMetric"]["rank"] == ""
    with open(f"{out}/leaderboard_pairs.csv") as handle:
        pairs = list(csv.DictReader(handle))
    assert {(p["a"], p["b"], p["metric"]) for p in pairs} == {
        ("Saliency", "Rise", "Deletion"), ("Saliency", "Rise", "Insertion")}
    with open(f"{out}/leaderboard.md") as handle:
        markdown = handle.read()
    table = [[c.strip() for c in line.strip("|").split("|")]
             for line in markdown.splitlines() if line.startswith("|")]
    grades = [re.fullmatch(r"(.*?)(?: \[(reliable|questionable|unreliable)\])?", c)
              for c in table[0]]
    assert [g.group(1) for g in grades] == ["config", "Insertion (↑)", "Deletion (↓)",
                                            "MyMetric"]
    assert grades[1].group(2) and grades[2].group(2)  # each ranked metric shows its grade
    assert set(table[1][0]) <= {":", "-"}  # the header rule
    assert ["ResNet50-Saliency", "0.5 ± 0 n=2 #2", "**2 ± 1.1 n=3 #1 few**", ""] in table
    from PIL import Image

    with Image.open(f"{out}/leaderboard.png") as image:
        assert image.format == "PNG" and image.size[0] > 400 and image.size[1] > 300
        pixels = np.asarray(image.convert("RGB"))
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    assert red.sum() > 100  # the frames around the leaders


def test_json_document(planted, capsys):
    assert main(["leaderboard", "--data-url", planted, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"table", "pairs", "power", "flags"}
    assert {tuple(r) for r in document["table"]} == {leaderboard.JSON_TABLE} == {
        ("model", "explainer", "metric", "n", "mean", "ci_low", "ci_high", "rank")}
    assert {tuple(r) for r in document["pairs"]} == {leaderboard.JSON_PAIRS} == {
        ("model", "metric", "a", "b", "n", "statistic", "p_value", "p_adjusted", "effect",
         "mean_diff", "margin", "p_equivalence", "p_equivalence_adjusted", "verdict",
         "paired_by")}
    power = {(r["model"], r["metric"]): r for r in document["power"]}
    assert set(power) == {(m, x) for m in ("ResNet50", "DinoV2", "ConvNeXtV2")
                          for x in ("Insertion", "Complexity")}
    assert power["DinoV2", "Insertion"]["status"] == "enough images for the margin"
    assert power["DinoV2", "Insertion"]["n"] == N and power["DinoV2", "Insertion"]["pairs"] == 6
    table = {(r["model"], r["explainer"], r["metric"]): r for r in document["table"]}
    top = table["DinoV2", "Saliency", "Insertion"]
    assert top["rank"] == 1 and top["n"] == N and top["ci_low"] < top["mean"] < top["ci_high"]
    assert table["ResNet50", "GradCAM", "Insertion"]["rank"] is None  # degenerate
    pair = next(p for p in document["pairs"] if (p["model"], p["metric"], p["a"], p["b"]) ==
                ("DinoV2", "Insertion", "Saliency", "Rise"))
    assert pair["verdict"] == "better" and pair["p_adjusted"] < 0.001 and pair["n"] == N
    assert pair["paired_by"] == PAIRED_BY
    flags = {(f["model"], f["explainer"], f["metric"], f["flag"]) for f in document["flags"]}
    assert ("ResNet50", "GradCAM", "Insertion", "degenerate") in flags
    assert ("DinoV2", "Lime", "Insertion", "equivalent to RandomExp") in flags
    assert ("DinoV2", "Saliency", "Complexity", "worse than RandomExp") in flags


def test_markers_on_planted_data(planted):
    board = leaderboard.collect(planted)
    assert board.get("ResNet50-Saliency", "Insertion").marker == "*"  # better than the next
    assert board.get("ResNet50-GradCAM", "Insertion").marker == "degenerate"
    assert board.best("ResNet50", "Insertion") == "Saliency"  # not the degenerate GradCAM
    assert board.get("ResNet50-Lime", "Insertion").marker == "=R"
    assert board.get("ResNet50-Saliency", "Complexity").marker == "<R"
    # Complexity: Rise, Lime and RandomExp are tied up to noise -> the leader is marked ≈
    leader = board.best("ResNet50", "Complexity")
    assert "≈" in board.get(f"ResNet50-{leader}", "Complexity").marker
    text = board.text()
    assert f"n={N} #1 *" in text and "undefined n=0 degenerate" in text


def test_a_lone_explainer_gets_no_leader_mark(tmp_path):
    frame = pd.DataFrame({"model": "ResNet50", "explainer": "Saliency", "metric": "Insertion",
                          "activation": "softmax", "index": np.arange(20),
                          "image_id": [f"img_{i}" for i in range(20)], "label": 1,
                          "prediction": 1, "score": np.linspace(0.1, 0.9, 20)})
    board = leaderboard.from_table(frame)
    entry = board.get("ResNet50-Saliency", "Insertion")
    assert entry.rank == 1 and entry.marker == ""  # nothing to be distinguished from


def test_filter(planted, tmp_path, capsys):
    # kecam's json gives true labels: keep the images of class 1 (every 4th image)
    items = [{"image": f"ILSVRC2012_val_{i:08d}.JPEG", "label": i % 4} for i in range(N)]
    path = tmp_path / "imagenet_data.json"
    path.write_text(json.dumps({"info": {"base_path": "/x"}, "test": items}))
    assert main(["leaderboard", "--data-url", planted, "--imagenet-json", str(path),
                 "--filter", "class=1", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)["table"]
    assert {r["n"] for r in table if r["rank"] is not None} == {N // 4}
    # without predictions, `correct` leaves nothing: a clear error
    assert main(["leaderboard", "--data-url", planted, "--filter", "correct", "--json"]) == 2
    assert "need a table built with keys" in capsys.readouterr().err
    assert main(["leaderboard", "--data-url", planted, "--filter", "size=3"]) == 2
    assert "unknown filter 'size=3'" in capsys.readouterr().err


def test_any_fsspec_url():
    root = f"memory://lb-{uuid.uuid4().hex[:8]}"
    write(root, "MaxVIT", "Lime", "Complexity", [1.0, 3.0])
    write(root, "MaxVIT", "Occlusion", "Complexity", [0.5, 0.5])
    board = leaderboard.collect(root)
    assert board.get("MaxVIT-Lime", "Complexity").mean == 2.0
    assert board.best("MaxVIT", "Complexity") == "Occlusion"
    assert "MaxVIT,Occlusion,Complexity" in board.csv()


def test_scores_table_input(planted, tmp_path):
    from dina_datasets.analysis import scores

    path = str(tmp_path / "scores.parquet")
    scores.build(planted, path)
    by_table = leaderboard.collect(scores=path)
    by_folder = leaderboard.collect(planted)
    assert by_table.csv() == by_folder.csv()
    boot = leaderboard.collect(scores=path, ci="bootstrap", n_boot=200)
    entry = boot.get("DinoV2-Rise", "Insertion")
    assert entry.ci_low < entry.mean < entry.ci_high
    assert io.StringIO(boot.csv()).readline().startswith("model,explainer,metric,n,")


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
    assert main(["leaderboard", "--scores", str(tmp_path / "none.parquet")]) == 2
    assert "no scores table at" in capsys.readouterr().err
    write(root, "ResNet50", "Saliency", "Deletion", [1.0, 2.0])
    assert main(["leaderboard", "--data-url", root, "--alpha", "0"]) == 2
    assert "alpha must be between 0 and 1" in capsys.readouterr().err


def test_explainers_tied_at_the_top_share_the_rank_and_get_no_leader_mark():
    """Two explainers with equal means (the same scores) both rank 1, and neither is marked
    leader, though both beat the third clearly."""
    n = 40
    base = np.linspace(0.5, 0.9, n)
    rows = [pd.DataFrame({"model": "ResNet50", "explainer": e, "metric": "Insertion",
                          "activation": "softmax", "index": np.arange(n),
                          "image_id": [f"img_{i}" for i in range(n)], "label": 1,
                          "prediction": 1, "score": s})
            for e, s in (("Saliency", base), ("Rise", base), ("GradCAM", base - 0.4))]
    board = leaderboard.from_table(pd.concat(rows))
    top = [board.get(f"ResNet50-{e}", "Insertion") for e in ("Saliency", "Rise")]
    assert [t.rank for t in top] == [1, 1]
    assert all("*" not in t.marker and "≈" not in t.marker for t in top), top
    third = board.get("ResNet50-GradCAM", "Insertion")
    assert third.rank == 3 and third.marker == ""


def test_equivalence_margin_option(planted, capsys):
    """Lime = Rise + noise of 1e-6: equivalent within the default margin (a tenth of the
    spread), not within a margin of 1e-9 score units; a bad margin is refused."""
    def verdict(*extra):
        assert main(["leaderboard", "--data-url", planted, "--json", *extra]) == 0
        pairs = json.loads(capsys.readouterr().out)["pairs"]
        return next(p for p in pairs if (p["model"], p["metric"], p["a"], p["b"]) ==
                    ("DinoV2", "Insertion", "Rise", "Lime"))

    default = verdict()
    assert default["verdict"] == "equivalent" and 0 < default["margin"] < 0.1
    tight = verdict("--equivalence-margin", "1e-9", "--margin-units", "score")
    assert tight["verdict"] == "inconclusive" and tight["margin"] == 1e-9
    assert main(["leaderboard", "--data-url", planted, "--equivalence-margin", "0"]) == 2
    assert "equivalence margin must be a positive number" in capsys.readouterr().err


def test_a_tie_at_the_top_is_neither_framed_nor_bold():
    """The picture and the Markdown said "leader" of every #1 (a red frame, bold) though a
    tie at #1 has none: now neither; the lone leader keeps both."""
    import io

    from PIL import Image

    n = 40
    base = np.linspace(0.5, 0.9, n)

    def board(top: float):
        rows = [pd.DataFrame({"model": "ResNet50", "explainer": e, "metric": "Insertion",
                              "activation": "softmax", "index": np.arange(n),
                              "image_id": [f"img_{i}" for i in range(n)], "label": 1,
                              "prediction": 1, "score": s})
                for e, s in (("Saliency", base + top), ("Rise", base),
                             ("GradCAM", base - 0.4))]
        return leaderboard.from_table(pd.concat(rows))

    def red_pixels(png: bytes) -> int:
        rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
        return int(((rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)).sum())

    tied, led = board(0.0), board(0.1)
    assert [tied.get(f"ResNet50-{e}", "Insertion").leads for e in ("Saliency", "Rise")] == \
        [False, False]
    assert "**" not in tied.markdown() and red_pixels(tied.png()) == 0
    assert led.get("ResNet50-Saliency", "Insertion").leads
    assert "**" in led.markdown() and red_pixels(led.png()) > 50
