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


def test_scores_refuses_to_replace_a_users_file(bucket, tmp_path, capsys):
    notes = tmp_path / "existing.txt"
    notes.write_text("my notes\n")
    # checked before the work: the missing bucket is not even looked at
    assert main(["scores", "--data-url", str(tmp_path / "nope"), "--out", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "existing.txt exists and is not an output of this command" in err
    assert "--overwrite" in err and notes.read_text() == "my notes\n"
    assert main(["scores", "--data-url", bucket, "--out", str(notes)]) == 2
    assert notes.read_text() == "my notes\n"
    # a file under a file cannot be written: said before the work
    assert main(["scores", "--data-url", str(tmp_path / "nope"),
                 "--out", str(notes / "scores.parquet")]) == 2
    assert "existing.txt is a file, not a folder" in capsys.readouterr().err
    # a previous table is replaced; --overwrite replaces the user's file
    table = tmp_path / "scores.parquet"
    assert main(["scores", "--data-url", bucket, "--out", str(table)]) == 0
    assert main(["scores", "--data-url", bucket, "--out", str(table)]) == 0
    assert main(["scores", "--data-url", bucket, "--out", str(notes), "--overwrite"]) == 0
    assert pq.read_metadata(notes).num_rows == pq.read_metadata(table).num_rows > 0
    assert main(["scores", "--data-url", bucket, "--out", str(tmp_path)]) == 2
    assert "it is a folder" in capsys.readouterr().err


def test_leaderboard_checks_its_outputs_before_printing(bucket, tmp_path, capsys):
    existing = tmp_path / "FILE"
    existing.write_text("keep me\n")
    args = ["leaderboard", "--data-url", bucket, "--no-plot", "--no-progress"]
    assert main([*args, "--out", str(existing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "is a file" in captured.err
    assert existing.read_text() == "keep me\n"
    out = tmp_path / "board"
    out.mkdir()
    (out / "leaderboard.md").write_text("# my own notes\n")
    assert main([*args, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "leaderboard.md exists and is not an output" in captured.err
    assert (out / "leaderboard.md").read_text() == "# my own notes\n"
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.md"]
    assert main([*args, "--out", str(out), "--overwrite"]) == 0
    assert (out / "leaderboard.md").read_text().startswith("| config ")
    assert "wrote" in capsys.readouterr().out
    assert main([*args, "--out", str(out)]) == 0  # its own outputs are replaced
    for name in ("leaderboard.csv", "leaderboard_pairs.csv"):
        assert (out / name).read_text().startswith("model,")


def test_outputs_checked_on_gcs(emulator, capsys):
    from conftest import BUCKET

    from dina_datasets import storage

    server, _, _ = emulator
    options = ["--storage-option", f"endpoint_url={server.endpoint}"]
    fs, _ = storage.filesystem(BUCKET, {"endpoint_url": server.endpoint})
    notes = f"{BUCKET}/robust/notes.txt"
    fs.pipe(notes, b"my notes\n")
    assert main(["scores", *options, "--data-url", BUCKET, "--out", notes]) == 2
    assert "notes.txt exists and is not an output" in capsys.readouterr().err
    assert fs.cat(notes) == b"my notes\n"
    table = f"{BUCKET}/robust/scores.parquet"
    for _ in range(2):  # written, then its own table replaced
        assert main(["scores", *options, "--data-url", BUCKET, "--out", table]) == 0
    assert fs.cat(table)[:4] == b"PAR1"
    assert main(["leaderboard", *options, "--data-url", BUCKET, "--no-plot",
                 "--out", notes]) == 2
    captured = capsys.readouterr()
    assert "is a file, not a folder" in captured.err and "ResNet50" not in captured.out


def test_softmax_named_explicitly_is_a_stray_file(bucket, tmp_path):
    """Softmax scores have one name (`{metric}_scores.json`): a `.softmax.json` file beside it
    was silently dropped, and alone it stopped the whole bucket ("vanished while reading" of
    a file never there); now it is skipped with the warning naming it."""
    import os

    cell = "ResNet50/Saliency"
    clean = scores.build(bucket, str(tmp_path / "clean.parquet"))
    add_stray(bucket, f"{cell}/Insertion_scores.softmax.json")
    with pytest.warns(DinaWarning, match=r"Insertion_scores\.softmax\.json.*"
                      r"softmax scores are \{model\}/\{explainer\}/\{metric\}_scores\.json"):
        built = scores.build(bucket, str(tmp_path / "beside.parquet"))
    assert built.rows == clean.rows
    os.remove(f"{bucket}/{cell}/Insertion_scores.json")
    with pytest.warns(DinaWarning, match=r"Insertion_scores\.softmax\.json"):
        alone = scores.build(bucket, str(tmp_path / "alone.parquet"))
    assert alone.rows == clean.rows - 5
    assert not any(f.config == "ResNet50-Saliency" and f.metric == "Insertion"
                   for f in alone.files)


def test_a_folder_named_like_a_score_file_is_stray(bucket, tmp_path):
    """A folder `Foo_scores.json/` in a cell stopped the whole bucket (IsADirectoryError);
    now it is skipped with the warning naming it."""
    import os

    clean = scores.build(bucket, str(tmp_path / "clean.parquet"))
    os.makedirs(f"{bucket}/ResNet50/Saliency/Foo_scores.json")
    os.makedirs(f"{bucket}/ResNet50/Saliency/Foo_scores.logits.json")
    with pytest.warns(DinaWarning, match=r"skipped 2 unknown file\(s\).*Foo_scores\.json"):
        built = scores.build(bucket, str(tmp_path / "scores.parquet"))
    assert built.rows == clean.rows
