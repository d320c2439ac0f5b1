"""Cost per image: `dina generate` records every part's cost in the manifest beside the maps,
`dina evaluate` one record beside each score file; `dina_datasets.analysis.cost` reads them into a
table and sets them against the scores (cost vs quality), as CSV, PNG and SVG."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from dina_datasets import Layout, catalog
from dina_datasets.analysis import cost
from dina_datasets.cli import main
from dina_datasets.demo import planted
from dina_datasets.runs import cost as cost_records

tf = pytest.importorskip("tensorflow")
from dina_datasets.generation.merge import merge  # noqa: E402
from dina_datasets.generation.pipeline import generate  # noqa: E402
from dina_datasets.metrics.evaluation import evaluate  # noqa: E402
from dina_datasets.runs.parts import manifest_url  # noqa: E402

IMAGES = 7
DEVICE = "GPU: " if tf.config.list_physical_devices("GPU") else "CPU: "  # tests hide GPUs


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """Planted-Sobel in two shards of parts of 3 (merged), Planted-RandomExp in one run;
    both scored with Deletion and Sparseness, and Planted-Sobel with Deletion on logits."""
    from PIL import Image

    root = tmp_path_factory.mktemp("cost")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(9)
    for i in range(IMAGES):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(
            images / f"im_{i}.png")
    planted.register()
    out = str(root / "bucket")
    for shard in ("1/2", "2/2"):
        generate(planted.NAME, "Sobel", str(images), out, weights="none", batch_size=2,
                 part_size=3, shard=shard, write_preprocess=True, progress=False)
    merge(out, planted.NAME, "Sobel")
    generate(planted.NAME, "RandomExp", str(images), out, weights="none", batch_size=4,
             progress=False)
    for explainer in ("Sobel", "RandomExp"):
        evaluate(planted.NAME, explainer, ["Deletion", "Sparseness"], data_url=out,
                 weights="none", batch_size=8, progress=False)
    evaluate(planted.NAME, "Sobel", ["Deletion"], data_url=out, weights="none", batch_size=8,
             activation="logits", progress=False)
    yield out
    catalog.unregister(planted.NAME)


def _json(path):
    with open(path) as handle:
        return json.load(handle)


def test_generation_records_every_part_in_the_manifest(bucket):
    manifest = _json(manifest_url(Layout(bucket).explanations(planted.NAME, "Sobel")))
    parts = manifest["cost"]
    assert [p["part"] for p in parts] == [0, 1, 2]
    assert [p["images"] for p in parts] == [3, 3, 1]
    assert [p["shard"] for p in parts] == ["1/2", "1/2", "2/2"]
    for p in parts:
        assert p["format"] == cost_records.FORMAT and p["kind"] == "generate"
        assert p["batch_size"] == 2
        assert 0 < p["explain_seconds"] <= p["wall_seconds"] < 60
        assert math.isclose(p["seconds_per_image"], p["explain_seconds"] / p["images"])
        assert p["device"].startswith(DEVICE) and len(p["device"]) > len(DEVICE)
        versions = p["versions"]
        assert {"python", "numpy", "tensorflow", "dina-datasets"} <= set(versions)
        assert versions["numpy"] == np.__version__
    assert not os.path.exists(Layout(bucket).explanations(planted.NAME, "Sobel") + ".parts")
    assert manifest["num_images"] == IMAGES and len(manifest["images"]) == IMAGES


def test_evaluate_writes_a_cost_record_beside_each_score_file(bucket):
    layout = Layout(bucket)
    for activation in ("softmax", "logits"):
        record = _json(layout.cost(planted.NAME, "Sobel", "Deletion", activation))
        assert record["kind"] == "evaluate" and record["activation"] == activation
        assert (record["model"], record["explainer"], record["metric"]) == (
            planted.NAME, "Sobel", "Deletion")
        assert record["images"] == IMAGES and record["batch_size"] == 8
        assert 0 < record["seconds"] <= record["wall_seconds"]
        assert math.isclose(record["seconds_per_image"], record["seconds"] / IMAGES)
        assert record["device"].startswith(DEVICE) and "numpy" in record["versions"]
    assert os.path.basename(layout.cost(planted.NAME, "Sobel", "Deletion")) == \
        "Deletion_cost.softmax.json"
    sparse = _json(layout.cost(planted.NAME, "RandomExp", "Sparseness"))
    assert sparse["seconds"] < _json(layout.cost(planted.NAME, "RandomExp", "Deletion"))[
        "seconds"]  # no model: far cheaper than 200 forward passes per image
    assert not os.path.exists(layout.cost(planted.NAME, "Sobel", "Sparseness", "logits"))


def test_the_table_reads_every_record(bucket):
    rows = cost.collect(bucket)
    generated = {r.explainer: r for r in rows if r.kind == "generate"}
    assert set(generated) == {"Sobel", "RandomExp"}
    assert generated["Sobel"].images == IMAGES and generated["Sobel"].batch_size == 2
    parts = _json(manifest_url(Layout(bucket).explanations(planted.NAME, "Sobel")))["cost"]
    assert math.isclose(generated["Sobel"].seconds_per_image,
                        sum(p["explain_seconds"] for p in parts) / IMAGES)
    evaluated = {(r.explainer, r.metric, r.activation) for r in rows if r.kind == "evaluate"}
    assert evaluated == {("Sobel", "Deletion", "softmax"), ("Sobel", "Sparseness", "softmax"),
                         ("RandomExp", "Deletion", "softmax"),
                         ("RandomExp", "Sparseness", "softmax"),
                         ("Sobel", "Deletion", "logits")}
    text = cost.csv_text(rows).splitlines()
    assert text[0].split(",") == list(cost.COLUMNS) and len(text) == 1 + len(rows)


def test_cost_against_quality(bucket):
    rows = cost.collect(bucket)
    points = cost.cost_quality(rows, bucket)
    assert {(p.explainer, p.metric) for p in points} == {
        (e, m) for e in ("Sobel", "RandomExp") for m in ("Deletion", "Sparseness")}
    for p in points:
        scores = _json(Layout(bucket).scores(p.model, p.explainer, p.metric))
        assert p.n == IMAGES and math.isclose(p.mean, float(np.mean(scores)))
        assert p.reference  # both are reference explainers
        row = next(r for r in rows if r.kind == "generate" and r.explainer == p.explainer)
        assert math.isclose(p.seconds_per_image, row.seconds_per_image)
    png, svg = cost.draw(points, "png"), cost.draw(points, "svg")
    assert png.startswith(b"\x89PNG") and len(png) > 5_000
    assert b"<svg" in svg[:500] and b"Sobel" in svg


def test_dina_cost_writes_tables_and_pictures(bucket, tmp_path, capsys):
    out = str(tmp_path / "report")
    assert main(["cost", "--data-url", bucket, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "s/image" in printed and "Deletion (logits)" in printed
    assert sorted(os.listdir(out)) == sorted(["cost.csv", "cost_quality.csv",
                                              "cost_quality.png", "cost_quality.svg"])
    assert main(["cost", "--data-url", str(tmp_path / "nowhere"), "--out", out]) == 2
    assert "no folder at" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["cost", "--data-url", str(empty), "--out", out]) == 2
    assert "no cost records under" in capsys.readouterr().err


def test_a_broken_record_is_named(bucket, tmp_path, capsys):
    import shutil

    copy = str(tmp_path / "copy")
    shutil.copytree(bucket, copy)
    with open(Layout(copy).cost(planted.NAME, "Sobel", "Deletion"), "w") as handle:
        handle.write("{not json")
    assert main(["cost", "--data-url", copy, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "Deletion_cost.softmax.json is not JSON" in err and err.count("\n") == 1


def test_dina_report_adds_cost_vs_quality_from_the_records(bucket, tmp_path):
    import shutil

    import pandas as pd

    pytest.importorskip("duckdb")
    rows = cost.collect(bucket)
    frame = cost.report_frame(rows)
    assert list(frame.columns) == ["model", "explainer", "seconds_per_image"]
    generated = {r.explainer: r.seconds_per_image for r in rows if r.kind == "generate"}
    assert frame.set_index("explainer")["seconds_per_image"].to_dict() == pytest.approx(
        generated)
    argv = ["--n-boot", "20", "--stability-sizes", "5", "--stability-boot", "5",
            "--no-figures", "--no-progress"]
    out = tmp_path / "report"
    assert main(["report", "--data-url", bucket, "--out", str(out), *argv]) == 0
    assert "## Cost vs quality" in (out / "report.md").read_text()
    quality = pd.read_csv(out / "tables" / "cost_quality.csv")
    assert set(zip(quality["explainer"], quality["metric"], strict=True)) == {
        (e, m) for e in ("Sobel", "RandomExp") for m in ("Deletion", "Sparseness")}
    for row in quality.itertuples():
        assert row.seconds_per_image == pytest.approx(generated[row.explainer])

    # the same scores without generation cost records: no such section
    copy = tmp_path / "copy"
    shutil.copytree(bucket, copy)
    for explainer in ("Sobel", "RandomExp"):
        path = manifest_url(Layout(str(copy)).explanations(planted.NAME, explainer))
        manifest = _json(path)
        del manifest["cost"]
        with open(path, "w") as handle:
            json.dump(manifest, handle)
    bare = tmp_path / "bare"
    assert main(["report", "--data-url", str(copy), "--out", str(bare), *argv]) == 0
    assert "Cost vs quality" not in (bare / "report.md").read_text()
    assert not (bare / "tables" / "cost_quality.csv").exists()


def test_dina_cost_checks_its_outputs_before_working(bucket, tmp_path, capsys):
    """A user's file where an output goes is refused before anything is printed or written;
    the command's own earlier outputs are replaced; --overwrite replaces the user's file."""
    out = tmp_path / "report"
    out.mkdir()
    (out / "cost.csv").write_text("my notes\n")
    assert main(["cost", "--data-url", bucket, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "cost.csv exists and is not an output" in captured.err and captured.out == ""
    assert (out / "cost.csv").read_text() == "my notes\n"
    assert sorted(os.listdir(out)) == ["cost.csv"]
    assert main(["cost", "--data-url", bucket, "--out", str(out), "--overwrite"]) == 0
    assert (out / "cost.csv").read_text().startswith("model,explainer,kind,")
    assert main(["cost", "--data-url", bucket, "--out", str(out)]) == 0  # its own outputs
    assert len(os.listdir(out)) == 4
