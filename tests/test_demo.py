"""The embedded default, cut to one model, explainer and metric: every step runs and says
where its output went."""

from __future__ import annotations

import json
import os

import pytest

from dina_datasets import Layout, demo

pytest.importorskip("tensorflow")


def test_demo_loop_on_one_cell(tmp_path):
    said: list[str] = []
    result = demo.run(str(tmp_path / "out"), models=("EfficientNetV2",),
                      explainers=("GradCAM",), metrics=("Sparseness", "Deletion"),
                      batch_size=4, say=said.append)
    text = "\n".join(said)
    assert "WEIGHTS ARE RANDOM" in text and "--weights pretrained" in text
    steps = [line.split("]")[0].strip("\n[") for line in said if line.startswith("\n[")]
    assert steps == [f"{k}/7" for k in range(1, 8)]
    assert "identical to the builder's rows" in text
    assert result.configs == ["EfficientNetV2-GradCAM"]
    assert len(result.images) == len(demo.PHOTOS) and result.score_files == 2
    scores = Layout(os.path.join(result.out, "bucket")).scores("EfficientNetV2", "GradCAM",
                                                              "Deletion")
    with open(scores) as handle:
        assert len(json.load(handle)) == len(demo.PHOTOS)
    for path in [*result.pictures, *result.tables]:
        assert os.path.getsize(path) > 0, path
    assert result.pictures == [os.path.join(result.out, "figures", "EfficientNetV2.png")]
