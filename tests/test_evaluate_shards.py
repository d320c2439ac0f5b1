"""Shards finishing together (issue 22, item 8): two processes joining the same parts at the
same time both end well (one writes the score file, the other finds it written), and two
real `dina evaluate --shard K/2` processes run at once leave the score files of a whole
run and no parts folder."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys

import numpy as np
from conftest import make_bucket

from dina_datasets import Layout
from dina_datasets.metrics import build
from dina_datasets.runs.parts import parts_folder

METRICS = ["Sparseness", "Complexity"]
ROUNDS = 8
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def finish_rounds(root: str, shard: int, barrier, results) -> None:
    """In a process of its own: each round, prepare shard `shard` of 2 (nothing left to
    score), wait for the other process, and join."""
    from dina_datasets.metrics.evaluation import finish, prepare

    for _ in range(ROUNDS):
        barrier.wait()  # the parts are back
        run = prepare("DinoV2", "Rise", METRICS, data_url=root, part_size=1,
                      shard=(shard, 2))
        barrier.wait()  # both prepared: join together
        try:
            results.put(("ok", finish(run).summary()))
        except Exception as err:  # reported to the test, which fails on it
            results.put(("error", repr(err)))
        barrier.wait()


def test_two_processes_joining_the_same_parts_at_once_both_end_well(tmp_path):
    from dina_datasets.metrics.evaluation import prepare
    from dina_datasets.metrics.scorer import PartScorer

    root = str(tmp_path / "bucket")
    maps = make_bucket(root, ["DinoV2-Rise"], n=300, scores=False, size=4)["DinoV2-Rise"]
    run = prepare("DinoV2", "Rise", METRICS, data_url=root, part_size=1)
    scorer = PartScorer(run)
    for part in run.todo:  # every part scored, none joined: both shards are done
        scorer.score(part)
    layout = Layout(root)
    folders = [parts_folder(layout.scores("DinoV2", "Rise", m)) for m in METRICS]
    saved = str(tmp_path / "saved")
    for i, folder in enumerate(folders):
        shutil.copytree(folder, os.path.join(saved, str(i)))
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3, timeout=300), context.Queue()
    workers = [context.Process(target=finish_rounds, args=(root, k, barrier, results))
               for k in (1, 2)]
    for worker in workers:
        worker.start()
    try:
        for _ in range(ROUNDS):
            for i, folder in enumerate(folders):
                for metric in METRICS:
                    for url in (layout.scores("DinoV2", "Rise", metric),
                                layout.settings("DinoV2", "Rise", metric)):
                        if os.path.exists(url):
                            os.remove(url)
                shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(os.path.join(saved, str(i)), folder)
            barrier.wait()
            barrier.wait()
            barrier.wait()
            got = [results.get(timeout=60) for _ in workers]
            assert [kind for kind, _ in got] == ["ok", "ok"], got
            text = "\n".join(summary for _, summary in got)
            for metric in METRICS:  # each metric written once or found written
                assert text.count(f"{metric}: 300 scores") + text.count(
                    f"{metric}: joined by another shard") == 2, text
            assert not any(os.path.exists(f) for f in folders)
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    import json

    for metric in METRICS:
        with open(layout.scores("DinoV2", "Rise", metric)) as handle:
            np.testing.assert_allclose(json.load(handle), build(metric)(maps), rtol=1e-12)


def test_two_real_shards_run_at_once(tmp_path):
    root = str(tmp_path / "bucket")
    maps = make_bucket(root, ["DinoV2-Rise"], n=40, scores=False, size=4)["DinoV2-Rise"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]))
    command = [sys.executable, "-c", "import sys; from dina_datasets.cli import main; "
               "sys.exit(main())", "evaluate", "--model", "DinoV2",
               "--explainer", "Rise", "--data-url", root, "--metrics", *METRICS,
               "--part-size", "1"]
    procs = [subprocess.Popen([*command, "--shard", f"{k}/2"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for k in (1, 2)]
    outs = [proc.communicate(timeout=600) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    layout = Layout(root)
    for metric in METRICS:
        url = layout.scores("DinoV2", "Rise", metric)
        assert not os.path.exists(parts_folder(url)), os.listdir(parts_folder(url))
        import json

        with open(url) as handle:
            np.testing.assert_allclose(json.load(handle), build(metric)(maps), rtol=1e-12)
        assert os.path.exists(layout.settings("DinoV2", "Rise", metric))
