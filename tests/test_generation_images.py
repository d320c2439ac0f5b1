"""Image sources in a deterministic order, and preprocessing identical to kecam's own
evaluation pipeline (the one DINA called)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from dina_datasets.errors import ConfigError, DinaError, FormatError, LayoutError
from dina_datasets.images import ImageEntry, list_images

PIL = pytest.importorskip("PIL.Image")


def save(path, shape=(30, 40, 3), seed=0, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    PIL.fromarray(pixels).save(path, format=fmt)
    return str(path)


def test_class_folders_sorted_by_image_id_with_class_labels(tmp_path):
    root = tmp_path / "val"
    save(root / "n02" / "ILSVRC2012_val_00000001.JPEG", fmt="JPEG")
    save(root / "n01" / "ILSVRC2012_val_00000003.png")
    save(root / "n01" / "ILSVRC2012_val_00000002.jpg")
    save(root / "n03" / "ILSVRC2012_val_00000004.PNG", fmt="PNG")
    (root / "n03" / "notes.txt").write_text("not an image")
    (root / "empty").mkdir()
    entries = list_images(str(root))
    assert [(e.image_id, e.label) for e in entries] == [
        ("ILSVRC2012_val_00000001", 1), ("ILSVRC2012_val_00000002", 0),
        ("ILSVRC2012_val_00000003", 0), ("ILSVRC2012_val_00000004", 2)]
    assert entries[0].path == str(root / "n02" / "ILSVRC2012_val_00000001.JPEG")
    assert list_images(str(root)) == entries


def test_numeric_class_folders_use_their_number(tmp_path):
    for label in (2, 10):
        save(tmp_path / str(label) / f"x{label}.png")
    assert [e.label for e in list_images(str(tmp_path))] == [10, 2]


def test_flat_folder_and_kecam_json(tmp_path):
    flat = tmp_path / "flat"
    names = ["b.png", "a.jpg", "c.jpeg"]
    for i, name in enumerate(names):
        save(flat / name, seed=i)
    assert list_images(str(flat)) == [
        ImageEntry(str(flat / n), n.split(".")[0], -1) for n in ("a.jpg", "b.png", "c.jpeg")]
    doc = {"info": {"num_classes": 5, "base_path": str(flat)},
           "train": [], "test": [{"image": "c.jpeg", "label": 4}, {"image": "a.jpg", "label": 1}]}
    path = tmp_path / "imagenet_data.json"
    path.write_text(json.dumps(doc))
    assert list_images(str(path)) == [ImageEntry(str(flat / "c.jpeg"), "c", 4),
                                      ImageEntry(str(flat / "a.jpg"), "a", 1)]
    doc["validation"] = [{"image": str(flat / "b.png"), "label": 2}]
    doc["info"]["base_path"] = ""
    path.write_text(json.dumps(doc))
    assert list_images(str(path)) == [ImageEntry(str(flat / "b.png"), "b", 2)]


@pytest.mark.parametrize("content, match", [
    ("{not json", "is not JSON"), ("[1, 2]", "is not kecam's imagenet_data.json"),
    ('{"test": []}', "'test' \\(or 'validation'\\) list"),
    ('{"test": [{"label": 1}]}', r"test\[0\] = .* is not"),
    ('{"test": [{"image": "a.png", "label": "cat"}]}', r"'label': int")])
def test_bad_json_is_named(tmp_path, content, match):
    path = tmp_path / "data.json"
    path.write_text(content)
    with pytest.raises(FormatError, match=match) as err:
        list_images(str(path))
    assert "data.json" in str(err.value)


def test_bad_sources(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        list_images(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no images"):
        list_images(str(tmp_path / "empty"))
    save(tmp_path / "mixed" / "a.png")
    save(tmp_path / "mixed" / "cls" / "b.png")
    with pytest.raises(ConfigError, match="mixes images"):
        list_images(str(tmp_path / "mixed"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a kecam .json"):
        list_images(str(tmp_path / "file.txt"))


def test_structure_val_then_make_json_matches_the_folder_order(tmp_path):
    from dina_datasets.generation.imagenet import make_imagenet_json, structure_val

    raw = tmp_path / "CLS-LOC"
    synsets = ["n02", "n01", "n02", "n03"]
    for i in range(len(synsets)):
        save(raw / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG", seed=i, fmt="JPEG")
        save(raw / "train" / synsets[i] / f"{synsets[i]}_{i}.JPEG", seed=i, fmt="JPEG")
    with pytest.raises(LayoutError, match="validation labels"):
        structure_val(str(raw))
    labels = raw / "imagenet_2012_validation_synset_labels.txt"
    labels.write_text("\n".join([*synsets, "n09"]) + "\n")
    with pytest.raises(LayoutError, match="ILSVRC2012_val_00000005.JPEG .* nothing was moved"):
        structure_val(str(raw))
    assert len(list((raw / "val").glob("*.JPEG"))) == 4
    labels.write_text("\n".join(synsets) + "\n")
    assert structure_val(str(raw)).moved == 4
    assert structure_val(str(raw)).already_structured
    assert sorted(p.parent.name for p in (raw / "val").rglob("*.JPEG")) == sorted(synsets)

    first = make_imagenet_json(str(raw / "val"), str(tmp_path / "a"), str(raw / "train"))
    second = make_imagenet_json(str(raw / "val"), str(tmp_path / "b.json"), str(raw / "train"))
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert first == second and first["info"]["num_classes"] == 3
    assert first["indices_2_labels"] == {"0": "n01", "1": "n02", "2": "n03"}
    assert [os.path.basename(t["image"]) for t in first["test"]] == [
        f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 2, 3, 4)]
    assert [t["label"] for t in first["test"]] == [1, 0, 1, 2]
    assert list_images(str(tmp_path / "a.json")) == list_images(str(raw / "val"))


def test_scripts_have_help():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("structure_val_imagenet", "make_imagenet_json", "compute_explanations"):
        done = subprocess.run([sys.executable, os.path.join(root, "scripts", f"{name}.py"),
                               "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


@pytest.fixture
def kecam():
    """The preprocessing tests need TensorFlow and kecam (the others run without them)."""
    pytest.importorskip("tensorflow")
    return pytest.importorskip("keras_cv_attention_models")


@pytest.mark.parametrize("rescale_mode", ["torch", "tf"])
def test_preprocessing_matches_kecams_evaluation_dataset(tmp_path, rescale_mode, kecam):
    from keras_cv_attention_models.imagenet import tf_data
    from skimage import data

    from dina_datasets import catalog
    from dina_datasets.generation.preprocessing import preprocess_images

    catalog.register_model("Probe", "unused:factory", input_size=64,
                           rescale_mode=rescale_mode, replace=True)
    try:
        paths = []
        for name, image in (("chelsea", data.chelsea()), ("coffee", data.coffee())):
            paths.append(str(tmp_path / f"{name}.jpg"))
            PIL.fromarray(image).save(paths[-1], quality=90)
        paths.append(save(tmp_path / "odd.png", shape=(37, 91, 3)))
        doc = {"info": {"num_classes": 3}, "train": [{"image": p, "label": i}
                                                      for i, p in enumerate(paths)],
               "test": [{"image": p, "label": i} for i, p in enumerate(paths)]}
        json_path = tmp_path / "data.json"
        json_path.write_text(json.dumps(doc))
        # DINA's call (deel/dina/utils/records.py), through kecam's own dataset code.
        _, test, *_ = tf_data.init_dataset(
            str(json_path), input_shape=(64, 64, 3), batch_size=8, eval_central_crop=0.95,
            resize_method="bicubic", resize_antialias=True, rescale_mode=rescale_mode)
        expected, _ = next(iter(test))
        ours = preprocess_images(paths, "Probe")
        assert ours.shape == (3, 64, 64, 3) and ours.dtype == np.float32
        np.testing.assert_array_equal(ours, expected.numpy())
        pixels = [np.asarray(PIL.open(p).convert("RGB")) for p in paths[2:]]
        np.testing.assert_array_equal(preprocess_images(pixels, "Probe"), ours[2:])
    finally:
        catalog.unregister("Probe")


def test_unreadable_image_is_named(tmp_path, kecam):
    from dina_datasets.generation.preprocessing import preprocess_images

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(DinaError, match="broken.jpg"):
        preprocess_images([str(bad)], "ResNet50")
    with pytest.raises(DinaError, match=os.path.basename("missing.png")):
        preprocess_images([str(tmp_path / "missing.png")], "ResNet50")
    with pytest.raises(ConfigError, match="expected"):
        preprocess_images([np.zeros((4, 4, 5))], "ResNet50")
