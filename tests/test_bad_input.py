"""Bad input through the `dina` command line and the Python API: a clear message naming what
was wrong (exit code 2 on the command line), and nothing left half-written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from conftest import make_bucket

import dina_datasets as dd
from dina_datasets.cli import main
from dina_datasets.storage import TMP_MARK


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
    (root / "ResNet50" / "GradCAM").mkdir(parents=True)
    (root / "ResNet50" / "GradCAM" / "explanations.tfrecord").write_bytes(b"")
    (base / "demo_like").mkdir()
    (base / "demo_like" / "bucket").mkdir()  # not made by `dina demo`: no marker
    (base / "demo_like" / "bucket" / "precious.txt").write_text("keep me")
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
    # a data_url that is a file
    "export data_url is a file": (["export", "ResNet50-Saliency", "--data-url",
                                   "{base}/short.json", "--out", "{out}"],
                                  "must be a bucket-shaped folder"),
    "export all under a file": (["export", "all", "--data-url", "{base}/short.json", "--out",
                                 "{out}"], "'all': no config found under {base}/short.json"),
    "show data_url is a file": (["show", "DinoV2-Rise", "--index", "0", "--data-url",
                                 "{base}/short.json", "--out", "{out}/x.png"],
                                "no explanations at"),
    "evaluate data_url is a file": (["evaluate", "--model", "DinoV2", "--explainer", "Rise",
                                     "--metrics", "Sparseness", "--data-url",
                                     "{base}/short.json", "--out", "{out}"],
                                    "a folder of its path is a file"),
    "leaderboard data_url is a file": (["leaderboard", "--data-url", "{base}/short.json",
                                        "--out", "{out}"], "no score files under"),
    # an --out that is a file, or that cannot be written
    "export out is a file": (["export", "ResNet50-Saliency", "--data-url", "{root}", "--out",
                              "{base}/short.json"], "is a file, not a folder"),
    "export out unwritable": (["export", "ResNet50-Saliency", "--data-url", "{root}", "--out",
                               "/sys/dina-test-out"], "Operation not permitted: /sys/dina-"),
    "show out is a file": (["show", "DinoV2-Rise", "--index", "0", "--data-url", "{root}",
                            "--out", "{base}/short.json/x.png"],
                           "short.json is a file, not a folder"),
    "show out unwritable": (["show", "DinoV2-Rise", "--index", "0", "--data-url", "{root}",
                             "--out", "/sys/dina-test.png"], "Permission denied"),
    "show out not a picture": (["show", "DinoV2-Rise", "--index", "0", "--data-url", "{root}",
                                "--out", "{out}/x.gif"], "give a file name ending in .png"),
    "leaderboard out is a file": (["leaderboard", "--data-url", "{root}", "--out",
                                   "{base}/short.json"], "short.json is a file, not a folder"),
    "evaluate out is a file": (["evaluate", "--model", "DinoV2", "--explainer", "Rise",
                                "--metrics", "Sparseness", "--data-url", "{root}", "--out",
                                "{base}/short.json"], "Not a directory"),
    "demo out is a file": (["demo", "--out", "{base}/short.json"], "is a file"),
    "demo out not its own": (["demo", "--out", "{base}/demo_like"],
                             "was not made by `dina demo`"),
    # an empty explanations file is an error, not a 0-row config
    "export empty explanations": (["export", "ResNet50-GradCAM", "--data-url", "{root}",
                                   "--out", "{out}"], "is empty (0 records)"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_command_line_bad_input(place, tmp_path, capsys, case):
    argv, message = CASES[case]
    fill = {"root": str(place / "bucket"), "base": str(place), "out": str(tmp_path / "out")}
    before = sorted(p for p in place.rglob("*"))
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.replace("\r", "\n").splitlines() if x.strip() and "%|" not in x
             and "Warning" not in x and not x.startswith("  ")]  # progress bars, warnings
    assert len(lines) == 1 and lines[0].startswith(f"dina {argv[0]}: error: "), err
    assert message.format(**fill) in err, err
    assert sorted(p for p in place.rglob("*")) == before, "the inputs were changed"
    assert (place / "demo_like" / "bucket" / "precious.txt").read_text() == "keep me"
    assert "Traceback" not in err, err
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
    with pytest.raises(dd.RecordError, match="is empty"):
        dd.load_dataset("dina", "ResNet50-GradCAM", data_url=root,
                        cache_dir=str(tmp_path / "c3"))
    url = dd.Layout(root).explanations("ResNet50", "Saliency")
    for index in (-1, 4):
        with pytest.raises(dd.RecordIndexError, match=f"index {index} is outside"):
            dd.read_explanation(url, index)
    with pytest.raises(dd.ConfigError, match="unknown metric"):
        dd.catalog.metric("Fidelity")
    assert not [p for p in tmp_path.rglob("*") if TMP_MARK in p.name]
    assert sorted(os.listdir(place / "bucket" / "ResNet50")) == ["GradCAM", "Rise", "Saliency"]


def test_one_positive_integer_rule(tmp_path):
    """Every count argument goes through the one check: `True`, 0, floats and strings are
    refused with the same message, numpy integers accepted."""
    import numpy as np

    from dina_datasets import stats
    from dina_datasets.errors import check_positive_int
    from dina_datasets.generation.pipeline import generate
    from dina_datasets.metrics import build
    from dina_datasets.metrics.evaluation import evaluate
    from dina_datasets.ray.cluster import fit_workers
    from dina_datasets.runs import parts

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
        "n_boot": lambda v: stats.summary(root, n_boot=v),
        "sizes": lambda v: stats.stability(root, sizes=(10, v)),
        "--workers": lambda v: fit_workers(None, v, 0.0),  # checked before Ray is asked
    }
    for bad in (True, False, 0, -3, 2.0, "4", None):
        for name, call in callers.items():
            if bad is None and name in ("limit", "--workers"):  # no limit, as many as fit
                continue
            with pytest.raises(dd.ConfigError, match=f"{name} must be a positive integer, got "
                               f"{re.escape(repr(bad))}$"):
                call(bad)
    assert "Sized" not in dd.MODELS


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"dina-datasets {dd.__version__}"


def test_missing_extra_is_named(place, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    out = tmp_path / "x.png"
    assert main(["show", "DinoV2-Rise", "--index", "0", "--data-url", str(place / "bucket"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dina show: error: this needs matplotlib, which is not installed")
    assert "`viz` extra" in err and "dina-datasets[viz]" in err and not out.exists()


def test_closed_pipe_is_not_an_error():
    """`dina configs | head`: the reader closes the pipe; no traceback, exit 0."""
    read, write = os.pipe()
    os.close(read)  # nobody reads: every write to the pipe fails (EPIPE)
    try:
        done = subprocess.run([sys.executable, "-c", "import sys; from dina_datasets.cli "
                               "import main; sys.exit(main())", "configs"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_export_patterns_expand_against_the_data_url(place, tmp_path, capsys):
    from dina_datasets.hf.export import present_configs, resolve_configs

    root = str(place / "bucket")
    present = present_configs(root)
    assert present == ["DinoV2-Rise", "ResNet50-Saliency", "ResNet50-GradCAM", "ResNet50-Rise"]
    assert resolve_configs(["ResNet50-*"], present, root) == [
        "ResNet50-Saliency", "ResNet50-GradCAM", "ResNet50-Rise"]
    assert resolve_configs(["all"], present) == present
    with pytest.raises(dd.ConfigError, match=f"no config under {root} matches 'MaxVIT-\\*'"):
        resolve_configs(["MaxVIT-*"], present, root)
    out = str(tmp_path / "hub")
    assert main(["export", "ResNet50-Sal*", "--data-url", root, "--out", out]) == 0
    assert "1 configs, 4 rows" in capsys.readouterr().out
    assert main(["export", "*-Lime", "--data-url", root, "--out", out]) == 2
    assert f"no config under {root} matches '*-Lime'; present: DinoV2-Rise" in \
        capsys.readouterr().err


RISE = "gs://xai-deel/DinoV2/Rise/explanations.tfrecord"


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def test_offline_mode_fails_at_once_for_remote_urls(offline, tmp_path, capsys, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("offline mode looked a host up")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)  # nothing may touch the network
    with pytest.raises(dd.NetworkError) as info:
        dd.read_explanation(RISE, 0)
    assert RISE in str(info.value) and "offline mode is on" in str(info.value)
    assert "data_url=" in str(info.value) and "DINA_DATA_URL" in str(info.value)
    with pytest.raises(dd.DinaError, match="offline mode is on"):  # what users catch
        dd.load_dataset("dina", "DinoV2-Rise", data_url="gs://xai-deel",
                        cache_dir=str(tmp_path / "cache"))
    for argv in (["show", "DinoV2-Rise", "--index", "0", "--out", str(tmp_path / "x.png")],
                 ["export", "DinoV2-Rise", "--out", str(tmp_path / "hub")],
                 ["leaderboard", "--out", str(tmp_path / "board")],
                 ["evaluate", "--model", "DinoV2", "--explainer", "Rise", "--metrics",
                  "Sparseness"]):
        assert main([*argv, "--data-url", "gs://xai-deel"]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"dina {argv[0]}: error: ") and "offline mode is on" in err
        assert "--data-url" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("*.png")) and not (tmp_path / "hub").exists()


def test_offline_mode_follows_datasets(monkeypatch):
    from dina_datasets.storage import offline

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert offline()
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")  # datasets: this one wins when set
    assert not offline()
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "true")
    assert offline()


def test_unreachable_endpoint_fails_fast_with_one_clear_error(offline, tmp_path, capsys):
    from gcs_server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    options = {"endpoint_url": endpoint}
    with pytest.raises(dd.NetworkError) as info:  # loopback is allowed offline
        dd.read_explanation(RISE, 0, storage_options=options)
    text = str(info.value)  # from the check, not after gcsfs's retry schedule
    assert f"cannot reach {endpoint} for {RISE} (Connection refused, checked within 10 s)" \
        in text
    assert "check the network" in text and "--data-url" in text
    assert main(["show", "DinoV2-Rise", "--index", "0", "--data-url", "gs://xai-deel",
                 "--storage-option", f"endpoint_url={endpoint}", "--out",
                 str(tmp_path / "x.png")]) == 2
    assert "Connection refused" in capsys.readouterr().err


def test_network_check_is_bounded_in_time(monkeypatch):
    import socket

    from dina_datasets import storage

    def slow_resolver(*args, **kwargs):  # a DNS server that does not answer
        time.sleep(3)
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", slow_resolver)
    start = time.monotonic()
    with pytest.raises(dd.NetworkError, match=r"timed out, checked within 0.5 s"):
        storage.check_network("gs://some-bucket/x.tfrecord", timeout=0.5)
    assert time.monotonic() - start < 2.5  # the resolver would take 3 s


def test_push_offline_is_one_clear_line(place, tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    out = str(tmp_path / "hub")
    assert main(["export", "ResNet50-Saliency", "--data-url", str(place / "bucket"), "--out",
                 out]) == 0
    capsys.readouterr()
    assert main(["push", out, "--repo-id", "someone/dina"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dina push: error: cannot reach the Hugging Face Hub to upload to "
                          "https://huggingface.co/datasets/someone/dina")
    assert "HF_HUB_OFFLINE" in err and len(err.strip().splitlines()) == 1
