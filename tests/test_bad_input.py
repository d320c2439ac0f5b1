"""Bad input through the `dina` command line and the Python API: a clear message naming what
was wrong (exit code 2 on the command line), and nothing left half-written."""

from __future__ import annotations

import json
import os
import re

import pytest
from conftest import make_bucket

import dina_datasets as dd
from dina_datasets.cli import main
from dina_datasets.recordio.storage import TMP_MARK


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A bucket with a good config, a file that is no TFRecord, a too-long score file, a
    folder that is not bucket-shaped, an unreadable image, bad registries, a short json."""
    base = tmp_path_factory.mktemp("bad")
    root = base / "bucket"
    make_bucket(str(root), ["ResNet50-Saliency", "DinoV2-Rise"], n=4)
    (root / "ResNet50" / "Rise").mkdir(parents=True)
    (root / "ResNet50" / "Rise" / "explanations.tfrecord").write_text("not a tfrecord at all")
    (root / "DinoV2" / "Rise" / "Insertion_scores.json").write_text(json.dumps([0.1] * 9))
    (base / "notbucket" / "x").mkdir(parents=True)
    (base / "notbucket" / "x" / "readme.txt").write_text("hello")
    (base / "images").mkdir()
    (base / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (base / "reg_field.toml").write_text('[models.X]\nfactory = 3\n')
    (base / "reg_syntax.toml").write_text('[models.X\nfactory=')
    (base / "short.json").write_text(json.dumps(
        {"info": {"base_path": ""}, "test": [{"image": "a.jpg", "label": 1}] * 3}))
    return base


CASES = {
    "export unknown config": (["export", "Foo-Bar", "--data-url", "{root}", "--out", "{out}"],
                              "unknown config 'Foo-Bar'"),
    "export missing data_url": (["export", "ResNet50-Saliency", "--data-url", "{base}/nope",
                                 "--out", "{out}"], "must be a bucket-shaped folder"),
    "export not bucket-shaped": (["export", "ResNet50-Saliency", "--data-url",
                                  "{base}/notbucket", "--out", "{out}"],
                                 "must be a bucket-shaped folder"),
    "export not a tfrecord": (["export", "ResNet50-Rise", "--data-url", "{root}", "--out",
                               "{out}"], "not a TFRecord file"),
    "export score file too long": (["export", "DinoV2-Rise", "--data-url", "{root}", "--out",
                                    "{out}"], "holds 9 scores but"),
    "export json too short": (["export", "ResNet50-Saliency", "--data-url", "{root}",
                               "--imagenet-json", "{base}/short.json", "--out", "{out}"],
                              "lists 3 images but"),
    "export json too short, original spelling": (
        ["export", "ResNet50-Saliency", "--data-url", "{root}", "--imagenet_json",
         "{base}/short.json", "--out", "{out}"], "lists 3 images but"),
    "generate unknown model": (["generate", "--model", "Dino", "--explainer", "Rise",
                                "--images", "{base}/images", "--out", "{out}"],
                               "did you mean 'DinoV2'"),
    "generate unknown explainer": (["generate", "--model", "ResNet50", "--explainer", "Rize",
                                    "--images", "{base}/images", "--out", "{out}"],
                                   "did you mean 'Rise'"),
    "generate missing images": (["generate", "--model", "ResNet50", "--explainer", "Saliency",
                                 "--images", "{base}/nope", "--out", "{out}", "--weights",
                                 "none"], "does not exist"),
    "generate unreadable image": (["generate", "--model", "EfficientNetV2", "--explainer",
                                   "Saliency", "--images", "{base}/images", "--out", "{out}",
                                   "--weights", "none"],
                                  "cannot read image '{base}/images/broken.jpg': Unknown image"),
    "evaluate unknown metric": (["evaluate", "--model", "ResNet50", "--explainer", "Saliency",
                                 "--metrics", "Insert", "--data-url", "{root}", "--out",
                                 "{out}"], "did you mean 'Insertion'"),
    "evaluate missing data_url": (["evaluate", "--model", "ResNet50", "--explainer",
                                   "Saliency", "--metrics", "Sparseness", "--data-url",
                                   "{base}/nope", "--out", "{out}"], "no such file"),
    "evaluate not a tfrecord": (["evaluate", "--model", "ResNet50", "--explainer", "Rise",
                                 "--metrics", "Sparseness", "--data-url", "{root}", "--out",
                                 "{out}"], "not a TFRecord file"),
    "evaluate missing preprocess": (["evaluate", "--model", "ResNet50", "--explainer",
                                     "Saliency", "--metrics", "Deletion", "--data-url",
                                     "{root}", "--preprocess-url", "{base}/nope.tfrecord",
                                     "--weights", "none", "--out", "{out}"],
                                    "no preprocess file at"),
    "leaderboard missing": (["leaderboard", "--data-url", "{base}/nope", "--out", "{out}"],
                            "no folder at"),
    "leaderboard not bucket-shaped": (["leaderboard", "--data-url", "{base}/notbucket",
                                       "--out", "{out}"], "no score files under"),
    "registry wrong field": (["configs", "--registry", "{base}/reg_field.toml"],
                             "entry [models.X]"),
    "registry bad toml": (["configs", "--registry", "{base}/reg_syntax.toml"],
                          "is not valid TOML"),
    "registry missing": (["configs", "--registry", "{base}/missing.toml"],
                         "cannot read registry file"),
    "show negative index": (["show", "ResNet50-Saliency", "--index", "-2", "--data-url",
                             "{root}", "--out", "{out}/x.png"], "index -2 is outside"),
    "show out of range": (["show", "ResNet50-Saliency", "--index", "4", "--data-url",
                           "{root}", "--out", "{out}/x.png"], "holds 4 records"),
    "push not an export": (["push", "{root}", "--repo-id", "org/name"], "dina export"),
    "push bad repo id": (["push", "{root}", "--repo-id", "bad id"], "ORG/NAME"),
    "merge without a run": (["merge", "--model", "ResNet50", "--explainer", "Saliency",
                             "--out", "{base}/nope"], "run `dina generate` first"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_command_line_bad_input(place, tmp_path, capsys, case):
    argv, message = CASES[case]
    fill = {"root": str(place / "bucket"), "base": str(place), "out": str(tmp_path / "out")}
    before = sorted(p for p in place.rglob("*"))
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dina {argv[0]}: error: ")
    assert message.format(**fill) in err, err
    assert sorted(p for p in place.rglob("*")) == before, "the inputs were changed"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in written if TMP_MARK in p.name], written
    assert not [p for p in written if p.suffix in (".tfrecord", ".parquet", ".png", ".csv")
                or p.name.endswith("_scores.json") or p.name == "README.md"], written


def test_python_api_bad_input(place, tmp_path):
    root = str(place / "bucket")
    with pytest.raises(dd.ConfigError, match="did you mean 'DinoV2-Rise'"):
        dd.load_dataset("dina", "DinoV2-Rize", data_url=root)
    with pytest.raises(dd.ConfigError, match="'MaxVIT-GradCAM' is not in DINA"):
        dd.load_dataset("dina", "MaxVIT-GradCAM", data_url=root)
    with pytest.raises(dd.LayoutError, match="bucket-shaped"):
        dd.load_dataset("dina", "ResNet50-Saliency", data_url=str(place / "notbucket"),
                        cache_dir=str(tmp_path / "cache"))
    with pytest.raises(dd.RecordError, match="not a TFRecord file"):
        dd.load_dataset("dina", "ResNet50-Rise", data_url=root,
                        cache_dir=str(tmp_path / "cache"))
    with pytest.raises(dd.AlignmentError, match="holds 9 scores"):
        dd.load_dataset("dina", "DinoV2-Rise", data_url=root, cache_dir=str(tmp_path / "c2"))
    url = dd.Layout(root).explanations("ResNet50", "Saliency")
    for index in (-1, 4):
        with pytest.raises(dd.RecordIndexError, match=f"index {index} is outside"):
            dd.read_explanation(url, index)
    with pytest.raises(dd.ConfigError, match="unknown metric"):
        dd.catalog.metric("Fidelity")
    assert not [p for p in tmp_path.rglob("*") if TMP_MARK in p.name]
    assert sorted(os.listdir(place / "bucket" / "ResNet50")) == ["Rise", "Saliency"]


def test_one_positive_integer_rule(tmp_path):
    """Every count argument goes through the one check: `True`, 0, floats and strings are
    refused with the same message, numpy integers accepted."""
    import numpy as np

    from dina_datasets.errors import check_positive_int
    from dina_datasets.generation import parts
    from dina_datasets.generation.pipeline import generate
    from dina_datasets.metrics import build
    from dina_datasets.metrics.evaluation import evaluate

    assert check_positive_int("n", np.int64(3)) == 3 and check_positive_int("n", 1) == 1
    assert check_positive_int("n", None, allow_none=True) is None
    assert check_positive_int("n", 2, minimum=2) == 2
    with pytest.raises(dd.ConfigError, match=r"^n must be an integer >= 2, got 1$"):
        check_positive_int("n", 1, minimum=2)
    root = str(tmp_path)
    callers = {
        "n": lambda v: check_positive_int("n", v),
        "batch_size": lambda v: build("Sparseness", batch_size=v),
        "grid_size": lambda v: build("MuFidelity", lambda x: x, grid_size=v),
        "part size": lambda v: parts.plan(10, v),
        "batch size": lambda v: generate("ResNet50", "Rise", root, root, batch_size=v),
        "limit": lambda v: evaluate("ResNet50", "Rise", ["Sparseness"], data_url=root, limit=v),
        "input_size": lambda v: dd.register_model("Sized", "a.b:c", input_size=v),
    }
    for bad in (True, False, 0, -3, 2.0, "4", None):
        for name, call in callers.items():
            if bad is None and name == "limit":  # no limit
                continue
            with pytest.raises(dd.ConfigError, match=f"{name} must be a positive integer, got "
                               f"{re.escape(repr(bad))}$"):
                call(bad)
    assert "Sized" not in dd.MODELS
