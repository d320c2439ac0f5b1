"""`dina subset` on local buckets: the configs present, slice rules, Parquet from Arrow."""

from __future__ import annotations

import os

import datasets
import numpy as np
import pytest
from conftest import make_bucket

from dina_datasets import Layout, read_explanations
from dina_datasets.cli import main
from dina_datasets.hf.export import export, scan


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """A bucket holding only two configs of the catalog, 4 records each (with keys)."""
    root = str(tmp_path_factory.mktemp("subset") / "bucket")
    maps = make_bucket(root, ["ResNet50-Saliency", "DinoV2-Rise"], n=4, keys=True)
    return root, maps


def subset_files(out):
    return sorted(os.path.relpath(os.path.join(d, f), out)
                  for d, _, files in os.walk(out) for f in files if f.endswith(".tfrecord"))


@pytest.mark.parametrize("configs, written", [
    (["all"], ["DinoV2/Rise/explanations.tfrecord", "ResNet50/Saliency/explanations.tfrecord"]),
    (["ResNet50-*"], ["ResNet50/Saliency/explanations.tfrecord"]),
    (["*-Rise", "resnet50-saliency"], ["DinoV2/Rise/explanations.tfrecord",
                                       "ResNet50/Saliency/explanations.tfrecord"]),
])
def test_configs_are_matched_against_those_present(partial, tmp_path, capsys, configs,
                                                   written):
    root, _ = partial
    out = str(tmp_path / "out")
    assert main(["subset", "--configs", *configs, "--indices", "0:2", "--data-url", root,
                 "--out", out]) == 0, capsys.readouterr().err
    assert subset_files(out) == written
    assert main(["subset", "--configs", "BeitV2-*", "--indices", "0:2", "--data-url", root,
                 "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "no config under" in err and "present: DinoV2-Rise, ResNet50-Saliency" in err


@pytest.mark.parametrize("spec, want", [("0:1000", [0, 1, 2, 3]), ("-2:", [2, 3]),
                                        ("1:1000:2", [1, 3]), ("3,0:2", [3, 0, 1])])
def test_indices_follow_slice_rules(partial, tmp_path, capsys, spec, want):
    root, maps = partial
    out = str(tmp_path / "out")
    assert main(["subset", "--configs", "DinoV2-Rise", f"--indices={spec}", "--data-url", root,
                 "--out", out]) == 0, capsys.readouterr().err
    assert f"1 configs x {len(want)} rows" in capsys.readouterr().out
    got = np.stack(list(read_explanations(Layout(out).explanations("DinoV2", "Rise"))))
    np.testing.assert_array_equal(got, maps["DinoV2-Rise"][want])
    # as read_explanations(stop=...) does with the full file
    full = list(read_explanations(Layout(root).explanations("DinoV2", "Rise"), 0, 1000))
    assert len(full) == 4


@pytest.mark.parametrize("spec, message", [("4", "index 4 is outside"),
                                           ("-5", "index -5 is outside"),
                                           ("6:9", "select no record"),
                                           ("0:3,2", "index 2 is given 2 times"),
                                           ("0:4:0", "step of 0")])
def test_bad_indices_are_one_clear_error(partial, tmp_path, capsys, spec, message):
    root, _ = partial
    out = tmp_path / "out"
    assert main(["subset", "--configs", "all", f"--indices={spec}", "--data-url", root,
                 "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_parquet_subset_has_the_export_rows(partial, tmp_path, capsys):
    root, _ = partial
    full = str(tmp_path / "full")
    export(["DinoV2-Rise"], full, data_url=root, encoding="binary")
    out = str(tmp_path / "hub")
    assert main(["subset", "--configs", "DinoV2-Rise", "--indices", "3,0:1000:2",
                 "--format", "parquet", "--encoding", "binary", "--data-url", root,
                 "--out", out]) == 0, capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["DinoV2-Rise", "README.md", "subset.json"]

    def load(folder):
        return datasets.load_dataset(folder, "DinoV2-Rise", split="validation",
                                     cache_dir=str(tmp_path / "c")).to_list()

    want = load(full)
    assert load(out) == [want[3], want[0], want[2]]


@pytest.mark.parametrize("argv, want", [(["-2:"], [2, 3]), (["0:1", "-1:"], [0, 3]),
                                        (["-3:-1"], [1, 2]), (["-1"], [3])])
def test_negative_ranges_work_as_the_docs_write_them(partial, tmp_path, capsys, argv, want):
    # docs/loading.md: `-10:` the last 10; argparse used to take "-2:" for an option
    root, maps = partial
    out = str(tmp_path / "out")
    assert main(["subset", "--configs", "DinoV2-Rise", "--indices", *argv, "--data-url", root,
                 "--out", out]) == 0, capsys.readouterr().err
    got = np.stack(list(read_explanations(Layout(out).explanations("DinoV2", "Rise"))))
    np.testing.assert_array_equal(got, maps["DinoV2-Rise"][want])


def test_done_is_called_one_config_at_a_time(partial, tmp_path):
    # `dina subset --jobs 2` printed "ResNet50-Saliency: 2 rows (written)DinoV2-Rise: ..." on
    # one line: its `done` ran in two threads at once
    import threading

    from dina_datasets.hf.subset import subset

    root, _ = partial
    guard, both, active, peak = threading.Lock(), threading.Event(), [0], []

    def done(result):
        with guard:
            active[0] += 1
            peak.append(active[0])
            first = len(peak) == 1
            if active[0] == 2:
                both.set()
        if first:  # the other config's call, if it may run now, enters meanwhile
            both.wait(timeout=3)
        with guard:
            active[0] -= 1

    results = subset(["all"], str(tmp_path / "out"), "0:2", data_url=root, jobs=2, done=done)
    assert len(results) == 2
    assert peak == [1, 1]


def test_a_parquet_subset_recovers_a_config_left_mid_swap(partial, tmp_path, capsys):
    # as `dina export` does: a config whose swap was killed is put back before the README
    # is written, not left out of it
    from dina_datasets.hf.audit import check_export

    root, _ = partial
    out = tmp_path / "out"
    argv = ["subset", "--indices", "0:2", "--data-url", root, "--out", str(out), "--format",
            "parquet", "--configs"]
    assert main([*argv, "DinoV2-Rise"]) == 0, capsys.readouterr().err
    os.rename(out / "DinoV2-Rise", out / "DinoV2-Rise.tmp-old")
    assert main([*argv, "ResNet50-Saliency"]) == 0, capsys.readouterr().err
    assert [(c.name, c.num_examples) for c in check_export(str(out))] == [
        ("DinoV2-Rise", 2), ("ResNet50-Saliency", 2)]


def test_a_rerun_names_the_same_source_however_it_is_written(partial, tmp_path, capsys,
                                                             monkeypatch):
    # `--data-url bucket/` (a shell's completion), then `bucket` or its absolute path: the
    # rerun used to be refused as "a subset of another source"
    root, _ = partial
    monkeypatch.chdir(os.path.dirname(root))
    name = os.path.basename(root)
    argv = ["subset", "--configs", "all", "--indices", "0:2", "--out", str(tmp_path / "out"),
            "--data-url"]
    assert main([*argv, f"{name}/"]) == 0, capsys.readouterr().err
    for source in (name, root, f"file://{root}/"):
        assert main([*argv, source]) == 0, capsys.readouterr().err
        assert capsys.readouterr().out.count("already complete, skipped") == 2
    import shutil

    copy = shutil.copytree(root, tmp_path / "copy")
    assert main([*argv, str(copy)]) == 2  # another folder is another source
    assert "holds a subset of another source" in capsys.readouterr().err


def test_a_parquet_subset_does_not_replace_an_export_of_all_rows(partial, tmp_path, capsys):
    # `dina subset --format parquet --out hub/` into a full export replaced its 4 rows by 1,
    # exit 0, without --overwrite
    root, _ = partial
    out = str(tmp_path / "hub")
    assert main(["export", "DinoV2-Rise", "--data-url", root, "--out", out]) == 0
    capsys.readouterr()
    argv = ["subset", "--configs", "DinoV2-Rise", "--indices", "0:1", "--data-url", root,
            "--out", out, "--format", "parquet"]
    assert main(argv) == 2
    assert "already holds 1 Parquet shard(s) of DinoV2-Rise" in capsys.readouterr().err
    assert [c.num_examples for c in scan(out) if c.name == "DinoV2-Rise"] == [4]
    assert main([*argv, "--overwrite"]) == 0
    assert [c.num_examples for c in scan(out) if c.name == "DinoV2-Rise"] == [1]
    assert main(argv) == 0  # its own subset now: resumed
    assert "already complete, skipped" in capsys.readouterr().out
