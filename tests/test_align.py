"""`dina align` on simulated published buckets.

The maps are made by `dina generate` (a small registered conv model, random weights, Saliency)
for varied images (crops, flips, colour shifts of scikit-image's photos; PNG, JPEG and BMP
of many sizes) listed in a shuffled kecam json, then stripped to the published form (only
the `explanations` feature, no sidecar index) with float noise, as another machine would
have made them. Generation runs once per module; each scenario is a subset of its records.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dina_datasets import catalog, formats
from dina_datasets.align import fingerprints, matching
from dina_datasets.align import report as report_mod
from dina_datasets.cli import main
from dina_datasets.errors import ConfigError
from dina_datasets.images import is_placeholder
from dina_datasets.layout import Layout
from dina_datasets.recordio.records import RecordWriter, read_records

tf = pytest.importorskip("tensorflow")

SIZE = 32
BASE, DUPLICATES, FOREIGN = 230, 3, 12
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
OTHER_PHOTOS = ("camera", "coins", "colorwheel", "clock", "brick", "hubble_deep_field")


def toy(filters: int):
    def build(weights: str = "none"):
        inputs = tf.keras.Input((SIZE, SIZE, 3))
        x = tf.keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
        x = tf.keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = tf.keras.layers.GlobalAveragePooling2D()(x)
        return tf.keras.Model(inputs, tf.keras.layers.Dense(10, activation="softmax")(x))
    return build


def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return image[..., :3].astype(np.float32)


def make_images(folder, photos, n: int, seed: int) -> list[str]:
    """n varied images of `photos` in class folders (one per photo): random crops, flips,
    colour shifts, sizes 36..90 px, PNG / JPEG / BMP."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sources = [_photo(p) for p in photos]
    paths = []
    for i in range(n):
        k = i % len(photos)
        image = sources[k]
        h, w = image.shape[:2]
        side = int(min(h, w) * rng.uniform(0.3, 1.0))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = image[top:top + side, left:left + int(side * rng.uniform(0.8, 1.2))]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.3:
            crop = crop[::-1]
        crop = np.clip(crop * rng.uniform(0.7, 1.3, 3) + rng.uniform(-30, 30, 3), 0, 255)
        out = Image.fromarray(crop.astype(np.uint8)).resize(
            (int(rng.integers(36, 90)), int(rng.integers(36, 90))))
        suffix = ("png", "jpg", "bmp")[i % 3]
        path = folder / f"c{k}" / f"{folder.name}_{i:04d}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        out.save(path, quality=92) if suffix == "jpg" else out.save(path)
        paths.append(str(path))
    return paths


def kecam(path, images: list[str], labels: list[int]) -> str:
    with open(path, "w") as handle:
        json.dump({"info": {"base_path": ""}, "test": [
            {"image": p, "label": label} for p, label in zip(images, labels, strict=True)]},
            handle)
    return str(path)


def strip(source: str, target: str, indices, noise: float, seed: int,
          feature: str = "explanations") -> None:
    """The records of `source` at `indices` in the published form: only `feature`, with
    relative float noise, no sidecar index."""
    rows = list(read_records(source, tensors=frozenset({feature})))
    rng = np.random.default_rng(seed)
    with RecordWriter(target) as writer:
        for i in indices:
            value = np.asarray(rows[i][feature], np.float32)
            noisy = value + noise * value.std() * rng.standard_normal(value.shape)
            writer.write({feature: noisy.astype(np.float32)})


@dataclass
class World:
    root: Path
    base: list[str]
    dups: list[str]
    foreign: list[str]
    bucket: Callable[..., tuple[str, list[str]]]
    position: dict[str, int]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Generated maps and their published forms (see the module docstring)."""
    root = tmp_path_factory.mktemp("align")
    catalog.register_model("AlignToy", toy(8), input_size=SIZE, rescale_mode="torch",
                           replace=True)
    catalog.register_model("AlignToyB", toy(6), input_size=SIZE, rescale_mode="tf",
                           replace=True)
    catalog.register_model("AlignToyC", toy(6), input_size=SIZE, rescale_mode="tf",
                           replace=True)
    base = make_images(root / "base", PHOTOS, BASE, seed=1)
    dups = []
    for i in (5, 50, 150):  # exact copies under new names, in a folder of their own
        target = root / "copies" / f"copy_{i}{os.path.splitext(base[i])[1]}"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(base[i], target)
        dups.append(str(target))
    foreign = make_images(root / "foreign", OTHER_PHOTOS, FOREIGN, seed=2)
    everything = base + dups + foreign
    labels = [int(os.path.basename(os.path.dirname(p))[1:]) for p in base]
    labels += [labels[i] for i in (5, 50, 150)] + [7] * FOREIGN
    order = np.random.default_rng(5).permutation(len(everything))
    other = np.random.default_rng(6).permutation(len(everything))
    listed = kecam(root / "imagenet_data.json", [everything[i] for i in order],
                   [labels[i] for i in order])
    listed_other = kecam(root / "other.json", [everything[i] for i in other],
                         [labels[i] for i in other])
    generated = str(root / "generated")
    for model, source, extra in (("AlignToy", listed, ["--write-preprocess"]),
                                 ("AlignToyB", listed, []), ("AlignToyC", listed_other, [])):
        assert main(["generate", "--model", model, "--explainer", "Saliency", "--images",
                     source, "--out", generated, "--weights", "none", "--batch-size", "64",
                     "--no-progress", *extra]) == 0
    gen = Layout(generated)
    position = {p: k for k, p in enumerate(everything)}
    kind = np.array(["base"] * BASE + ["dup"] * DUPLICATES + ["foreign"] * FOREIGN)

    def bucket(name: str, keep: tuple[str, ...], noise: float = 1e-3, configs=("AlignToy",),
               preprocess: bool = False) -> tuple[str, list[str]]:
        """A stripped bucket of the records whose image is of a kind in `keep`; the image
        paths of its records, in record order."""
        out = Layout(str(root / name))
        for model in configs:
            ordering = other if model == "AlignToyC" else order
            picked = [k for k, i in enumerate(ordering) if kind[i] in keep]
            os.makedirs(os.path.dirname(out.explanations(model, "Saliency")))
            strip(gen.explanations(model, "Saliency"), out.explanations(model, "Saliency"),
                  picked, noise, seed=len(picked))
        picked = [k for k, i in enumerate(order) if kind[i] in keep]
        if preprocess:
            strip(gen.preprocess("AlignToy"), out.preprocess("AlignToy"), picked, noise, 3,
                  "preprocess_input")
        return str(root / name), [everything[order[k]] for k in picked]

    yield World(root, base, dups, foreign, bucket, position)
    for name in ("AlignToy", "AlignToyB", "AlignToyC"):
        catalog.unregister(name)


def aligned_paths(out: str) -> list[str]:
    """The image of each record; its placeholder id when it has none."""
    return [r.image_id if is_placeholder(r.image_id) else os.path.abspath(r.path)
            for r in formats.read_imagenet_json(out)]


def report(out: str) -> list[dict]:
    with open(out.replace(".json", ".report.json")) as handle:
        return json.load(handle)["records"]


@pytest.mark.parametrize("noise", [1e-3, 1e-2])
def test_exact_permutation_recovered(world, tmp_path, noise, capsys):
    data, expected = world.bucket(f"exact{noise}", ("base",), noise=noise)
    out = str(tmp_path / "aligned.json")
    assert main(["align", "AlignToy-Saliency", "--images", str(world.root / "base"), "--data-url",
                 data, "--out", out, "--weights", "none", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "to do: 230 records" in text and "estimate" in text and "230 matched" in text
    assert aligned_paths(out) == [os.path.abspath(p) for p in expected]
    rows = report(out)
    assert {r["status"] for r in rows} == {"matched"}
    assert min(r["similarity"] for r in rows) > 0.99
    with open(out.replace(".json", ".csv")) as handle:
        assert handle.readline().strip() == "record,status,image,candidate,similarity,margin"
    assert not os.path.exists(out + ".parts")  # parts removed once the outputs are written


def align(world: World, data: str, out, images: str | None = None, *extra: str,
          config: str = "AlignToy-Saliency") -> int:
    return main(["align", config, "--images", images or str(world.root / "base"),
                 "--data-url", data, "--out", str(out), "--weights", "none", "--no-progress",
                 *extra])


def test_near_distances_are_exact_so_duplicates_stay_ambiguous():
    """A record 1e-3 away from its image is at cosine distance ~5e-7: a few float32 steps
    below 1, and the float32 product's rounding differed between two columns holding the
    same image (a copy was 'matched' on a fresh machine). Distances are exact in float64."""
    rng = np.random.default_rng(1)
    images = fingerprints.fingerprints(rng.standard_normal((300, 20, 24, 3)))
    images = np.vstack([images, images[[7, 123, 250]]])  # exact copies in other columns
    noisy = images + 1e-3 * rng.standard_normal(images.shape) / 16  # 1e-3 of the values' sd
    records = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
    near = matching.top2(records, images)
    q, c = records.astype(np.float64), images[near.best].astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    np.testing.assert_allclose(near.distance, 0.5 * ((q - c) ** 2).sum(axis=1), rtol=1e-9,
                               atol=0)
    found = matching.assign(near)
    twins = {7, 123, 250, 300, 301, 302}
    assert {k for k, s in enumerate(found.status) if s == "ambiguous"} == twins
    assert all(found.image[k] == k for k in range(300) if k not in twins)


def test_near_copies_tied_in_float32_are_ordered_exactly():
    """Three images within float32 rounding of a record (adversarial review): an exact copy
    left out of the float32 top two was 'matched'; a near copy was matched instead of the
    record's own image; distances of ~5e-17 turned into similarities and back became 0."""
    rng = np.random.default_rng(0)
    base = fingerprints.fingerprints(rng.standard_normal((6, 20, 24)))

    def copy(scale):
        near = base[0] + scale / 16 * rng.standard_normal(fingerprints.DIM)
        return near / np.linalg.norm(near)

    exact_copy = np.vstack([base[0], copy(1e-4), base[0], base[1:]]).astype(np.float32)
    found = matching.assign(matching.top2(exact_copy[[0]], exact_copy))
    assert list(found.status) == ["ambiguous"]  # columns 0 and 2 are the same image
    own = np.vstack([copy(1e-4), copy(3e-4), base[0], base[1:]]).astype(np.float32)
    found = matching.assign(matching.top2(base[[0]].astype(np.float32), own))
    assert list(found.status) == ["matched"] and list(found.image) == [2]
    # a record and two copies one float32 step apart at 2 and at 3 values of one spacing:
    # distances ~1e-17, ratio 2/3 (ambiguous); as similarities and back they were 0 and not
    record = base[0].astype(np.float32)
    spacing = np.spacing(np.abs(record))
    values, counts = np.unique(spacing, return_counts=True)
    same = np.flatnonzero(spacing == values[counts >= 5][0])[:5]
    first, second = record.copy(), record.copy()
    first[same[:2]] = np.nextafter(first[same[:2]], np.float32(2))
    second[same[2:]] = np.nextafter(second[same[2:]], np.float32(2))
    near = matching.top2(record[None], np.vstack([first, second, base[1:]]))
    assert 0 < near.distance[0] < near.second_distance[0] < 1e-16
    assert list(matching.assign(near).status) == ["ambiguous"]


def test_matching_never_guesses():
    rng = np.random.default_rng(0)
    images = fingerprints.fingerprints(rng.standard_normal((6, 20, 24, 3)))
    images[5] = images[4]  # an exact duplicate
    records = images[[3, 1, 4, 0, 2]] + 1e-4 * rng.standard_normal((5, fingerprints.DIM))
    records = np.vstack([records, fingerprints.fingerprints(rng.standard_normal((1, 20, 24)))])
    found = matching.assign(matching.top2(records.astype(np.float32), images))
    assert list(found.status) == ["matched", "matched", "ambiguous", "matched", "matched",
                                  "unmatched"]
    assert list(found.image) == [3, 1, -1, 0, 2, -1] and found.candidate[2] in (4, 5)
    exact = matching.assign(matching.top2(images[[4]], images))  # two distances of 0
    assert list(exact.status) == ["ambiguous"]
    twice = matching.assign(matching.top2(images[[1, 1]], images[:3]))  # one image, 2 records
    assert list(twice.status) == ["ambiguous", "ambiguous"]
    flat = fingerprints.fingerprints(np.ones((1, 16, 16)))
    assert not flat.any()  # a constant map matches nothing
    with pytest.raises(ConfigError, match="smaller than the 16x16"):
        fingerprints.fingerprints(np.ones((1, 8, 8, 1)))


def test_duplicates_are_ambiguous(world, tmp_path):
    data, expected = world.bucket("dups", ("base", "dup"))
    listed = kecam(tmp_path / "local.json", world.base + world.dups, [0] * (BASE + DUPLICATES))
    out = tmp_path / "aligned.json"
    assert align(world, data, out, listed) == 0
    twins = {os.path.abspath(p) for i, p in enumerate(world.base) if i in (5, 50, 150)}
    twins |= {os.path.abspath(p) for p in world.dups}
    got = aligned_paths(str(out))
    rows = report(str(out))
    for k, (path, row, want) in enumerate(zip(got, rows, expected, strict=True)):
        if os.path.abspath(want) in twins:
            assert row["status"] == "ambiguous" and row["image"] == ""
            assert path == f"ambiguous-record-{k:06d}"
        else:
            assert row["status"] == "matched" and path == os.path.abspath(want)
    assert sum(r["status"] == "ambiguous" for r in rows) == 2 * DUPLICATES


def test_foreign_records_are_unmatched(world, tmp_path):
    data, expected = world.bucket("foreign", ("base", "foreign"))
    spare = make_images(tmp_path / "spare", PHOTOS, 20, seed=11)  # images with no record
    listed = kecam(tmp_path / "local.json", world.base + spare, [0] * (BASE + 20))
    out = tmp_path / "aligned.json"
    assert align(world, data, out, listed) == 0
    foreign = {os.path.abspath(p) for p in world.foreign}
    statuses = [r["status"] for r in report(str(out))]
    assert statuses.count("unmatched") == FOREIGN == round(0.05 * len(expected))
    for k, (path, status, want) in enumerate(zip(aligned_paths(str(out)), statuses, expected,
                                                 strict=True)):
        if os.path.abspath(want) in foreign:
            assert status == "unmatched" and path == f"unmatched-record-{k:06d}"
        else:
            assert status == "matched" and path == os.path.abspath(want)


def test_verify_other_models(world, tmp_path, capsys):
    data, expected = world.bucket("verify", ("base",),
                                  configs=("AlignToy", "AlignToyB", "AlignToyC"))
    out = tmp_path / "aligned.json"
    assert align(world, data, out, None, "--verify", "AlignToyB-Saliency",
                 "AlignToyC-Saliency", config="AlignToy-Rise") == 0
    text = capsys.readouterr().out
    assert "aligning AlignToy-Rise through AlignToy-Saliency: Rise is not among" in text
    assert "AlignToyB-Saliency: same order (200/200)" in text
    assert "AlignToyC-Saliency: different (" in text
    assert aligned_paths(str(out)) == [os.path.abspath(p) for p in expected]


def test_preprocess_route_needs_no_model(world, tmp_path, capsys):
    data, expected = world.bucket("pre", ("base",), preprocess=True)
    out = tmp_path / "aligned.json"
    assert main(["align", "AlignToy-Rise", "--images", str(world.root / "base"), "--data-url",
                 data, "--out", str(out), "--weights", "pretrained", "--no-progress"]) == 0
    assert "preprocess route" in capsys.readouterr().out
    assert aligned_paths(str(out)) == [os.path.abspath(p) for p in expected]


def test_shards_and_resume_give_the_same_result(world, tmp_path, capsys):
    data, expected = world.bucket("shards", ("base",))
    out = tmp_path / "aligned.json"
    assert align(world, data, out, None, "--check-only", "--part-size", "64") == 0
    text = capsys.readouterr().out
    assert "sample: 64 of 64 images match a record; estimate" in text
    assert "check passed" in text and not out.exists()
    for shard in ("2/3", "1/3", "3/3"):
        assert align(world, data, out, None, "--shard", shard, "--part-size", "64") == 0
        assert not out.exists()
    text = capsys.readouterr().out
    assert "shard 3/3: 1 part(s) written; 0 part(s) of 4 left" in text
    assert align(world, data, out, None, "--part-size", "64") == 0
    text = capsys.readouterr().out
    assert "0 of 230 images to explain" in text  # every part came from the shards
    assert aligned_paths(str(out)) == [os.path.abspath(p) for p in expected]
    assert align(world, data, out, None, "--part-size", "64") == 0
    assert "already complete" in capsys.readouterr().out


def test_bad_input_stops_with_the_reason(world, tmp_path, capsys, monkeypatch):
    data, _ = world.bucket("bad", ("base",))
    out = tmp_path / "aligned.json"
    assert align(world, data, out, str(world.root / "foreign")) == 2
    assert "lists 12 images but" in capsys.readouterr().err
    make_images(tmp_path / "wrong", OTHER_PHOTOS, BASE, seed=9)
    assert align(world, data, out, str(tmp_path / "wrong")) == 2
    err = capsys.readouterr().err
    assert "of 64 sampled images" in err and "not the images of this file" in err
    assert not out.exists()
    layout = Layout(data)  # a GradCAM cell whose records are 3-channel maps
    os.makedirs(os.path.dirname(layout.explanations("AlignToy", "GradCAM")))
    shutil.copyfile(layout.explanations("AlignToy", "Saliency"),
                    layout.explanations("AlignToy", "GradCAM"))
    assert main(["align", "AlignToy-GradCAM", "--images", str(world.root / "base"),
                 "--data-url", data, "--out", str(out), "--weights", "none"]) == 2
    assert "use --explainer Saliency" in capsys.readouterr().err
    assert align(world, data, out, None, "--explainer", "Rise") == 2
    assert "choose one of Saliency, GradientInput" in capsys.readouterr().err
    from keras_cv_attention_models import backend

    def no_network(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(backend, "get_file", no_network)
    real = str(tmp_path / "real")
    os.makedirs(os.path.dirname(Layout(real).explanations("EfficientNetV2", "Saliency")))
    with RecordWriter(Layout(real).explanations("EfficientNetV2", "Saliency")) as writer:
        for _ in range(3):
            writer.write({"explanations": np.ones((224, 224, 3), np.float32)})
    assert main(["align", "EfficientNetV2-Saliency", "--images", str(world.root / "base"),
                 "--data-url", real, "--out", str(out)]) == 2
    assert "--weights none" in capsys.readouterr().err and not out.exists()


def test_rerun_with_other_settings_is_refused(world, tmp_path, capsys):
    """A complete output is "already complete" for the same settings only: other weights or
    another explainer are refused (never reported complete); a cell aligned through Saliency
    without Saliency's file says which file is missing."""
    data, _ = world.bucket("rerun", ("base",))
    out = tmp_path / "aligned.json"
    assert align(world, data, out) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert align(world, data, out, None, "--explainer", "GradientInput") == 2
    assert "other settings (explainer differ)" in capsys.readouterr().err
    assert main(["align", "AlignToy-Saliency", "--images", str(world.root / "base"),
                 "--data-url", data, "--out", str(out), "--weights", "pretrained"]) == 2
    assert "(weights differ): pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert align(world, data, out) == 0
    assert "already complete" in capsys.readouterr().out
    layout = Layout(str(tmp_path / "ig"))  # only a 3-channel IntegratedGradients-like cell
    os.makedirs(os.path.dirname(layout.explanations("AlignToy", "IntegratedGradients")))
    shutil.copyfile(Layout(data).explanations("AlignToy", "Saliency"),
                    layout.explanations("AlignToy", "IntegratedGradients"))
    assert align(world, layout.root, tmp_path / "ig.json",
                 config="AlignToy-IntegratedGradients") == 2
    err = capsys.readouterr().err
    assert "aligned through AlignToy-Saliency" in err and "download that cell too" in err


def test_early_check_does_not_stop_a_cell_with_few_records(world, tmp_path, capsys):
    """5 records for 230 images: the 64 sampled images hold none of their images by chance
    (about 1 run in 5); the sample cannot tell, so the alignment runs and matches them."""
    from dina_datasets.images import list_images

    entries = list_images(str(world.root / "base"))
    sampled = set(np.random.default_rng(0).choice(len(entries), 64, replace=False).tolist())
    unseen = [e.path for i, e in enumerate(entries) if i not in sampled][:5]
    with open(world.root / "imagenet_data.json") as handle:
        record = {os.path.abspath(t["image"]): k for k, t in enumerate(json.load(handle)["test"])}
    data = Layout(str(tmp_path / "few"))
    os.makedirs(os.path.dirname(data.explanations("AlignToy", "Saliency")))
    strip(Layout(str(world.root / "generated")).explanations("AlignToy", "Saliency"),
          data.explanations("AlignToy", "Saliency"),
          [record[os.path.abspath(p)] for p in unseen], 1e-3, seed=8)
    out = tmp_path / "aligned.json"
    assert align(world, data.root, out) == 0
    assert "0 of 64 images match a record: too few records" in capsys.readouterr().out
    assert aligned_paths(str(out)) == [os.path.abspath(p) for p in unseen]


def test_published_cell_joins_after_alignment(world, tmp_path, capsys):
    """Once aligned, the keyless cell draws over its images (`dina show`, the explorer's
    sample) and pairs by image_id with a generated cell written in another order, its
    unmatched (foreign) records included: their placeholders pair with nothing."""
    from dina_datasets.analysis import scores
    from dina_datasets.analysis.table import open_scores
    from dina_datasets.explore.data import Explorer
    from dina_datasets.viz.figures import display_image, load_panels

    data, expected = world.bucket("joined", ("base", "foreign"))
    spare = make_images(tmp_path / "spare", PHOTOS, 20, seed=11)
    listed = kecam(tmp_path / "local.json", world.base + spare, [0] * (BASE + 20))
    out = str(tmp_path / "aligned.json")
    assert align(world, data, out, listed) == 0
    assert main(["generate", "--model", "AlignToy", "--explainer", "GradientInput",
                 "--images", str(world.root / "base"), "--out", data, "--weights", "none",
                 "--no-progress"]) == 0  # keyed records, sorted order: not the published one
    value = {formats.image_id_of(p): float(i) for i, p in enumerate(world.base + world.foreign)}
    layout = Layout(data)
    formats.write_scores(layout.scores("AlignToy", "Saliency", "Deletion"),
                         [value[formats.image_id_of(p)] for p in expected])
    ids = [formats.image_id_of(p) for p in sorted(world.base, key=formats.image_id_of)]
    formats.write_scores(layout.scores("AlignToy", "GradientInput", "Deletion"),
                         [value[i] + 1 for i in ids])
    table = str(tmp_path / "scores.parquet")
    scores.build(data, table, imagenet_json=out)
    matrix = open_scores(table).matrix("AlignToy", "Deletion", ["Saliency", "GradientInput"])
    assert matrix.paired_by == "image_id" and len(matrix.values) == BASE + FOREIGN
    both = ~np.isnan(matrix.values).any(axis=1)
    assert both.sum() == BASE
    np.testing.assert_array_equal(matrix.values[both, 1] - matrix.values[both, 0], 1.0)
    shown = [k for k, p in enumerate(expected) if p in world.base][:2]  # matched records

    picture = tmp_path / "show.png"
    assert main(["show", "AlignToy-Saliency", "--index", *map(str, shown), "--data-url", data,
                 "--images", out, "--out", str(picture)]) == 0
    assert picture.exists() and "2 image(s) x 1 config(s)" in capsys.readouterr().out
    rows = load_panels(["AlignToy-Saliency"], shown, data_url=data, images=out)
    for row, index in zip(rows, shown, strict=True):
        np.testing.assert_array_equal(row[0].image, display_image(expected[index], SIZE))
    explorer = Explorer(data, scores=table, images=out, imagenet_json=out, render_workers=0,
                        cache_dir=str(tmp_path / "cache"), say=lambda *_: None).open()
    sample = explorer.sample("Saliency", shown[1])
    assert sample.image_id == formats.image_id_of(expected[shown[1]])
    np.testing.assert_array_equal(sample.image, display_image(expected[shown[1]], SIZE))
    from dina_datasets import load_dataset

    ds = load_dataset("dina", "AlignToy-Saliency", split="validation", data_url=data,
                      imagenet_json=out, cache_dir=str(tmp_path / "hf"))
    foreign = set(world.foreign)
    assert ds["image_id"] == [f"unmatched-record-{k:06d}" if p in foreign else
                              formats.image_id_of(p) for k, p in enumerate(expected)]
    assert set(ds["label"]) == {-1, 0}


def test_align_over_gcs(world, tmp_path, capsys):
    """Records read with ranged requests from a real GCS server; outputs and parts there."""
    from gcs_server import Emulator

    from dina_datasets import storage

    data, expected = world.bucket("remote", ("base",))
    server = Emulator()
    try:
        options = {"endpoint_url": server.endpoint}
        fs, _ = storage.filesystem("gs://xai-deel", options)
        fs.put(data + "/", "xai-deel/pub/", recursive=True)
        out = "gs://xai-deel/out/aligned.json"
        assert main(["align", "AlignToy-Saliency", "--images", str(world.root / "base"),
                     "--data-url", "gs://xai-deel/pub", "--out", out, "--weights", "none",
                     "--storage-option", f"endpoint_url={server.endpoint}"]) == 0
        assert "230 matched" in capsys.readouterr().out
        refs = formats.read_imagenet_json(out, options)
        assert [os.path.abspath(r.path) for r in refs] == [os.path.abspath(p) for p in expected]
        fs.invalidate_cache()
        assert sorted(p.rsplit("/", 1)[1] for p in fs.find("xai-deel/out")) == [
            "aligned.csv", "aligned.json", "aligned.report.json"]
    finally:
        server.stop()


def test_ray_engine_shares_parts_with_a_local_run(toy, tmp_path):
    """`--engine ray`: the images' parts computed by a worker of a local Ray cluster (the
    toy model from its registry), resuming a local shard; the outputs are a local run's."""
    photos = sorted(str(p) for p in Path(toy.images).iterdir())
    order = np.random.default_rng(3).permutation(len(photos))
    listed = kecam(tmp_path / "listed.json", [photos[i] for i in order], [0] * len(photos))
    tiny = ["--registry", toy.registry, "--weights", "none", "--no-progress"]
    assert main(["generate", "--model", "Tiny", "--explainer", "Saliency", "--images", listed,
                 "--out", str(tmp_path / "gen"), *tiny]) == 0
    data = Layout(str(tmp_path / "pub"))
    os.makedirs(os.path.dirname(data.explanations("Tiny", "Saliency")))
    strip(Layout(str(tmp_path / "gen")).explanations("Tiny", "Saliency"),
          data.explanations("Tiny", "Saliency"), range(len(photos)), 1e-3, seed=4)
    run = ["align", "Tiny-Saliency", "--images", toy.images, "--data-url", data.root,
           "--registry", toy.registry, "--weights", "none", "--part-size", "4"]
    local, remote = str(tmp_path / "local.json"), str(tmp_path / "ray.json")
    assert main([*run, "--out", local, "--no-progress"]) == 0
    assert main([*run, "--out", remote, "--shard", "1/3", "--no-progress"]) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(toy.root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    # the command in a process of its own, which starts its own local Ray cluster: Ray's
    # servers are not forked from this one, which holds TensorFlow's threads
    done = subprocess.run([sys.executable, "-m", "dina_datasets.cli", *run, "--out", remote,
                           "--engine", "ray", "--workers", "1"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "8 of 12 images to explain" in done.stdout and "12 matched" in done.stdout
    assert "parts 2/2" in done.stderr and "(1 worker(s))" in done.stderr
    assert aligned_paths(remote) == [os.path.abspath(photos[i]) for i in order]
    for a, b in zip(report_mod.paths(local), report_mod.paths(remote), strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()


def test_evaluate_scores_an_aligned_cell_with_unmatched_records(world, tmp_path):
    """`dina evaluate --imagenet-json aligned.json` scores every matched record against its
    image and gives the records `dina align` left without one (unmatched) no score (NaN),
    instead of stopping at the first placeholder."""
    data, expected = world.bucket("evaluated", ("base", "foreign"))
    spare = make_images(tmp_path / "spare", PHOTOS, 20, seed=11)
    listed = kecam(tmp_path / "local.json", world.base + spare, [0] * (BASE + 20))
    out = str(tmp_path / "aligned.json")
    assert align(world, data, out, listed) == 0
    scored = str(tmp_path / "scored")
    assert main(["evaluate", "--model", "AlignToy", "--explainer", "Saliency", "--metrics",
                 "Deletion", "--data-url", data, "--imagenet-json", out, "--out", scored,
                 "--weights", "none", "--metric-param", "Deletion.nb_steps=4",
                 "--batch-size", "64", "--no-progress"]) == 0
    values = np.array(formats.read_scores(Layout(scored).scores("AlignToy", "Saliency",
                                                                "Deletion")), np.float64)
    foreign = np.array([p in set(world.foreign) for p in expected])
    assert len(values) == len(expected) and foreign.sum() == FOREIGN
    assert np.isnan(values[foreign]).all() and np.isfinite(values[~foreign]).all()


def test_constant_maps_are_named_not_blamed_on_the_images(world, tmp_path, capsys):
    """A cell whose maps are all zero (e.g. GradCAM of a saturated model) matches no image:
    the command says so, instead of blaming the images, the model or the weights."""
    data, expected = world.bucket("zeros", ("base",))
    url = Layout(data).explanations("AlignToy", "Saliency")
    shape = np.asarray(next(iter(read_records(url, 0, 1)))["explanations"]).shape
    os.remove(url)
    with RecordWriter(url) as writer:
        for _ in expected:
            writer.write({"explanations": np.zeros(shape, np.float32)})
    out = tmp_path / "aligned.json"
    assert align(world, data, out, str(world.root / "base")) == 2
    err = capsys.readouterr().err
    assert "constant maps" in err and "not the images of this file" not in err
    assert not out.exists()
