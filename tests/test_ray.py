"""DINA on a local Ray cluster started here once (2 CPUs): `read_dina` returns the builder's
rows (local and through the GCS test server); `generate`, `evaluate` and `export` with
`--engine ray` write the bytes of `--engine local`, through an interrupted run and a worker
killed mid-run; bad input fails clearly with nothing written."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import BUCKET, TOY_MODEL, make_bucket

from dina_datasets import Layout, catalog
from dina_datasets.cli import main
from dina_datasets.runs.parts import parts_folder

ray = pytest.importorskip("ray")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = ["ResNet50-Saliency", "DinoV2-Rise"]  # (224, 224, 3) and (224, 224, 1) maps
REGISTRY = ('[models.Tiny]\nfactory = "dina_toy_models:tiny"\ninput_size = 32\n'
            'rescale_mode = "torch"\n\n[models.Tiny2]\nfactory = "dina_toy_models:tiny"\n'
            'input_size = 32\nrescale_mode = "tf"\n')
IMAGES = 6
RISE = ["--weights", "none", "--batch-size", "64", "--part-size", "2", "--param",
        "nb_samples=300", "--param", "grid_size=4"]


@dataclass
class Cluster:
    """The test's Ray cluster, toy models Tiny and Tiny2 (registry, 6 images) and a bucket
    of two real-sized configs (6 maps each)."""

    root: Path
    registry: str
    images: str
    bucket: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("ray")
    (root / "dina_toy_models.py").write_text(TOY_MODEL)
    (root / "registry.toml").write_text(REGISTRY)
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(5)
    for i in range(IMAGES):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
            images / f"photo_{i:02d}.png")
    bucket = str(root / "bucket")
    make_bucket(bucket, CONFIGS, n=6)
    with pytest.MonkeyPatch.context() as patch:  # the workers import the toy models too
        patch.setenv("PYTHONPATH", os.pathsep.join(
            [str(root), ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]))
        patch.syspath_prepend(str(root))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
        try:
            yield Cluster(root, str(root / "registry.toml"), str(images), bucket)
        finally:
            ray.shutdown()
            for name in ("Tiny", "Tiny2"):
                if name in catalog.MODELS:
                    catalog.unregister(name)


def builder_table(name: str, data_url: str, cache: Path, **options) -> pa.Table:
    from dina_datasets.hf.builder import DinaBuilder

    builder = DinaBuilder(config_name=name, data_url=data_url, cache_dir=str(cache), **options)
    builder.download_and_prepare()
    return builder.as_dataset("validation").data.table


def by_config(ds) -> dict[str, pa.Table]:
    """The dataset's rows per config, in record order, without the config column (a block
    holds one config: their map shapes differ)."""
    blocks: dict[str, list[pa.Table]] = {}
    for block in ray.get(ds.to_arrow_refs()):
        names = block["config"].unique().to_pylist()
        assert len(names) <= 1, names
        if names:
            blocks.setdefault(names[0], []).append(block.drop_columns(["config"]))
    return {name: pa.concat_tables(tables).sort_by("index") for name, tables in blocks.items()}


def test_read_dina_returns_the_builders_rows(cluster, tmp_path):
    from dina_datasets.ray import DinaDatasource, read_dina
    from dina_datasets.ray.datasource import Opening

    ds = read_dina(CONFIGS, data_url=cluster.bucket, num_spans=4)
    tables = by_config(ds)
    assert sorted(tables) == sorted(CONFIGS)
    for name in CONFIGS:
        expected = builder_table(name, cluster.bucket, tmp_path / "cache")
        assert tables[name].schema.equals(expected.schema, check_metadata=True)
        assert tables[name].equals(expected), name
    assert ds.schema().names[-1] == "config"
    source = DinaDatasource([Opening(n, cluster.bucket) for n in CONFIGS], num_spans=4)
    tasks = source.get_read_tasks(1)
    assert len(tasks) == 8 and sum(t.metadata.num_rows for t in tasks) == 12
    one = read_dina("DinoV2-Rise", data_url=cluster.bucket).take(2)
    assert "config" not in one[0] and np.asarray(one[0]["explanation"]).shape == (224, 224, 1)


def test_read_dina_through_gcs(cluster, emulator, tmp_path):
    from dina_datasets.ray import read_dina

    server, _, _ = emulator
    options = {"endpoint_url": server.endpoint}
    tables = by_config(read_dina(CONFIGS, data_url=BUCKET, storage_options=options))
    for name in CONFIGS:
        expected = builder_table(name, BUCKET, tmp_path / "cache", storage_options=options)
        assert tables[name].equals(expected), name
        assert tables[name]["image_id"][0].as_py() == "img_000"  # the records' own keys


def docs_block(page: str, title: str) -> str:
    """The first python block of the section `title` of the docs page `page`."""
    with open(os.path.join(ROOT, "docs", page)) as handle:
        text = handle.read()
    section = text[text.index(title):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_docs_map_only_metric_writes_scores_in_the_layout(cluster, tmp_path):
    from dina_datasets.metrics import Complexity

    code = docs_block("ray.md", "Beyond one machine: Ray")
    out = str(tmp_path / "scores")
    code = re.sub(r'^data_url = .*$', f"data_url = {cluster.bucket!r}", code, count=1,
                  flags=re.M)
    code = re.sub(r'^out = .*$', f"out = {out!r}", code, count=1, flags=re.M)
    exec(compile(code, "docs/ray.md", "exec"), {})
    from dina_datasets import read_explanations

    for name in CONFIGS:
        model, explainer = name.split("-", 1)
        maps = np.stack(list(read_explanations(Layout(cluster.bucket).explanations(model,
                                                                            explainer))))
        with open(Layout(out).scores(model, explainer, "Complexity")) as handle:
            np.testing.assert_allclose(json.load(handle), Complexity()(maps), rtol=1e-12)


def test_export_on_ray_writes_the_local_bytes(cluster, tmp_path):
    local, far = str(tmp_path / "local"), str(tmp_path / "ray")
    common = ["export", *CONFIGS, "--data-url", cluster.bucket]
    assert main([*common, "--out", local]) == 0
    assert main([*common, "--out", far, "--engine", "ray"]) == 0
    files = sorted(str(p.relative_to(local)) for p in Path(local).rglob("*") if p.is_file())
    # a Parquet file per config, the scores config, the card
    assert len(files) == len(CONFIGS) + 2 and files == sorted(
        str(p.relative_to(far)) for p in Path(far).rglob("*") if p.is_file())
    for name in files:
        assert (Path(local) / name).read_bytes() == (Path(far) / name).read_bytes(), name


def test_bad_input_exits_2_and_writes_nothing(cluster, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["generate", "--registry", cluster.registry, "--images", cluster.images,
            "--out", str(out), *RISE, "--engine", "ray"]
    cases = [(["--configs", "Tiny-Rise", "--address", "127.0.0.1:9"],
              "no Ray cluster answers at '127.0.0.1:9'"),
             (["--configs", "Tiny-Rsie"], "unknown config 'Tiny-Rsie'"),
             (["--configs", "Tiny-Rise", "--gpus-per-worker", "1"],
              "--gpus-per-worker 1: the Ray cluster has 2 CPU(s) and 0 GPU(s)"),
             (["--configs", "Tiny-Rise", "--workers", "3"], "room for 2 worker(s)")]
    for extra, message in cases:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()
    evaluate = ["evaluate", "--configs", "DinoV2-Rise", "--metrics", "Sparseness",
                "--data-url", cluster.bucket, "--out", str(out), "--engine", "ray"]
    assert main([*evaluate, "--gpus-per-worker", "2"]) == 2
    assert "0 GPU(s)" in capsys.readouterr().err and not out.exists()
    assert main([*evaluate[:-2], "--address", "127.0.0.1:9"]) == 2
    assert "--address need --engine ray" in capsys.readouterr().err


def worker_pids() -> set[int]:
    """The Ray worker processes running `PartWorker`, descendants of this process."""
    parents, titles = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    titles[int(entry)] = handle.read().decode(errors="replace")
            except OSError:
                continue
    mine, grown = {os.getpid()}, True
    while grown:
        new = {pid for pid, parent in parents.items() if parent in mine} - mine
        mine |= new
        grown = bool(new)
    return {pid for pid in mine if titles.get(pid, "").startswith("ray::PartWorker")}


def when(condition, action, timeout: float = 300.0) -> threading.Thread:
    """Run `action()` on a thread as soon as `condition()` holds."""
    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                action()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def complete_parts(folder: str) -> list[str]:
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return [n for n in names if n.startswith("part-") and n.endswith(".tfrecord")]


def test_generate_on_ray_resumes_survives_a_killed_worker_and_writes_the_local_bytes(
        cluster, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    local, far = str(tmp_path / "local"), str(tmp_path / "ray")
    base = ["generate", "--registry", cluster.registry, "--configs", "Tiny-Rise", "Tiny2-Rise",
            "--images", cluster.images, *RISE]
    assert main([*base, "--out", local]) == 0
    capsys.readouterr()
    first = parts_folder(Layout(far).explanations("Tiny", "Rise"))
    second = parts_folder(Layout(far).explanations("Tiny2", "Rise"))

    # 1. The driver of a run dies (SIGKILL) once a part is written, and its worker with it:
    # the complete parts stay, nothing is merged.
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-c", "import sys; from dina_datasets.cli import main; "
               "sys.exit(main())", *base, "--out", far, "--engine", "ray", "--address",
               address, "--workers", "1", "--no-progress"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not complete_parts(first):
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "no part was written in time"
        time.sleep(0.01)
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 60
    while worker_pids() and time.monotonic() < deadline:  # its worker dies with it
        time.sleep(0.1)
    assert not worker_pids()
    kept = len(complete_parts(first)) + len(complete_parts(second))
    assert 1 <= kept < 6
    assert not os.path.exists(Layout(far).explanations("Tiny", "Rise"))

    # 2. The re-run resumes; a worker killed (SIGKILL) once a part more is written is
    # restarted by Ray, which runs its part again.
    killed = []

    def kill() -> None:
        pid = sorted(worker_pids())[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    watcher = when(lambda: len(complete_parts(first)) + len(complete_parts(second)) > kept
                   and len(worker_pids()) == 2, kill)
    assert main([*base, "--out", far, "--engine", "ray", "--workers", "2"]) == 0
    watcher.join()
    out, err = capsys.readouterr()
    assert killed and "Ray restarted 1 worker process(es)" in out, out
    assert re.search(r"parts (\d+)/\1, [\d.]+ img/s, ETA 00:00:00 \(2 worker", err), err
    assert sum(map(int, re.findall(r"(\d+) already complete", out))) == kept, out
    for model in ("Tiny", "Tiny2"):
        url = Layout(far).explanations(model, "Rise")
        with open(url, "rb") as a, open(Layout(local).explanations(model, "Rise"), "rb") as b:
            assert a.read() == b.read(), model
        assert not os.path.exists(parts_folder(url))


def test_evaluate_on_ray_writes_the_local_bytes(cluster, tmp_path):
    pytest.importorskip("tensorflow")
    from dina_datasets.registry import load_registry

    load_registry(cluster.registry)
    configs = ["Tiny-SmoothGrad", "Tiny2-SmoothGrad"]
    data = str(tmp_path / "maps")
    make_bucket(data, configs, n=IMAGES, scores=False, size=32)  # joined by position
    base = ["evaluate", "--registry", cluster.registry, "--configs", *configs, "--data-url",
            data, "--images", cluster.images, "--assume-order", "--weights", "none", "--metrics",
            "Deletion", "Sparseness", "RandomLogitMetric", "--subsample", "2", "--part-size",
            "2", "--batch-size", "4"]
    local, far = str(tmp_path / "local"), str(tmp_path / "ray")
    # the local run in a fresh process, as a user runs it: a long-lived process that traced
    # the explainers' tf.functions for other shapes first may compute their gradients with
    # other kernels (float32's last digits), and a Ray actor is a fresh process too
    done = subprocess.run([sys.executable, "-c", "import sys; from dina_datasets.cli import "
                           "main; sys.exit(main())", *base, "--out", local],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main([*base, "--out", far, "--engine", "ray", "--workers", "2"]) == 0
    for name in configs:
        model, explainer = name.split("-")
        for metric in ("Deletion", "Sparseness", "RandomLogitMetric"):
            url = Layout(far).scores(model, explainer, metric)
            with open(url, "rb") as a, \
                    open(Layout(local).scores(model, explainer, metric), "rb") as b:
                assert a.read() == b.read(), (name, metric)
            assert not os.path.exists(parts_folder(url))
