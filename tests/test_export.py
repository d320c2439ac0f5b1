"""The Hub-native export, its card, `dina export` and the checks of `dina push`."""

from __future__ import annotations

import glob
import os
import posixpath

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import make_bucket

from dina_datasets import Layout, RecordError, catalog
from dina_datasets.cli import main
from dina_datasets.hf.audit import check_export
from dina_datasets.hf.builder import DinaBuilder
from dina_datasets.hf.card import HUB_README, TEMPLATE, metadata, published_card, render
from dina_datasets.hf.export import export, resolve_configs, scan

CONFIGS = ["ResNet50-Saliency", "DinoV2-Rise"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    root = str(base / "bucket")
    maps = make_bucket(root, CONFIGS, n=5, keys=True)
    out = str(base / "out")
    export(CONFIGS, out, data_url=root, max_shard_bytes=1_300_000)
    return root, out, maps


def builder_rows(root, name, cache):
    builder = DinaBuilder(config_name=name, data_url=root, cache_dir=str(cache))
    builder.download_and_prepare()
    return builder.as_dataset("validation").with_format("numpy")[:]


def assert_same_rows(got, want):
    assert list(got) == list(want)
    for column in want:
        if want[column].dtype == object:
            assert list(got[column]) == list(want[column]), column
        else:
            np.testing.assert_array_equal(got[column], want[column], err_msg=column)


@pytest.mark.parametrize("name", CONFIGS)
def test_stock_load_dataset_gives_the_builder_rows(exported, tmp_path, name):
    root, out, maps = exported
    want = builder_rows(root, name, tmp_path / "ours")
    ds = datasets.load_dataset(out, name, split="validation", cache_dir=str(tmp_path / "stock"))
    assert ds.features == DinaBuilder(config_name=name, cache_dir=str(tmp_path)).info.features
    assert_same_rows(ds.with_format("numpy")[:], want)
    stream = datasets.load_dataset(out, name, split="validation", streaming=True)
    rows = list(stream.with_format("numpy"))
    got = {c: np.stack([r[c] for r in rows]) if c == "explanation" else
           np.array([r[c] for r in rows], dtype=want[c].dtype) for c in want}
    assert_same_rows(got, want)
    np.testing.assert_array_equal(got["explanation"], maps[name])


def test_shards_stay_under_the_limit(exported):
    _, out, _ = exported
    files = sorted(glob.glob(os.path.join(out, "ResNet50-Saliency", "*.parquet")))
    assert [os.path.basename(f) for f in files] == [
        f"validation-{i:05d}-of-00003.parquet" for i in range(3)]
    assert all(os.path.getsize(f) <= 1_300_000 for f in files)
    assert [pq.read_metadata(f).num_rows for f in files] == [2, 2, 1]
    assert not glob.glob(os.path.join(out, "**", "*.tmp-*"), recursive=True)


def test_readme_lists_configs_and_infos(exported):
    _, out, _ = exported
    with open(os.path.join(out, "README.md")) as handle:
        meta = metadata(handle.read())
    assert [c["config_name"] for c in meta["configs"]] == ["DinoV2-Rise", "ResNet50-Saliency",
                                                           "scores"]
    assert meta["configs"][0]["data_files"] == [
        {"split": "validation", "path": "DinoV2-Rise/validation-*.parquet"}]
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    assert infos["DinoV2-Rise"]["splits"][0]["num_examples"] == 5
    explanation = next(f for f in infos["DinoV2-Rise"]["features"] if f["name"] == "explanation")
    assert explanation["dtype"] == {"array3_d": {"shape": [224, 224, 1], "dtype": "float32"}}
    assert meta["pretty_name"].startswith("DINA")
    assert [c.name for c in check_export(out)] == ["DinoV2-Rise", "ResNet50-Saliency", "scores"]


def test_binary_encoding(tmp_path):
    root = str(tmp_path / "bucket")
    maps = make_bucket(root, ["DinoV2-Rise"], n=4)
    out = str(tmp_path / "out")
    export(["DinoV2-Rise"], out, data_url=root, encoding="binary")
    ds = datasets.load_dataset(out, "DinoV2-Rise", split="validation",
                               cache_dir=str(tmp_path / "c"))
    assert ds.features["explanation"] == datasets.Value("binary")
    decoded = np.stack([np.frombuffer(v, "<f4").reshape(224, 224, 1)
                        for v in ds["explanation"]])
    np.testing.assert_array_equal(decoded, maps["DinoV2-Rise"])
    assert ds["index"] == [0, 1, 2, 3]


def test_reexport_replaces_stale_shards_and_keeps_other_configs(tmp_path):
    root = str(tmp_path / "bucket")
    make_bucket(root, CONFIGS, n=5)
    out = str(tmp_path / "out")
    export(["ResNet50-Saliency"], out, data_url=root, max_shard_bytes=700_000)
    assert len(glob.glob(os.path.join(out, "ResNet50-Saliency", "*.parquet"))) == 5
    found = export(["DinoV2-Ri*"], out, data_url=root)
    assert [c.name for c in found] == ["DinoV2-Rise", "ResNet50-Saliency", "scores"]
    export(["resnet50-saliency"], out, data_url=root)
    assert [os.path.basename(f) for f in glob.glob(os.path.join(out, "ResNet50-Saliency", "*"))
            ] == ["validation-00000-of-00001.parquet"]
    ds = datasets.load_dataset(out, "ResNet50-Saliency", split="validation",
                               cache_dir=str(tmp_path / "c"))
    assert ds["index"] == [0, 1, 2, 3, 4]
    # and the scores table of both: 2 configs x (5 metrics x 5 + 3 metrics x 3 images)
    assert [c.num_examples for c in scan(out)] == [5, 5, 2 * 34]


def files_and_times(folder):
    return {f: os.path.getmtime(f) for f in glob.glob(os.path.join(folder, "**"), recursive=True)
            if os.path.isfile(f)}


def test_failed_export_leaves_no_partial_file(tmp_path):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["ResNet50-Rise"], n=5)
    out = str(tmp_path / "out")
    export(["ResNet50-Rise"], out, data_url=root)
    before = files_and_times(out)
    url = Layout(root).explanations("ResNet50", "Rise")
    with open(url, "r+b") as handle:
        handle.seek(os.path.getsize(url) - 100)
        handle.write(b"\x00" * 8)
    with pytest.raises(RecordError, match="CRC"):
        export(["ResNet50-Rise"], out, data_url=root)
    assert files_and_times(out) == before


def test_resolve_configs():
    assert resolve_configs(["all"]) == [c.name for c in catalog.published_cells()]
    assert len(resolve_configs(["*-Sobel"])) == len(catalog.MODELS)
    assert resolve_configs(["dinov2-rise", "DinoV2-Ri*"]) == ["DinoV2-Rise"]
    assert len(resolve_configs(["*-GradCAM"])) == 5
    with pytest.raises(ValueError, match="did you mean"):
        resolve_configs(["DinoV2-Rize"])
    with pytest.raises(ValueError, match="no config matches"):
        resolve_configs(["Nope-*"])


def test_cli_export(tmp_path, capsys):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=3)
    out = str(tmp_path / "out")
    assert main(["export", "DinoV2-Rise", "--data-url", root, "--out", out]) == 0
    captured = capsys.readouterr()
    assert "1 configs, 3 rows, 1 Parquet files" in captured.out
    assert "DinoV2-Rise" in captured.err  # the progress bar
    assert main(["export", "DinoV2-Rize", "--data-url", root, "--out", out]) == 2
    assert "did you mean 'DinoV2-Rise'" in capsys.readouterr().err
    assert main(["export", "ResNet50-Rise", "--data-url", root, "--out", out]) == 2
    assert "no explanations for ResNet50-Rise" in capsys.readouterr().err


def test_push_checks_before_uploading(exported, tmp_path, capsys):
    _, out, _ = exported
    assert main(["push", out, "--repo-id", "someone/dina", "--dry-run"]) == 0
    assert "3 configs, 78 rows" in capsys.readouterr().out  # 2 configs + the scores table
    for repo_id in ("dina", "a/b/c", "-x/dina", "x/di na", "x/dina.git", "x/a--b"):
        assert main(["push", out, f"--repo-id={repo_id}", "--dry-run"]) == 2, repo_id
        assert "--repo-id" in capsys.readouterr().err
    assert main(["push", str(tmp_path / "nothing"), "--repo-id", "a/b", "--dry-run"]) == 2
    assert "is not a folder" in capsys.readouterr().err

    broken = tmp_path / "broken"
    os.makedirs(broken / "DinoV2-Rise")
    assert main(["push", str(broken), "--repo-id", "a/b", "--dry-run"]) == 2
    assert "has no README.md" in capsys.readouterr().err
    (broken / "README.md").write_text("---\npretty_name: x\n---\nbody\n")
    assert main(["push", str(broken), "--repo-id", "a/b", "--dry-run"]) == 2
    assert "no YAML `configs:` block" in capsys.readouterr().err
    (broken / "README.md").write_text(render("---\n---\n", ["DinoV2-Rise"]))
    assert main(["push", str(broken), "--repo-id", "a/b", "--dry-run"]) == 2
    assert "matches no file" in capsys.readouterr().err
    (broken / "DinoV2-Rise" / "validation-00000-of-00001.parquet.tmp-1234").write_bytes(b"x")
    assert main(["push", str(broken), "--repo-id", "a/b", "--dry-run"]) == 2
    assert "half-written" in capsys.readouterr().err


def test_readme_must_list_every_config_present(exported, tmp_path):
    _, out, _ = exported
    partial = tmp_path / "partial"
    import shutil

    shutil.copytree(out, partial)
    (partial / "README.md").write_text(render("---\n---\n", ["DinoV2-Rise"]))
    with pytest.raises(FileNotFoundError, match="does not list the configs ResNet50-Saliency"):
        check_export(str(partial))


def _no_remote_card(self, repo_id, filename, **kw):
    from huggingface_hub.errors import EntryNotFoundError

    raise EntryNotFoundError(f"{filename} not in {repo_id}")


def test_push_uploads_with_huggingface_hub(exported, monkeypatch, capsys):
    from huggingface_hub import HfApi

    _, out, _ = exported
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(
        ("create_repo", repo_id, kw)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(
        ("upload_folder", kw)))
    monkeypatch.setattr(HfApi, "hf_hub_download", _no_remote_card)
    assert main(["push", out, "--repo-id", "someone/dina", "--private"]) == 0
    assert calls[0] == ("create_repo", "someone/dina",
                        {"repo_type": "dataset", "private": True, "exist_ok": True})
    upload = calls[1][1]
    assert upload["folder_path"] == out and upload["repo_type"] == "dataset"
    assert upload["allow_patterns"] == ["README.md", "DinoV2-Rise/validation-*.parquet",
                                        "ResNet50-Saliency/validation-*.parquet",
                                        "scores/validation-*.parquet"]
    assert upload["delete_patterns"] == upload["allow_patterns"][1:]
    assert "uploaded to https://huggingface.co/datasets/someone/dina" in capsys.readouterr().out


def test_cards_are_in_sync_with_the_catalog():
    template = TEMPLATE.read_text()
    assert template == published_card(template), "run `python -m dina_datasets.hf.card`"
    assert HUB_README.read_text() == template
    meta = yaml.safe_load(template.split("---\n")[1])
    names = [c["config_name"] for c in meta["configs"]]
    assert names == [cell.name for cell in catalog.published_cells()] and len(names) == 117
    for entry in meta["configs"]:
        assert entry["data_files"] == [{"split": "validation",
                                        "path": f"{entry['config_name']}/validation-*.parquet"}]


def _readme(out):
    """The export's card: its metadata, and its text with whitespace runs made one space."""
    with open(os.path.join(out, "README.md")) as handle:
        text = handle.read()
    return metadata(text), " ".join(text.split())


def test_card_of_an_export_is_generated_from_what_was_exported(tmp_path):
    from dina_datasets.runs import parts

    root = str(tmp_path / "bucket")
    make_bucket(root, ["ResNet50-GradCAM", "DinoV2-Rise"], n=4, keys=True)
    url = Layout(root).explanations("ResNet50", "GradCAM")
    parts.write_manifest(url, parts.make_manifest(
        "ResNet50-GradCAM", "ResNet50", "GradCAM", [(f"img_{i:03d}", -1, f"img_{i:03d}.png")
                                                    for i in range(4)],
        weights="none", batch_size=8, part_size=256, seed=0, params={},
        images_source="demo/images", explainer_params={},
        model_source="keras_cv_attention_models.resnet_family.ResNet50D()"))
    out = str(tmp_path / "hub")
    export(["ResNet50-GradCAM"], out, data_url=root)
    meta, text = _readme(out)
    assert meta["size_categories"] == ["n<1K"] and "source_datasets" not in meta
    assert "| ResNet50-GradCAM | 4 | generated with `dina generate`, weights: none |" in text
    assert "**ResNet50-GradCAM** was generated with `dina generate` (not by the DINA" in text
    assert "weights `none` (random initialisation" in text
    assert "`keras_cv_attention_models.resnet_family.ResNet50D()`" in text
    assert f"numpy {np.__version__}" in text and "4 images from `demo/images`" in text
    for claim in ("computed by the DINA authors", "50,000 rows", "1M<n<10M"):
        assert claim not in text, claim
    # a second config, of unknown origin, joins the folder: the first keeps its provenance
    export(["DinoV2-Rise"], out, data_url=root)
    meta, text = _readme(out)
    assert "This repository holds 2 configuration(s), 8 rows in all" in text
    assert "| DinoV2-Rise | 4 | not recorded (no generation manifest" in text
    assert "The origin of DinoV2-Rise is not recorded" in text
    assert "**ResNet50-GradCAM** was generated" in text
    assert "| scores | " in text and "The `scores` config holds their per-image scores" in text
    assert [c.provenance["origin"] for c in scan(out) if c.name != "scores"] == [
        "unknown", "generated"]
    assert meta["size_categories"] == ["n<1K"]


def test_published_files_are_recognised(tmp_path, monkeypatch):
    from dina_datasets.hf.export import provenance
    from dina_datasets.hf.source import Source

    monkeypatch.setattr(catalog, "NUM_IMAGES", 5)  # the published files hold 50,000 maps
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=5)  # no keys, no manifest: like the bucket's files
    make_bucket(str(tmp_path / "keyed"), ["DinoV2-Rise"], n=5, keys=True)
    cell = catalog.Cell.from_name("DinoV2-Rise")
    assert provenance(Source.open(cell, root)) == {"origin": "published"}
    assert provenance(Source.open(cell, str(tmp_path / "keyed"))) == {"origin": "unknown"}
    make_bucket(root, ["DinoV2-Saliency"], n=4)
    assert provenance(Source.open(catalog.Cell.from_name("DinoV2-Saliency"), root)) == {
        "origin": "unknown"}


def _interrupt_after(rows):
    """A progress callback that stops the export (like Ctrl-C) once `rows` rows are written."""
    def progress(config, total):
        written = [0]

        def update(n):
            written[0] += n
            if written[0] > rows:
                raise KeyboardInterrupt
        return update
    return progress


def test_interrupted_reexport_is_all_or_nothing(tmp_path):
    # the scenario: 10 rows in 5 shards, re-exported to 3 shards, stopped in the second
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=10, keys=True)
    out = str(tmp_path / "out")
    export(["DinoV2-Rise"], out, data_url=root, max_shard_bytes=420_000)
    first = sorted(os.listdir(os.path.join(out, "DinoV2-Rise")))
    assert len(first) == 5
    with pytest.raises(KeyboardInterrupt):
        export(["DinoV2-Rise"], out, data_url=root, max_shard_bytes=830_000,
               progress=_interrupt_after(4))
    assert sorted(os.listdir(os.path.join(out, "DinoV2-Rise"))) == first
    pattern = os.path.join(out, "DinoV2-Rise", "validation-*.parquet")  # docs/loading.md
    ds = datasets.load_dataset("parquet", data_files=pattern, split="train",
                               cache_dir=str(tmp_path / "c1"))
    assert sorted(ds["index"]) == list(range(10))
    assert [c.num_examples for c in check_export(out)] == [10, 10 * 5 + 3 * 3]
    # finished, the re-export replaces the shards
    export(["DinoV2-Rise"], out, data_url=root, max_shard_bytes=830_000)
    assert sorted(os.listdir(os.path.join(out, "DinoV2-Rise"))) == [
        f"validation-{i:05d}-of-00003.parquet" for i in range(3)]
    assert [c.num_examples for c in check_export(out)] == [10, 59]
    assert sorted(os.listdir(out)) == ["DinoV2-Rise", "README.md", "scores"]


def test_check_export_counts_rows(tmp_path):
    import shutil

    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=10, keys=True)
    five, three = str(tmp_path / "five"), str(tmp_path / "three")
    export(["DinoV2-Rise"], five, data_url=root, max_shard_bytes=420_000)
    export(["DinoV2-Rise"], three, data_url=root, max_shard_bytes=830_000)
    # what an interrupted re-export used to leave: the old 5 shards and 1 of the new 3
    mixed = os.path.join(five, "DinoV2-Rise", "validation-00000-of-00003.parquet")
    shutil.copy(os.path.join(three, "DinoV2-Rise", "validation-00000-of-00003.parquet"), mixed)
    with pytest.raises(FileNotFoundError, match="incomplete or mixed set of shards"):
        check_export(five)
    os.remove(mixed)
    check_export(five)
    # a complete set of shards whose rows are not those of README.md, or repeated
    shard = os.path.join(five, "DinoV2-Rise", "validation-00004-of-00005.parquet")
    table = pq.read_table(shard)
    pq.write_table(table.slice(0, 1), shard)
    with pytest.raises(FileNotFoundError, match="holds 9 rows but README.md's dataset_info "
                       "says 10"):
        check_export(five)
    pq.write_table(pq.read_table(os.path.join(five, "DinoV2-Rise",
                                              "validation-00000-of-00005.parquet")), shard)
    with pytest.raises(FileNotFoundError, match="10 rows but 8 distinct indices"):
        check_export(five)


def test_export_killed_mid_swap_is_recovered(tmp_path):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=4, keys=True)
    out = str(tmp_path / "out")
    export(["DinoV2-Rise"], out, data_url=root)
    folder = os.path.join(out, "DinoV2-Rise")
    (tmp_path / "out" / "DinoV2-Rise" / "notes.txt").write_text("mine")
    os.rename(folder, folder + ".tmp-old")  # killed between the two moves of the swap
    os.makedirs(folder + ".tmp-1234abcd")    # and a staging folder of another killed export
    with pytest.raises(FileNotFoundError, match="half-written"):
        check_export(out)
    export(["DinoV2-Rise"], out, data_url=root)
    assert sorted(os.listdir(folder)) == ["notes.txt", "validation-00000-of-00001.parquet"]
    assert sorted(os.listdir(out)) == ["DinoV2-Rise", "README.md", "scores"]
    assert check_export(out)[0].num_examples == 4


def test_push_refuses_to_replace_a_remote_card_of_other_data(exported, tmp_path, monkeypatch,
                                                           capsys):
    from huggingface_hub import HfApi

    _, out, _ = exported
    calls = []
    remote = tmp_path / "remote-README.md"
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(repo_id))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(kw))
    monkeypatch.setattr(HfApi, "hf_hub_download", lambda self, repo_id, filename, **kw:
                        str(remote))
    remote.write_text("---\nlicense: mit\n---\n# My own dataset\n")
    assert main(["push", out, "--repo-id", "someone/theirs"]) == 2
    err = capsys.readouterr().err
    assert "has a README.md that is not the card of a DINA export" in err
    assert "--overwrite" in err and calls == []
    assert main(["push", out, "--repo-id", "someone/theirs", "--overwrite"]) == 0
    assert len(calls) == 2
    with open(os.path.join(out, "README.md")) as handle:  # an earlier push: replaced freely
        remote.write_text(handle.read())
    assert main(["push", out, "--repo-id", "someone/dina"]) == 0
    assert len(calls) == 4


def test_export_and_subset_check_their_outputs_first(tmp_path, capsys):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=3, keys=True)
    out = tmp_path / "project"
    out.mkdir()
    (out / "README.md").write_text("# my project\n")
    args = ["export", "DinoV2-Rise", "--data-url", root, "--out", str(out)]
    # checked before the work: the missing bucket is not even looked at
    assert main([*args[:3], str(tmp_path / "nope"), *args[4:]]) == 2
    err = capsys.readouterr().err
    assert "README.md exists and is not the card of an earlier export" in err
    assert main(args) == 2
    capsys.readouterr()
    assert sorted(os.listdir(out)) == ["README.md"]
    assert (out / "README.md").read_text() == "# my project\n"
    assert main([*args, "--overwrite"]) == 0
    assert main(args) == 0  # its own card is replaced
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    assert main(["export", "DinoV2-Rise", "--data-url", root, "--out", str(notes)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    # subset: a parquet subset into the user's folder, records over a user's files
    sub = ["subset", "--configs", "DinoV2-Rise", "--indices", "0:2", "--data-url", root]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("# mine\n")
    assert main([*sub, "--out", str(mine), "--format", "parquet"]) == 2
    assert "README.md exists and is not the card" in capsys.readouterr().err
    assert sorted(os.listdir(mine)) == ["README.md"]
    cell = tmp_path / "cell" / "DinoV2" / "Rise"
    cell.mkdir(parents=True)
    (cell / "explanations.tfrecord").write_bytes(b"my own records")
    assert main([*sub, "--out", str(tmp_path / "cell")]) == 2
    assert "already holds files (explanations.tfrecord)" in capsys.readouterr().err
    assert (cell / "explanations.tfrecord").read_bytes() == b"my own records"
    assert main([*sub, "--out", str(tmp_path / "cell"), "--overwrite"]) == 0
    assert main([*sub, "--out", str(tmp_path / "cell")]) == 0  # its own subset: resumed
    assert "already complete, skipped" in capsys.readouterr().out
    assert main([*sub, "--out", str(notes)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("target, call, left", [
    # killed while writing the second new shard: the staging folder is left, the shards stay
    ("pyarrow.parquet:ParquetWriter.write_table", 2, 5),
    # killed between the two moves of the swap: the config folder is gone (0 rows), never
    # old and new together
    ("dina_datasets.hf.staging:_move", 2, 0),
])
def test_export_killed_with_sigkill_never_publishes_duplicates(tmp_path, target, call, left):
    import subprocess
    import sys

    from conftest import KILL_HOOK

    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=10, keys=True)
    out = str(tmp_path / "out")
    export(["DinoV2-Rise"], out, data_url=root, max_shard_bytes=420_000)
    (tmp_path / "dina_toy_kill.py").write_text(KILL_HOOK)
    code = (f"import dina_toy_kill; dina_toy_kill.arm({target!r}, {call}); "
            "import sys; from dina_datasets.cli import main; sys.exit(main())")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), *sys.path]))
    run = subprocess.run([sys.executable, "-c", code, "export", "DinoV2-Rise", "--data-url",
                          root, "--out", out, "--max-shard-bytes", "830000"], env=env,
                         capture_output=True, timeout=300)
    assert run.returncode == -9, run.stderr.decode()[-2000:]
    shards = glob.glob(os.path.join(out, "DinoV2-Rise", "validation-*.parquet"))
    assert len(shards) == left
    if shards:
        ds = datasets.load_dataset("parquet", data_files=shards, split="train",
                                   cache_dir=str(tmp_path / "c"))
        assert sorted(ds["index"]) == list(range(10))
    with pytest.raises(FileNotFoundError, match="half-written"):
        check_export(out)
    export(["DinoV2-Rise"], out, data_url=root, max_shard_bytes=830_000)  # tidies, completes
    assert [c.num_examples for c in check_export(out)] == [10, 59]
    assert sorted(os.listdir(out)) == ["DinoV2-Rise", "README.md", "scores"]


@pytest.mark.parametrize("where", ["local", "memory"])
def test_two_exports_at_once_never_publish_a_partial_set(tmp_path, monkeypatch, where):
    # export B of the same config starts and ends while export A is between its first and
    # second shard; B used to remove A's staging folder, and A then published 2 of 3 shards
    from dina_datasets import storage
    from dina_datasets.hf.source import Source

    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=10, keys=True)
    out = str(tmp_path / "out") if where == "local" else f"memory://two-{tmp_path.name}"
    tables, calls, second = Source.tables, [], []

    def during(self, *args, **kwargs):
        calls.append(None)
        if len(calls) == 2:
            try:
                second.append(export(["DinoV2-Rise"], out, data_url=root,
                                     max_shard_bytes=830_000))
            except Exception as error:  # what B met is asserted below
                second.append(error)
        return tables(self, *args, **kwargs)

    monkeypatch.setattr(Source, "tables", during)
    if where == "local":  # B is refused while A holds its staging folder; A completes
        found = export(["DinoV2-Rise"], out, data_url=root, max_shard_bytes=830_000)
        assert [c.num_examples for c in found] == [10, 59]
        assert isinstance(second[0], FileNotFoundError)
        assert "another export of config 'DinoV2-Rise'" in str(second[0])
    else:  # no lock on an object store: A sees that its staging folder lost shards
        with pytest.raises(FileNotFoundError, match="holds 2 of the 3 shards written"):
            export(["DinoV2-Rise"], out, data_url=root, max_shard_bytes=830_000)
        assert [c.num_examples for c in second[0]] == [10, 59]
    fs, path = storage.filesystem(out)
    files = sorted(posixpath.basename(f) for f in fs.find(posixpath.join(path, "DinoV2-Rise")))
    assert files == [f"validation-{i:05d}-of-00003.parquet" for i in range(3)]
    assert not fs.glob(posixpath.join(path, "*.tmp-*"))
    if where == "memory":
        fs.rm(path, recursive=True)


def test_an_export_of_another_config_recovers_a_killed_swap(tmp_path):
    # DinoV2-Rise's re-export killed between the two moves of its swap, then ResNet50-Rise
    # exported into the folder: its README used to drop DinoV2-Rise (left in
    # DinoV2-Rise.tmp-old) and check_export asked to rerun the export just run
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise", "ResNet50-Rise"], n=4, keys=True)
    out = str(tmp_path / "out")
    export(["DinoV2-Rise"], out, data_url=root)
    os.rename(os.path.join(out, "DinoV2-Rise"), os.path.join(out, "DinoV2-Rise.tmp-old"))
    found = export(["ResNet50-Rise"], out, data_url=root)
    assert [(c.name, c.num_examples) for c in found] == [
        ("DinoV2-Rise", 4), ("ResNet50-Rise", 4), ("scores", 58)]
    assert sorted(os.listdir(out)) == ["DinoV2-Rise", "README.md", "ResNet50-Rise", "scores"]
    assert [c.num_examples for c in check_export(out)] == [4, 4, 58]
    ds = datasets.load_dataset(out, "DinoV2-Rise", split="validation",
                               cache_dir=str(tmp_path / "c"))
    assert sorted(ds["index"]) == [0, 1, 2, 3]


def test_reexport_works_where_there_is_no_flock(tmp_path, monkeypatch):
    # Windows has no fcntl: a re-export must not take the config's own folder for a lock held
    from dina_datasets.hf import staging

    monkeypatch.setattr(staging, "fcntl", None)
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=3, keys=True)
    out = str(tmp_path / "out")
    export(["DinoV2-Rise"], out, data_url=root)
    assert [c.num_examples for c in export(["DinoV2-Rise"], out, data_url=root)] == [3, 24]


def test_reexport_to_gcs_swaps_and_recovers_on_the_object_store(emulator, tmp_path,
                                                                  fast_retries):
    # gs:// (a real GCS server): the swap moves objects one by one. An export killed while
    # the old shards were being removed (all copied to `.tmp-old`, 2 of 5 already gone) is
    # tidied by the next one, which publishes exactly its own shards.
    from conftest import BUCKET

    from dina_datasets import storage

    server, _, _ = emulator
    options = {"endpoint_url": server.endpoint}
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"], n=10, keys=True)
    out = f"{BUCKET}/export-{tmp_path.name}"
    fs, path = storage.filesystem(out, options)
    export(["DinoV2-Rise"], out, data_url=root, max_shard_bytes=420_000,
           storage_options=options)
    target = f"{path}/DinoV2-Rise"
    fs.copy(target, f"{target}.tmp-old", recursive=True)
    fs.rm([f"{target}/validation-0000{i}-of-00005.parquet" for i in (0, 3)])
    found = export(["DinoV2-Rise"], out, data_url=root, max_shard_bytes=830_000,
                   storage_options=options)
    assert [c.num_examples for c in found] == [10, 59]
    fs.invalidate_cache()
    assert sorted(p.rsplit("/", 1)[1] for p in fs.find(target)) == [
        f"validation-{i:05d}-of-00003.parquet" for i in range(3)]
    assert not [p for p in fs.find(path) if ".tmp-" in p]
    shards = fs.glob(f"{target}/validation-*.parquet")  # the docs' glob (HF is offline here)
    rows = [i for s in shards for i in pq.read_table(s, filesystem=fs)["index"].to_pylist()]
    assert sorted(rows) == list(range(10))
