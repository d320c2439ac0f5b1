"""Degenerate maps found from the maps themselves, on published-style data: files written
by TensorFlow's own writer with only the `explanations` feature and no sidecar index, score
files as published (no undefined scores: the published formula gives an all-zero map
Complexity 0.0, the best value). All-zero and 1e-12-scaled maps are flagged for every
metric, never ranked, their numbers kept visible."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from test_records_tf import tf_write

from dina_datasets import Layout, stats
from dina_datasets.analysis import leaderboard
from dina_datasets.analysis.stats.sanity import sample
from dina_datasets.cli import main
from dina_datasets.formats import write_scores
from dina_datasets.recordio.index import index_url

N = 20


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("published") / "bucket")
    layout = Layout(root)
    rng = np.random.default_rng(4)
    maps = {"Saliency": np.abs(rng.normal(size=(N, 16, 16, 1))),
            "Rise": rng.random((N, 16, 16, 1)),
            "GradCAM": np.zeros((N, 16, 16, 1)),
            "Lime": 1e-12 * np.abs(rng.normal(size=(N, 16, 16, 1)))}
    base = rng.uniform(5, 6, N)
    complexity = {"Saliency": base, "Rise": base + 0.5,
                  "GradCAM": np.zeros(N),  # the published formula's value for zero maps
                  "Lime": base - 2.0}      # the epsilon's value: "simplest"
    for explainer, arrays in maps.items():
        url = layout.explanations("ResNet50", explainer)
        os.makedirs(os.path.dirname(url), exist_ok=True)
        tf_write(url, list(arrays.astype(np.float32)))
        assert not os.path.exists(index_url(url))  # as published: no sidecar index
        write_scores(layout.scores("ResNet50", explainer, "Complexity"),
                     complexity[explainer])
        write_scores(layout.scores("ResNet50", explainer, "Insertion"),
                     complexity[explainer] / 10 + (1.0 if explainer == "GradCAM" else 0))
    return root


def test_check_maps_samples_k_records_per_cell(bucket):
    found = stats.check_maps(bucket, [("ResNet50", e) for e in
                                      ("Saliency", "Rise", "GradCAM", "Lime", "Occlusion")],
                             k=8).set_index("explainer")
    assert "Occlusion" not in found.index  # no maps there: not checked
    assert (found["sampled"] == 8).all()
    assert found.loc["GradCAM", "state"] == "all-zero"
    assert found.loc["Lime", "state"] == "near-zero"
    assert found.loc[["Saliency", "Rise"], "degenerate_maps"].tolist() == [0, 0]
    assert found.loc["Lime", "reason"] == "degenerate maps (8 of 8 sampled maps near-zero)"
    assert sample(N, 8).tolist() == [0, 3, 5, 8, 11, 14, 16, 19]  # evenly, ends kept


def test_degenerate_published_maps_are_never_ranked(bucket, tmp_path, capsys):
    board = leaderboard.collect(bucket)
    for explainer in ("GradCAM", "Lime"):
        for metric in ("Complexity", "Insertion"):
            entry = board.get(f"ResNet50-{explainer}", metric)
            assert entry.marker == "degenerate" and np.isnan(entry.rank)
            assert np.isfinite(entry.mean)  # the published number stays visible
    # without the flag the zero maps would be the "simplest" and the best Insertion
    assert board.best("ResNet50", "Complexity") == "Saliency"
    assert board.best("ResNet50", "Insertion") == "Rise"
    unchecked = leaderboard.collect(bucket, map_sample=0)
    assert unchecked.best("ResNet50", "Complexity") == "GradCAM"
    # ... and the board says its maps were not checked (it said nothing)
    assert "maps not checked" in unchecked.text() and "--maps-url" in unchecked.markdown()
    assert "maps not" not in board.text()
    elsewhere = leaderboard.collect(bucket, maps_url=str(tmp_path / "none"))
    assert "maps not found" in elsewhere.text()
    assert main(["leaderboard", "--data-url", bucket, "--json"]) == 0
    flags = json.loads(capsys.readouterr().out)["flags"]
    assert {(f["explainer"], f["metric"]) for f in flags if f["flag"] == "degenerate"} == {
        (e, m) for e in ("GradCAM", "Lime") for m in ("Complexity", "Insertion")}
    assert main(["report", "--data-url", bucket, "--out", str(tmp_path / "r"), "--n-boot",
                 "20", "--stability-sizes", "5", "--stability-boot", "5", "--no-figures"]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert "Maps checked: 8 sampled per cell, 4 cells" in text
    assert "degenerate maps (8 of 8 sampled maps all-zero)" in text
    assert main(["leaderboard", "--data-url", bucket, "--map-sample", "-1"]) == 2
    assert "--map-sample must be 0" in capsys.readouterr().err


def test_reliability_card_counts_the_degenerate_maps(bucket, capsys):
    """`dina reliability` checks the maps under --data-url like `dina report`: half the
    explainers' sampled maps are degenerate, so the card says so and grades the metric down;
    with --map-sample 0 it does not look."""
    def cards(*extra: str) -> dict[str, dict]:
        assert main(["reliability", "--data-url", bucket, "--json", "--splits", "20",
                     *extra]) == 0
        document = json.loads(capsys.readouterr().out)
        return {c["metric"]: c for c in document["cards"]}

    checked = cards()
    assert checked["Complexity"]["degenerate_maps_share"] == pytest.approx(0.5)
    assert checked["Complexity"]["grade"] == "unreliable"
    unchecked = cards("--map-sample", "0")
    assert unchecked["Complexity"]["degenerate_maps_share"] is None  # not looked at
