"""`dina report` checks its outputs before working (issue 22 item 11): a user's file is refused
unless --overwrite; the command's own earlier outputs are replaced."""

from __future__ import annotations

import pytest
from conftest import make_bucket

from dina_datasets.analysis import scores
from dina_datasets.cli import main


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    base = tmp_path_factory.mktemp("outputs")
    make_bucket(str(base / "bucket"), ["ResNet50-Saliency", "DinoV2-Rise", "DinoV2-Lime"],
                n=6, size=8)
    path = str(base / "scores.parquet")
    scores.build(str(base / "bucket"), path)
    return path


def test_report_checks_its_outputs_first(table, tmp_path, capsys):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "report.md").write_text("# my notes\n")
    args = ["report", "--scores", table, "--filter", "metric=Insertion", "--n-boot", "20",
            "--stability-sizes", "3", "--stability-boot", "5", "--no-figures"]
    # checked before the work: the missing table is not even looked at
    assert main(["report", "--scores", str(tmp_path / "none.parquet"), "--out",
                 str(out)]) == 2
    assert "report.md exists and is not an output of this command" in capsys.readouterr().err
    assert main([*args, "--out", str(out)]) == 2
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]
    figures = tmp_path / "figs"
    (figures / "figures").mkdir(parents=True)
    (figures / "figures" / "cd_Insertion.png").write_bytes(b"my drawing")
    assert main([*args, "--out", str(figures)]) == 2
    assert "cd_Insertion.png exists and is not an output of `dina report`" in \
        capsys.readouterr().err
    assert main([*args, "--out", str(out), "--overwrite"]) == 0, capsys.readouterr().err
    assert (out / "report.md").read_text().startswith("# Which explainer can I trust?")
    assert main([*args, "--out", str(out)]) == 0  # its own report is replaced
    interrupted = tmp_path / "interrupted"
    (interrupted / "tables").mkdir(parents=True)
    for name in ("summary.csv", "summary.md"):
        (interrupted / "tables" / name).write_bytes((out / "tables" / name).read_bytes())
    assert main([*args, "--out", str(interrupted)]) == 0  # its own tables, no report.md yet
    (interrupted / "tables" / "summary.md").write_text("my summary\n")
    (interrupted / "report.md").unlink()
    assert main([*args, "--out", str(interrupted)]) == 2
    assert "summary.csv exists and is not an output" in capsys.readouterr().err
    notes = tmp_path / "file.txt"
    notes.write_text("x")
    assert main([*args, "--out", str(notes)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
