"""Provenance of score files (issue 23, item 6): each score file `dina evaluate` writes has
its settings beside it; a re-run with other settings does not replace it silently; parts of
maps rewritten between shards are discarded; the scores table carries a settings id per row
and the statistics refuse to compare scores of different settings unless told."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import make_bucket, make_maps

from dina_datasets import Layout, write_explanations
from dina_datasets.cli import main
from dina_datasets.errors import ConfigError
from dina_datasets.metrics import build
from dina_datasets.runs import settings
from dina_datasets.runs.parts import parts_folder

CELL = ["--model", "DinoV2", "--explainer", "Rise"]


def read(url: str) -> list:
    with open(url) as handle:
        return json.load(handle)


def test_each_score_file_has_its_settings_and_other_settings_are_not_replaced(
        tmp_path, capsys):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=4, scores=False, size=8)
    layout = Layout(root)
    common = ["evaluate", *CELL, "--data-url", root, "--metrics", "Sparseness", "Complexity",
              "--part-size", "2"]
    assert main(common) == 0
    url = layout.scores("DinoV2", "Rise", "Sparseness")
    record = settings.read(layout.settings("DinoV2", "Rise", "Sparseness"))
    assert record is not None and record["format"] == settings.FORMAT
    assert record["metric"] == "Sparseness" and record["variant"] == "dina"
    assert record["count"] == 4 and record["maps"] and record["versions"]["numpy"]
    assert record["id"] == settings.identify(record) and len(record["id"]) == 12
    before = read(url)
    capsys.readouterr()

    # the same settings again, whole or one shard: nothing to do, no parts folder left
    for extra in ([], ["--shard", "1/2"]):
        assert main([*common, *extra]) == 0
        out = capsys.readouterr().out
        assert "Sparseness: already written with these settings (4 scores)" in out, out
        assert "parts scored" not in out
        assert not os.path.exists(parts_folder(url))

    # other settings: refused, naming what differs; the file and its settings stay
    assert main([*common, "--variant", "xplique"]) == 2
    err = capsys.readouterr().err
    assert "written with other settings" in err and "variant: 'dina' -> 'xplique'" in err
    assert "--overwrite" in err
    assert read(url) == before
    assert settings.read(layout.settings("DinoV2", "Rise", "Sparseness")) == record
    assert main([*common, "--variant", "xplique", "--overwrite"]) == 0
    other = settings.read(layout.settings("DinoV2", "Rise", "Sparseness"))
    assert other["variant"] == "xplique" and other["id"] != record["id"]


def test_a_published_score_file_is_not_replaced_without_overwrite(tmp_path, capsys):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=4, size=8)  # with score files, no settings
    url = Layout(root).scores("DinoV2", "Rise", "Sparseness")
    before = read(url)
    assert main(["evaluate", *CELL, "--data-url", root, "--metrics", "Sparseness"]) == 2
    err = capsys.readouterr().err
    assert "settings: published (no settings file)" in err and "--overwrite" in err
    assert read(url) == before


def test_parts_of_maps_rewritten_between_shards_are_discarded(tmp_path, capsys):
    """The issue's case: shard 1 scored the old maps, the maps were rewritten, shard 2
    scored the new ones; the joined file mixed both. Now the old parts are discarded."""
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=4, scores=False, size=8)
    common = ["evaluate", *CELL, "--data-url", root, "--metrics", "Sparseness",
              "--part-size", "2"]
    assert main([*common, "--shard", "1/2"]) == 0
    new = make_maps(4, 1, seed=7, size=8)
    write_explanations(Layout(root).explanations("DinoV2", "Rise"), new)
    capsys.readouterr()
    assert main([*common, "--shard", "2/2"]) == 0
    out, err = capsys.readouterr()
    assert "explanations.tfrecord changed since" in err and "1 part(s) are discarded" in err
    url = Layout(root).scores("DinoV2", "Rise", "Sparseness")
    assert "1 of 2 parts scored" in out and not os.path.exists(url)
    assert main([*common, "--shard", "1/2"]) == 0
    np.testing.assert_allclose(read(url), build("Sparseness")(new), rtol=1e-12)


def test_the_table_carries_settings_and_mixed_settings_are_not_compared(tmp_path):
    pytest.importorskip("duckdb")
    from dina_datasets.analysis import scores, stats

    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise", "DinoV2-Saliency"], n=6, scores=False, size=8)
    for explainer, variant in (("Rise", "dina"), ("Saliency", "xplique")):
        assert main(["evaluate", "--model", "DinoV2", "--explainer", explainer, "--data-url",
                     root, "--metrics", "Sparseness", "--variant", variant]) == 0
    path = str(tmp_path / "scores.parquet")
    scores.build(root, path)
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    ids = {r["explainer"]: r["settings"] for r in rows}
    layout = Layout(root)
    assert ids == {e: settings.read(layout.settings("DinoV2", e, "Sparseness"))["id"]
                   for e in ("Rise", "Saliency")}
    assert ids["Rise"] != ids["Saliency"]
    with pytest.raises(ConfigError, match=r"DinoV2 Sparseness \(softmax\).*differing: variant"):
        stats.summary(path)
    with pytest.raises(ConfigError, match="--allow-mixed-settings"):
        stats.pairs(path)
    table = stats.open_scores(path, allow_mixed_settings=True)
    assert set(stats.summary(table)["explainer"]) == {"Rise", "Saliency"}
    kept = stats.summary(path, filters=[f"settings={ids['Rise']}"])
    assert list(kept["explainer"]) == ["Rise"]


def test_the_leaderboard_refuses_mixed_settings_unless_allowed(tmp_path, capsys):
    pytest.importorskip("duckdb")
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise", "DinoV2-Saliency"], n=6, size=8)  # published scores
    assert main(["evaluate", "--model", "DinoV2", "--explainer", "Rise", "--data-url", root,
                 "--metrics", "Complexity", "--overwrite"]) == 0  # Rise's: evaluated here
    capsys.readouterr()
    board = ["leaderboard", "--data-url", root, "--json", "--no-progress"]
    assert main(board) == 2
    err = capsys.readouterr().err
    assert "DinoV2 Complexity (softmax)" in err and "published (Saliency)" in err
    assert "published vs evaluated here" in err and "--allow-mixed-settings" in err
    assert main([*board, "--allow-mixed-settings"]) == 0
    assert json.loads(capsys.readouterr().out)


def test_rows_without_a_settings_id_are_published_and_not_mixed_silently():
    """A frame (or joined tables) whose `settings` is null on some rows: those rows were
    compared with evaluated ones without a word (SQL min/max skip nulls); they are
    published scores, so the mix is refused, and `settings=published` keeps them."""
    pd = pytest.importorskip("pandas")
    from dina_datasets.analysis import stats

    n = 30
    rng = np.random.default_rng(1)

    def rows(explainer, setting):
        return pd.DataFrame({"model": "ResNet50", "explainer": explainer,
                             "metric": "Deletion", "activation": "softmax",
                             "index": np.arange(n), "image_id": [f"i{i}" for i in range(n)],
                             "label": -1, "prediction": -1, "score": rng.random(n),
                             "settings": setting})

    for missing in (None, ""):
        table = pd.concat([rows("Saliency", "abc123"), rows("Rise", missing)])
        with pytest.raises(ConfigError, match=r"abc123 \(Saliency\), published \(Rise\)"):
            stats.pairs(table)
        kept = stats.summary(table, ci="normal", filters=["settings=published"])
        assert list(kept["explainer"]) == ["Rise"]


def test_a_score_file_replaced_since_its_settings_is_not_taken_as_written(tmp_path, capsys):
    """The score file was replaced (2 scores) after `dina evaluate` wrote it and its
    settings (4): a re-run said "already written with these settings (4 scores)" and kept
    it; now refused without --overwrite, naming the counts, and rescored with it."""
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=4, scores=False, size=8)
    common = ["evaluate", *CELL, "--data-url", root, "--metrics", "Sparseness"]
    assert main(common) == 0
    url = Layout(root).scores("DinoV2", "Rise", "Sparseness")
    first = read(url)
    with open(url, "w") as handle:
        json.dump([0.5, 0.5], handle)
    capsys.readouterr()
    assert main(common) == 2
    err = capsys.readouterr().err
    assert "describes 4 scores, the file holds 2" in err and "--overwrite" in err
    assert read(url) == [0.5, 0.5]
    assert main([*common, "--overwrite"]) == 0
    assert read(url) == first
