"""The embedded default, cut to one model, explainer and metric (and the planted-truth model on
its 64 crops): every step runs and says where its output went; the demo writes only into its
own folder; every `dina ...` line it prints runs as printed in a new process; the planted
model's verdicts are right, with evidence."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys

import pytest

from dina_datasets import ConfigError, Layout, catalog
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


def test_the_planted_model_is_run_on_enough_images_for_a_verdict():
    for settings in (demo.FULL, demo.QUICK):
        assert settings.planted_images >= 64
        assert {"Deletion", "Insertion"} <= set(settings.planted_metrics)
    assert {"Saliency", "IntegratedGradients", "RandomExp"} <= set(demo.FULL.planted_explainers)


PLANTED = ("Saliency", "IntegratedGradients", "RandomExp")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small demo run (QUICK, one real cell, the planted model with 3 explainers), what it
    said and its closing lines; the planted model is unregistered afterwards, so that what
    follows sees a process that never registered it."""
    pytest.importorskip("tensorflow")
    said: list[str] = []
    result = demo.run(str(tmp_path_factory.mktemp("demo") / "out"), settings=demo.QUICK,
                      explainers=("GradCAM",), metrics=("Sparseness", "Deletion"),
                      planted_explainers=PLANTED, batch_size=4, say=said.append)
    closing = demo.next_steps(result)
    yield result, said, closing
    if "Planted" in catalog.MODELS:
        catalog.unregister("Planted")


def test_demo_loop_on_one_cell(run):
    result, said, closing = run
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
    assert result.configs == ["ResNet50-GradCAM", *(f"Planted-{e}" for e in PLANTED)]
    assert len(result.images) == len(demo.QUICK.photos)
    assert result.score_files == 2 + 4 * len(PLANTED)  # the planted model: 4 metrics
    bucket = Layout(os.path.join(result.out, "bucket"))
    with open(bucket.scores("ResNet50", "GradCAM", "Deletion")) as handle:
        assert len(json.load(handle)) == len(demo.QUICK.photos)
    with open(bucket.scores("Planted", "Saliency", "Insertion")) as handle:
        assert len(json.load(handle)) == demo.QUICK.planted_images
    for path in [*result.pictures, *result.tables]:
        assert os.path.getsize(path) > 0, path
    assert result.pictures == [os.path.join(result.out, "figures", f"{name}.png")
                               for name in ("ResNet50", "Planted")]
    with open(os.path.join(result.out, "hub", "README.md")) as handle:
        card = " ".join(handle.read().split())
    assert "weights `none` (random initialisation" in card
    assert os.path.isfile(os.path.join(result.out, demo.MARKER))
    assert result.registry == os.path.join(result.out, demo.REGISTRY)
    assert any("dina explore" in line for line in closing)


def test_planted_verdicts_are_better_than_random_with_evidence(run):
    """On the demo's own data: Saliency and IntegratedGradients `better` than RandomExp under
    Deletion and Insertion with p_adjusted < 0.01 (the leaderboard's paired test), and the
    demo says so."""
    from dina_datasets.analysis.leaderboard import collect
    from dina_datasets.demo import planted
    from dina_datasets.registry import load_registry

    result, said, _ = run
    load_registry(result.registry)
    board = collect(os.path.join(result.out, "bucket"))
    for metric in ("Deletion", "Insertion"):
        for explainer in ("Saliency", "IntegratedGradients"):
            word, p_adjusted, n = planted.comparison(board, metric, explainer)
            assert (word, n) == ("better", demo.QUICK.planted_images), (metric, explainer)
            assert p_adjusted < 0.01, (metric, explainer, p_adjusted)
    text = "\n".join(said)
    assert text.count(": better (p_adjusted") == 4 and "WRONG" not in text
    catalog.unregister(planted.NAME)


def _printed(said: list[str], closing: list[str]) -> list[str]:
    """Every `dina ...` command line the demo printed, in order."""
    lines = [line.strip().removeprefix("$ ") for line in [*said, *closing]]
    return [line for line in lines if line.startswith("dina ")]


# Runs each line with the `dina` entry point, one after the other in one new process (one
# TensorFlow start for all); what a line registered is forgotten before the next one.
DRIVER = """
import shlex, sys
from dina_datasets import catalog
from dina_datasets.cli import main
for line in sys.argv[1:]:
    known = {*catalog.MODELS, *catalog.EXPLAINERS}
    print("RUNNING", line, flush=True)
    code = main(shlex.split(line)[1:])
    if code:
        sys.exit(f"FAILED with exit code {code}: {line}")
    for name in {*catalog.MODELS, *catalog.EXPLAINERS} - known:
        catalog.unregister(name)
"""


def _env() -> dict:
    return dict(os.environ, TF_USE_LEGACY_KERAS="1", CUDA_VISIBLE_DEVICES="-1",
                TF_CPP_MIN_LOG_LEVEL="3")


def test_every_printed_command_runs_as_printed(run, tmp_path):
    result, said, closing = run
    lines = _printed(said, closing)
    commands = {shlex.split(line)[1] for line in lines}
    assert commands == {"generate", "evaluate", "export", "leaderboard", "show", "scores",
                        "report", "explore"}, commands
    assert all("--registry" in line for line in lines)  # the planted model is contributed
    batch = [line for line in lines if shlex.split(line)[1] != "explore"]
    done = subprocess.run([sys.executable, "-c", DRIVER, *batch], capture_output=True,
                          text=True, env=_env(), timeout=900, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert done.stdout.count("RUNNING") == len(batch)
    # the closing suggestion, through the console script's own entry point, alone
    show = next(line for line in closing if line.strip().startswith("dina show"))
    argv = shlex.split(show)[1:]
    alone = subprocess.run([sys.executable, "-c", "import sys; from dina_datasets.cli import "
                            "main; sys.exit(main())", *argv], capture_output=True, text=True,
                           env=_env(), timeout=600, cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert os.path.getsize(os.path.join(result.out, "figures", "one.png")) > 0
    assert not os.listdir(tmp_path)  # every output went where the line says


def test_printed_explore_command_starts(run, tmp_path):
    pytest.importorskip("gradio")
    _, said, closing = run
    line = next(line for line in _printed(said, closing) if line.startswith("dina explore"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [*shlex.split(line)[1:], "--port", str(port)]  # a free port: tests run side by side
    process = subprocess.Popen([sys.executable, "-c", "import sys; from dina_datasets.cli "
                                "import main; sys.exit(main())", *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=_env(), cwd=tmp_path)
    seen = []
    try:
        for out in process.stdout:
            seen.append(out)
            if f":{port}" in out:
                break
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    text = "".join(seen)
    assert f"http://127.0.0.1:{port}" in text, text[-3000:]
    assert "problem" not in text and "error" not in text.lower(), text[-3000:]


def test_export_all_names_the_configs_it_leaves_out(run, tmp_path, capsys):
    """Without the registry file, `dina export all` says which configs it left out and why;
    with it, the planted model's configs are exported too."""
    from dina_datasets.cli import main

    result, _, _ = run
    bucket = os.path.join(result.out, "bucket")
    if "Planted" in catalog.MODELS:
        catalog.unregister("Planted")
    assert main(["export", "all", "--data-url", bucket, "--out",
                 str(tmp_path / "without")]) == 0
    warning = " ".join(capsys.readouterr().err.split())
    assert ("warning: left out 3 config(s)" in warning and "Planted-Saliency" in warning
            and "--registry FILE" in warning), warning
    with open(tmp_path / "without" / "README.md") as handle:
        card = handle.read()
    assert "ResNet50-GradCAM" in card and "Planted-Saliency" not in card
    try:
        assert main(["export", "all", "--data-url", bucket, "--out", str(tmp_path / "with"),
                     "--registry", result.registry]) == 0
    finally:
        catalog.unregister("Planted")
    assert "left out" not in capsys.readouterr().err
    with open(tmp_path / "with" / "README.md") as handle:
        card = handle.read()
    assert "Planted-Saliency" in card and "Planted-IntegratedGradients" in card
