"""The scores table: every score file of a bucket-shaped folder (published and per
activation) in one Parquet file, streamed in row groups, written atomically, keys from
kecam's json, read concurrently from a real GCS server, queried with DuckDB, exported as the
`scores` config that stock `datasets.load_dataset` reads."""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

import datasets
import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import BUCKET, make_bucket

from dina_datasets import Layout, catalog, stats, storage
from dina_datasets.analysis import scores
from dina_datasets.cli import main
from dina_datasets.errors import AlignmentError, ConfigError, FormatError
from dina_datasets.formats import write_scores

CONFIGS = ["ResNet50-Saliency", "DinoV2-Rise"]
N = 5


@pytest.fixture
def bucket(tmp_path):
    root = str(tmp_path / "bucket")
    make_bucket(root, CONFIGS, n=N, size=8)
    # a metric variant with another output activation, with undefined values
    write_scores(Layout(root).scores("DinoV2", "Rise", "Insertion", "sigmoid"),
                 [0.25, math.nan, 0.75, 1.0, 0.0])
    return root


def expected_rows(root: str) -> dict[tuple[str, str, str, str], list]:
    """The values of every score file, read with json."""
    out = {}
    layout = Layout(root)
    for name in CONFIGS:
        cell = catalog.Cell.from_name(name)
        for metric in catalog.METRICS:
            with open(layout.scores(cell.model, cell.explainer, metric)) as handle:
                out[cell.model, cell.explainer, metric, "softmax"] = json.load(handle)
    with open(layout.scores("DinoV2", "Rise", "Insertion", "sigmoid")) as handle:
        out["DinoV2", "Rise", "Insertion", "sigmoid"] = json.load(handle)
    return out


def grouped(path: str) -> dict[tuple[str, str, str, str], list]:
    rows = pq.read_table(path).to_pylist()
    out: dict = {}
    for r in rows:
        out.setdefault((r["model"], r["explainer"], r["metric"], r["activation"]), []).append(r)
    return out


def test_table_holds_every_score(bucket, tmp_path):
    path = str(tmp_path / "scores.parquet")
    built = scores.build(bucket, path)
    table = pq.read_table(path)
    assert table.schema.names == list(scores.COLUMNS)
    assert [str(t) for t in table.schema.types] == ["string"] * 4 + [
        "int64", "string", "int64", "int64", "double", "string"]
    want = expected_rows(bucket)
    got = grouped(path)
    assert set(got) == set(want) and built.rows == table.num_rows == sum(map(len, want.values()))
    for key, values in want.items():
        rows = got[key]
        assert [r["score"] for r in rows] == values  # JSON null -> null
        assert [r["index"] for r in rows] == list(range(len(values)))
        assert {(r["image_id"], r["label"], r["prediction"]) for r in rows} == {("", -1, -1)}
        assert {r["settings"] for r in rows} == {"published"}  # no settings files
    assert len(got["DinoV2", "Rise", "RandomLogitMetric", "softmax"]) == 3  # the subset
    assert "73 scores from 17 score files of 2 configs" in built.summary()


def test_streams_row_groups_and_writes_atomically(bucket, tmp_path):
    path = str(tmp_path / "scores.parquet")
    scores.build(bucket, path, row_group_rows=12, concurrency=2)
    meta = pq.read_metadata(path)
    sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    assert meta.num_row_groups > 4 and max(sizes) < 12 + N and sum(sizes) == meta.num_rows
    before = Path(path).read_bytes()
    # a broken file late in the order: an error naming it, the old table untouched
    with open(Layout(bucket).scores("ResNet50", "Saliency", "Sparseness"), "w") as handle:
        handle.write("[0.5, ")
    with pytest.raises(FormatError, match="Sparseness_scores.json is not JSON"):
        scores.build(bucket, path, row_group_rows=12)
    assert Path(path).read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["bucket", "scores.parquet"]  # no temporary file


def test_keys_from_kecam_json(bucket, tmp_path):
    items = [{"image": f"val/ILSVRC2012_val_{i:08d}.JPEG", "label": 10 + i} for i in range(N)]
    kecam = tmp_path / "imagenet_data.json"
    kecam.write_text(json.dumps({"info": {"base_path": "/data"}, "test": items}))
    path = str(tmp_path / "scores.parquet")
    scores.build(bucket, path, imagenet_json=str(kecam))
    rows = grouped(path)["DinoV2", "Rise", "Deletion", "softmax"]
    assert [r["image_id"] for r in rows] == [f"ILSVRC2012_val_{i:08d}" for i in range(N)]
    assert [r["label"] for r in rows] == [10 + i for i in range(N)]
    assert {r["prediction"] for r in rows} == {-1}  # kecam's json has no predictions
    kecam.write_text(json.dumps({"test": items[:2]}))
    with pytest.raises(AlignmentError, match="holds 5 scores but .* has only 2 records"):
        scores.build(bucket, path, imagenet_json=str(kecam))


def test_keys_from_the_records_index(tmp_path):
    """Records that carry their keys: the sidecar index beside the maps gives them, without
    reading a map; they win over kecam's json, which fills what the records lack."""
    root = str(tmp_path / "bucket")
    make_bucket(root, CONFIGS, n=N, size=8, keys=True)  # img_00i, label i % 7, pred 3i % 7
    path = str(tmp_path / "scores.parquet")
    scores.build(root, path)
    rows = grouped(path)["ResNet50", "Saliency", "Insertion", "softmax"]
    assert [(r["index"], r["image_id"], r["label"], r["prediction"]) for r in rows] == [
        (i, f"img_{i:03d}", i % 7, (i * 3) % 7) for i in range(N)]
    kecam = tmp_path / "imagenet_data.json"
    kecam.write_text(json.dumps({"test": [{"image": f"x{i}.JPEG", "label": 99}
                                          for i in range(N)]}))
    scores.build(root, path, imagenet_json=str(kecam))
    assert grouped(path)["DinoV2", "Rise", "Deletion", "softmax"][1]["image_id"] == "img_001"
    # correct predictions: label == prediction only for image 0 (0 == 0)
    correct = stats.summary(path, ci="normal", filters=["correct"])
    assert (correct["n"] == 1).all()


def test_select_configs_metrics_activations(bucket, tmp_path):
    path = str(tmp_path / "s.parquet")
    scores.build(bucket, path, configs=["dinov2-*"], metrics=["Insertion", "Deletion"])
    assert set(grouped(path)) == {("DinoV2", "Rise", "Insertion", "softmax"),
                                  ("DinoV2", "Rise", "Deletion", "softmax"),
                                  ("DinoV2", "Rise", "Insertion", "sigmoid")}
    scores.build(bucket, path, activations=["sigmoid"])
    assert set(grouped(path)) == {("DinoV2", "Rise", "Insertion", "sigmoid")}
    with pytest.raises(ConfigError, match="no score files of config 'MaxVIT-Lime'; present: "
                                          "DinoV2-Rise, ResNet50-Saliency"):
        scores.build(bucket, path, configs=["MaxVIT-Lime"])


def test_duckdb_queries_the_table(bucket, tmp_path):
    path = str(tmp_path / "scores.parquet")
    scores.build(bucket, path)
    want = expected_rows(bucket)
    got = duckdb.sql(f"SELECT model, explainer, metric, activation, avg(score), count(score) "
                     f"FROM read_parquet('{path}') GROUP BY ALL").fetchall()
    assert len(got) == len(want)
    for model, explainer, metric, activation, mean, n in got:
        values = [v for v in want[model, explainer, metric, activation] if v is not None]
        assert n == len(values) and mean == pytest.approx(np.mean(values))
    # the activation filter of the statistics: softmax unless asked
    sigmoid = stats.summary(path, ci="normal", filters=["activation=sigmoid"])
    assert sigmoid[["explainer", "metric", "n", "n_undefined"]].values.tolist() == [
        ["Rise", "Insertion", 4, 1]]
    assert len(stats.summary(path, ci="normal")) == 2 * len(catalog.METRICS)


def test_cli(bucket, tmp_path, capsys):
    out = str(tmp_path / "scores.parquet")
    assert main(["scores", "--data-url", bucket, "--out", out]) == 0
    assert "scores from 17 score files of 2 configs" in capsys.readouterr().out
    assert pq.read_metadata(out).num_rows == sum(map(len, expected_rows(bucket).values()))
    assert main(["scores", "--data-url", str(tmp_path / "nope"), "--out", out]) == 2
    assert "no folder at" in capsys.readouterr().err
    assert main(["scores", "--data-url", bucket, "--configs", "Nope-*", "--out", out]) == 2
    assert "no score files of config 'Nope-*'" in capsys.readouterr().err
    assert main(["scores", "--data-url", bucket, "--concurrency", "0", "--out", out]) == 2
    assert "--concurrency must be a positive integer, got 0" in capsys.readouterr().err


def test_gcs_reads_concurrently(emulator, tmp_path, monkeypatch):
    server, local, _ = emulator
    options = {"endpoint_url": server.endpoint}
    fs, _ = storage.filesystem(BUCKET, options)
    inflight, peak, lock = [0], [0], threading.Lock()
    real = fs.cat_file

    def spy(path, *args, **kwargs):  # counts the real requests in flight
        with lock:
            inflight[0] += 1
            peak[0] = max(peak[0], inflight[0])
        try:
            return real(path, *args, **kwargs)
        finally:
            with lock:
                inflight[0] -= 1

    monkeypatch.setattr(fs, "cat_file", spy)  # fsspec hands out this same instance
    remote = f"{BUCKET}/tables/scores.parquet"
    scores.build(BUCKET, remote, storage_options=options, concurrency=8)
    assert peak[0] > 1
    scores.build(local, str(tmp_path / "local.parquet"))
    with fs.open(remote, "rb") as handle:
        assert pq.read_table(handle).equals(pq.read_table(str(tmp_path / "local.parquet")))
    # the statistics read the table from gs:// too (DuckDB through fsspec)
    summary = stats.summary(remote, ci="normal", storage_options=options)
    assert set(summary["model"]) == {"ResNet50", "DinoV2"}
    assert (summary["n"] == summary["metric"].map(lambda m: 3 if catalog.METRICS[m].subset
                                                  else 6)).all()


def test_export_adds_the_scores_config(tmp_path):
    from dina_datasets.hf.export import export

    bucket = str(tmp_path / "bucket")
    make_bucket(bucket, CONFIGS, n=3)
    out = str(tmp_path / "hub")
    found = export(["DinoV2-Rise"], out, data_url=bucket)
    assert [c.name for c in found] == ["DinoV2-Rise", "scores"]
    ds = datasets.load_dataset(out, "scores", split="validation",
                               cache_dir=str(tmp_path / "cache"))
    table = str(tmp_path / "dinov2.parquet")
    scores.build(bucket, table, configs=["DinoV2-Rise"])
    assert ds.num_rows == pq.read_metadata(table).num_rows
    assert ds.to_list() == pq.read_table(table).to_pylist()
    # exporting another config into the folder adds its scores to the table
    export(["ResNet50-Saliency"], out, data_url=bucket)
    ds = datasets.load_dataset(out, "scores", split="validation", streaming=True)
    assert {(r["model"], r["explainer"]) for r in ds} == {("DinoV2", "Rise"),
                                                          ("ResNet50", "Saliency")}
