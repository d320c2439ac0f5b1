"""The embedded default, cut to one model, explainer and metric: every step runs and says
where its output went; the demo writes only into its own folder."""

from __future__ import annotations

import json
import os

import pytest

from dina_datasets import ConfigError, Layout
from dina_datasets.demo import tour as demo


def test_demo_writes_only_into_its_own_folder(tmp_path):
    fresh = tmp_path / "new"
    assert demo.claim_folder(str(fresh)) == str(fresh)
    assert (fresh / demo.MARKER).is_file()
    (fresh / "bucket").mkdir()
    (fresh / "bucket" / "old.tfrecord").write_text("an earlier demo's")
    (fresh / "notes.txt").write_text("mine")
    demo.claim_folder(str(fresh))  # an earlier demo's folder: its bucket/ is replaced
    assert not (fresh / "bucket").exists() and (fresh / "notes.txt").read_text() == "mine"

    foreign = tmp_path / "foreign"
    (foreign / "bucket").mkdir(parents=True)
    (foreign / "bucket" / "precious.tfrecord").write_text("not the demo's")
    with pytest.raises(ConfigError, match="was not made by `dina demo`"):
        demo.claim_folder(str(foreign))
    assert (foreign / "bucket" / "precious.tfrecord").read_text() == "not the demo's"
    assert not (foreign / demo.MARKER).exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        demo.claim_folder(str(tmp_path / "file"))
    (tmp_path / "empty").mkdir()
    demo.claim_folder(str(tmp_path / "empty"))
    assert (tmp_path / "empty" / demo.MARKER).is_file()


def test_demo_loop_on_one_cell(tmp_path):
    pytest.importorskip("tensorflow")
    said: list[str] = []
    result = demo.run(str(tmp_path / "out"), settings=demo.QUICK, models=("EfficientNetV2",),
                      explainers=("GradCAM",), metrics=("Sparseness", "Deletion"),
                      planted_explainers=("Saliency", "RandomExp"), batch_size=4,
                      say=said.append)
    text = "\n".join(said)
    assert "WEIGHTS ARE RANDOM" in text and "--weights pretrained" in text
    steps = [line.split("]")[0].strip("\n[") for line in said if line.startswith("\n[")]
    assert steps == [f"{k}/{len(demo.STEPS)}" for k in range(1, len(demo.STEPS) + 1)]
    assert list(result.seconds) == [step.name for step in demo.STEPS]
    assert "(Deletion/Insertion with 10 steps; published: 200)" in text
    estimate = next(i for i, line in enumerate(said) if "estimate: about" in line)
    first_evaluate = next(i for i, line in enumerate(said) if "$ dina evaluate" in line)
    assert estimate < first_evaluate and "--metric-param Deletion.nb_steps=10" in text
    assert "identical to the builder's rows" in text
    assert result.configs == ["EfficientNetV2-GradCAM", "Planted-Saliency", "Planted-RandomExp"]
    assert len(result.images) == len(demo.QUICK.photos) and result.score_files == 2 * 3
    # the planted-truth model's ranking is right by construction
    assert "Deletion (lower is better): Saliency" in text and "WRONG" not in text
    scores = Layout(os.path.join(result.out, "bucket")).scores("EfficientNetV2", "GradCAM",
                                                              "Deletion")
    with open(scores) as handle:
        assert len(json.load(handle)) == len(demo.QUICK.photos)
    for path in [*result.pictures, *result.tables]:
        assert os.path.getsize(path) > 0, path
    assert result.pictures == [os.path.join(result.out, "figures", f"{name}.png")
                               for name in ("EfficientNetV2", "Planted")]
    with open(os.path.join(result.out, "hub", "README.md")) as handle:
        card = " ".join(handle.read().split())
    assert "weights `none` (random initialisation" in card
    assert os.path.isfile(os.path.join(result.out, demo.MARKER))
