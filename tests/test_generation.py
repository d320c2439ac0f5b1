"""The generation pipeline end to end on a tiny Keras model: every explainer to DINA records,
read back with our reader and with TensorFlow's original loader; sharding, merge, resume."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from dina_datasets import Layout, catalog, read_records
from dina_datasets.errors import ConfigError, LayoutError

tf = pytest.importorskip("tensorflow")
from dina_datasets.cli import main  # noqa: E402
from dina_datasets.generation import parts  # noqa: E402
from dina_datasets.generation.explainers import make_explainer  # noqa: E402
from dina_datasets.generation.merge import merge  # noqa: E402
from dina_datasets.generation.models import build_model  # noqa: E402
from dina_datasets.generation.pipeline import generate  # noqa: E402
from dina_datasets.generation.preprocessing import preprocess_images  # noqa: E402

SIZE = 32
CLASSES = 10
# Cheap settings: the real hyperparameters make each map cost seconds on a 224 model.
CHEAP = {
    "VarGrad": {"nb_samples": 4}, "SmoothGrad": {"nb_samples": 4},
    "SquareGrad": {"nb_samples": 4}, "IntegratedGradients": {"steps": 4},
    "Rise": {"nb_samples": 32, "grid_size": 4}, "KernelShap": {"nb_samples": 16},
    "Occlusion": {"patch_size": 8, "patch_stride": 8}, "Lime": {"nb_samples": 16},
    "HsicAttributionMethod": {"grid_size": 4, "nb_design": 8},
    "SobolAttributionMethod": {"grid_size": 4, "nb_design": 8},
}
BUILTIN_EXPLAINERS = [n for n, s in catalog.EXPLAINERS.items() if not s.contributed]


def toy_model(weights: str = "none"):
    """A tiny classifier on 32x32 images with a conv layer (for GradCAM)."""
    inputs = tf.keras.Input((SIZE, SIZE, 3))
    x = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(CLASSES, activation="softmax")(x))


def make_images(root, n: int = 5) -> list[str]:
    """n small images (PNG and JPEG, various sizes) in two class folders."""
    from PIL import Image

    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        folder = root / ("n02_dog" if i % 2 else "n01_cat")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img_{i:03d}.{'png' if i % 3 else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, (36 + 3 * i, 44, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def toy():
    catalog.register_model("Toy", toy_model, input_size=SIZE, rescale_mode="torch",
                           replace=True)
    catalog.register_model("ToyDino", toy_model, input_size=SIZE, rescale_mode="tf",
                           operator="sum_targets", has_conv=False, replace=True)
    yield "Toy"
    catalog.unregister("Toy")
    catalog.unregister("ToyDino")
    tf.keras.backend.clear_session()


@pytest.fixture
def images(tmp_path):
    paths = make_images(tmp_path / "images")
    return str(tmp_path / "images"), paths


def tf_loader(url: str) -> list[dict]:
    """The original DINA loader, plus our join keys, with TensorFlow's own parser."""
    spec = {"explanations": tf.io.FixedLenFeature([], tf.string),
            "index": tf.io.FixedLenFeature([], tf.int64),
            "image_id": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
            "prediction": tf.io.FixedLenFeature([], tf.int64)}
    out = []
    for raw in tf.data.TFRecordDataset(url):
        parsed = tf.io.parse_single_example(raw, spec)
        out.append({"explanations": tf.io.parse_tensor(parsed["explanations"],
                                                       tf.float32).numpy(),
                    **{k: parsed[k].numpy() for k in ("index", "label", "prediction")},
                    "image_id": parsed["image_id"].numpy().decode()})
    return out


def expected(paths: list[str], model_name: str = "Toy"):
    """Preprocessed inputs, predictions and one-hot targets computed directly."""
    ordered = sorted(paths, key=lambda p: os.path.splitext(os.path.basename(p))[0])
    x = preprocess_images(ordered, model_name)
    model = build_model(model_name, "none")
    predictions = np.asarray(model(x)).argmax(-1)
    return ordered, x, model, predictions, np.eye(CLASSES, dtype=np.float32)[predictions]


@pytest.mark.parametrize("explainer", BUILTIN_EXPLAINERS)
def test_every_explainer_to_records(toy, images, tmp_path, explainer):
    src, paths = images
    out = str(tmp_path / "bucket")
    result = generate(toy, explainer, src, out, weights="none", batch_size=8,
                      params=CHEAP.get(explainer), progress=False)
    url = Layout(out).explanations("Toy", explainer)
    assert result.url == url and result.images == 5 and result.merged is not None
    assert not os.path.exists(parts.parts_folder(url))
    ours = list(read_records(url))
    theirs = tf_loader(url)
    shape = (SIZE, SIZE, catalog.explainer(explainer).channels)
    ordered, x, model, predictions, one_hot = expected(paths)
    assert len(ours) == len(theirs) == 5
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a["explanations"].shape == b["explanations"].shape == shape
        assert a["explanations"].dtype == np.float32
        np.testing.assert_array_equal(a["explanations"], b["explanations"])
        assert a["index"] == b["index"] == i
        assert a["image_id"].decode() == b["image_id"] == os.path.splitext(
            os.path.basename(ordered[i]))[0]
        assert a["label"] == b["label"] == (1 if "dog" in ordered[i] else 0)
        assert a["prediction"] == b["prediction"] == predictions[i]
    tf.keras.utils.set_random_seed(0)
    baseline = x.mean(axis=(0, 1, 2))
    direct = make_explainer(explainer, model, model_name="Toy", batch_size=8,
                            baseline=baseline, **CHEAP.get(explainer, {}))(x, one_hot)
    np.testing.assert_allclose(np.stack([r["explanations"] for r in ours]), direct,
                               rtol=1e-5, atol=1e-6)


def test_preprocess_file_in_the_original_format(toy, images, tmp_path):
    src, paths = images
    out = str(tmp_path / "bucket")
    generate(toy, "Saliency", src, out, weights="none", batch_size=2, part_size=3,
             write_preprocess=True, progress=False)
    url = Layout(out).preprocess("Toy")
    spec = {"preprocess_input": tf.io.FixedLenFeature([], tf.string),
            "one_hot_prediction": tf.io.FixedLenFeature([], tf.string)}
    rows = [tf.io.parse_single_example(raw, spec) for raw in tf.data.TFRecordDataset(url)]
    x_tf = np.stack([tf.io.parse_tensor(r["preprocess_input"], tf.float32).numpy()
                     for r in rows])
    hot_tf = np.stack([tf.io.parse_tensor(r["one_hot_prediction"], tf.float32).numpy()
                       for r in rows])
    _, x, _, predictions, one_hot = expected(paths)
    np.testing.assert_array_equal(x_tf, x)
    np.testing.assert_array_equal(hot_tf, one_hot)
    ours = [r["prediction"] for r in read_records(Layout(out).explanations("Toy", "Saliency"))]
    assert ours == predictions.tolist() == hot_tf.argmax(-1).tolist()

    # Another explainer on the same images reads the preprocess file instead of the images,
    # and writes the same bytes as a run that decodes and predicts.
    fresh = str(tmp_path / "fresh")
    for explainer, params in (("GradientInput", {}), ("IntegratedGradients", {"steps": 4})):
        reused = generate(toy, explainer, src, out, weights="none", params=params,
                          progress=False)
        assert any("read the preprocessed inputs" in note for note in reused.notes)
        alone = generate(toy, explainer, src, fresh, weights="none", params=params,
                         progress=False)
        assert not any("read the preprocessed" in note for note in alone.notes)
        with open(Layout(out).explanations("Toy", explainer), "rb") as a, \
                open(Layout(fresh).explanations("Toy", explainer), "rb") as b:
            assert a.read() == b.read()
    fewer = generate(toy, "Saliency", src, str(tmp_path / "other"), weights="none", limit=4,
                     progress=False)
    assert not any("read the preprocessed" in note for note in fewer.notes)
    other = generate(toy, "GradCAM", src, out, weights="none", limit=4, progress=False)
    assert not any("read the preprocessed" in note for note in other.notes)


def test_integrated_gradients_baseline_is_the_dataset_mean(toy, images, tmp_path, monkeypatch):
    from dina_datasets.generation import preprocessing
    from dina_datasets.metrics import plan

    calls = []
    one = preprocessing.dataset_mean
    monkeypatch.setattr(preprocessing, "dataset_mean",
                        lambda *args, **kwargs: calls.append(kwargs) or one(*args, **kwargs))
    src, paths = images
    out = str(tmp_path / "bucket")
    generate(toy, "IntegratedGradients", src, out, weights="none", batch_size=2,
             part_size=2, params={"steps": 4}, keep_parts=True, write_preprocess=True,
             progress=False)
    url = Layout(out).explanations("Toy", "IntegratedGradients")
    with open(os.path.join(parts.parts_folder(url), "baseline.json")) as handle:
        cached = json.load(handle)
    _, x, model, _, one_hot = expected(paths)
    np.testing.assert_allclose(cached["mean"], x.mean(axis=(0, 1, 2), dtype=np.float64),
                               rtol=1e-6)
    # Evaluation's baseline is the same computation, from the images or the preprocess file.
    cell = catalog.Cell("Toy", "IntegratedGradients", allow_missing=True)
    layout = Layout(out)
    for images_src in (src, None):
        mean = plan._dataset_mean(cell, images_src, None, layout, 5, 2, None)
        np.testing.assert_array_equal(mean, np.float32(cached["mean"]))
    first3 = plan._dataset_mean(cell, None, None, layout, 3, 2, None)
    np.testing.assert_allclose(first3, x[:3].mean(axis=(0, 1, 2), dtype=np.float64), rtol=1e-6)
    assert [bool(c.get("preprocess_url")) for c in calls] == [False, False, True, True]
    import xplique

    direct = xplique.attributions.IntegratedGradients(
        model, batch_size=2, steps=4, reducer=None,
        baseline_value=[float(v) for v in cached["mean"]]).explain(x, one_hot)
    maps = np.stack([r["explanations"] for r in read_records(url)])
    np.testing.assert_allclose(maps, np.asarray(direct), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="baseline"):
        make_explainer("IntegratedGradients", model, steps=4)


def test_sum_targets_operator_is_used(toy, images, tmp_path):
    src, paths = images
    model = build_model("ToyDino", "none")
    _, x, _, _, one_hot = expected(paths, "ToyDino")
    import xplique

    calls = []
    original = xplique.attributions.Saliency.__init__

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("operator"))
        original(self, *args, **kwargs)

    xplique.attributions.Saliency.__init__ = spy
    try:
        maps = make_explainer("Saliency", model, model_name="ToyDino")(x, one_hot)
    finally:
        xplique.attributions.Saliency.__init__ = original
    operator = calls[0]
    assert operator is not None and maps.shape == (5, SIZE, SIZE, 3)
    scores = operator(model, tf.constant(x), tf.constant(one_hot)).numpy()
    np.testing.assert_allclose(scores, (np.asarray(model(x)) * one_hot).sum(-1), rtol=1e-6)
    with pytest.raises(ConfigError, match="needs a convolutional layer"):
        generate("ToyDino", "GradCAM", src, str(tmp_path / "b"), weights="none")


def test_shards_merge_into_the_unsharded_file(toy, images, tmp_path):
    src, _ = images
    whole, sharded = str(tmp_path / "whole"), str(tmp_path / "sharded")
    args = dict(weights="none", batch_size=2, part_size=2, params=CHEAP["SmoothGrad"],
                progress=False)
    generate(toy, "SmoothGrad", src, whole, **args)
    results = [generate(toy, "SmoothGrad", src, sharded, shard=f"{k}/2", **args)
               for k in (2, 1)]
    assert [r.parts_written for r in results] == [1, 2]
    assert results[0].merged is None and not results[0].complete and results[1].complete
    url = Layout(sharded).explanations("Toy", "SmoothGrad")
    assert not os.path.exists(url)
    assert main(["merge", "--model", "toy", "--explainer", "smoothgrad", "--out", sharded]) == 0
    with open(url, "rb") as a, open(Layout(whole).explanations("Toy", "SmoothGrad"), "rb") as b:
        assert a.read() == b.read()
    assert not os.path.exists(parts.parts_folder(url))
    again = generate(toy, "SmoothGrad", src, sharded, **args)
    assert again.complete and again.images == 0


def test_rerun_resumes_after_complete_parts(toy, images, tmp_path):
    src, _ = images
    out = str(tmp_path / "bucket")
    args = dict(weights="none", batch_size=2, part_size=2, params=CHEAP["Rise"],
                keep_parts=True, progress=False)
    generate(toy, "Rise", src, out, **args)
    url = Layout(out).explanations("Toy", "Rise")
    with open(url, "rb") as handle:
        reference = handle.read()
    os.remove(url)
    last = os.path.join(parts.parts_folder(url), "part-00002-of-00003.tfrecord")
    os.replace(last, last + ".tmp-deadbeef")  # what an interrupted write leaves
    result = generate(toy, "Rise", src, out, **args)
    assert (result.parts_written, result.parts_skipped, result.images) == (1, 2, 1)
    assert not os.path.exists(last + ".tmp-deadbeef")
    with open(url, "rb") as handle:
        assert handle.read() == reference


def test_limit_and_changed_settings(toy, images, tmp_path):
    src, _ = images
    out = str(tmp_path / "bucket")
    result = generate(toy, "GradientInput", src, out, weights="none", limit=3,
                      shard="1/2", part_size=1, progress=False)
    assert result.num_images == 3 and result.images == 2
    with pytest.raises(ConfigError, match="num_images"):
        generate(toy, "GradientInput", src, out, weights="none", limit=4, part_size=1,
                 progress=False)
    with pytest.raises(LayoutError, match="parts are not complete"):
        merge(out, "Toy", "GradientInput")
    # A run that wrote nothing (it failed early) is replaced by one with other settings.
    empty = str(tmp_path / "empty")
    url = Layout(empty).explanations("Toy", "GradientInput")
    parts.start_run(url, parts.make_manifest("Toy-GradientInput", "Toy", "GradientInput",
                                             [("x", 0, "x.png")], weights="pretrained",
                                             batch_size=32, part_size=1, seed=0, params={}),
                    overwrite=False)
    assert generate(toy, "GradientInput", src, empty, weights="none", progress=False).complete
    assert parts.read_manifest(url)["weights"] == "none"
    for bad, match in ((dict(shard="3/2"), "between 1 and N"), (dict(shard="x"), "K/N"),
                       (dict(batch_size=0), "batch size"), (dict(limit=-1), "limit"),
                       (dict(weights="nope"), "neither")):
        with pytest.raises(ConfigError, match=match):
            generate(toy, "GradientInput", src, out, **{"weights": "none", **bad})


def test_unreadable_image_stops_the_run_cleanly(toy, images, tmp_path):
    from dina_datasets.errors import DinaError
    from dina_datasets.storage import TMP_MARK

    src, _ = images
    (tmp_path / "images" / "n01_cat" / "img_002x.png").write_bytes(b"not a png")
    out = str(tmp_path / "bucket")
    with pytest.raises(DinaError, match="img_002x.png"):
        generate(toy, "Saliency", src, out, weights="none", batch_size=2, part_size=2,
                 progress=False)
    url = Layout(out).explanations("Toy", "Saliency")
    left = sorted(os.listdir(parts.parts_folder(url)))
    assert left == ["part-00000-of-00003" + parts.COST_SUFFIX,  # images 0-1; img_002x is
                    "part-00000-of-00003.tfrecord",           # image 3
                    "part-00000-of-00003.tfrecord.index.json"]
    assert not os.path.exists(url) and not any(TMP_MARK in name for name in left)


def test_any_fsspec_url(toy, images):
    import fsspec

    src, _ = images
    out = "memory://gen-test/bucket"
    args = dict(weights="none", batch_size=2, part_size=2, progress=False)
    try:
        first = generate(toy, "GradientInput", src, out, shard="1/2", **args)
        generate(toy, "GradientInput", src, out, shard="2/2", **args)
        assert first.merged is None
        result = merge(out, "Toy", "GradientInput")
        assert result.num_records == 5 and result.url.startswith("memory://")
        rows = list(read_records(result.url))
        assert [r["index"] for r in rows] == list(range(5))
        assert not fsspec.filesystem("memory").exists(parts.parts_folder(result.url))
    finally:
        fsspec.filesystem("memory").rm("/gen-test", recursive=True)


def test_cli_generate_prints_a_summary(toy, images, tmp_path, capsys):
    src, _ = images
    out = str(tmp_path / "bucket")
    code = main(["generate", "--model", "Toy", "--explainer", "Occlusion", "--images", src,
                 "--out", out, "--weights", "none", "--batch-size", "4", "--param",
                 "patch_size=8", "--param", "patch_stride=8", "--limit", "4"])
    assert code == 0
    text = capsys.readouterr().out
    assert "Toy-Occlusion: 4 images in" in text and "images/s" in text
    assert len(list(read_records(Layout(out).explanations("Toy", "Occlusion")))) == 4
    assert main(["generate", "--model", "Toy", "--explainer", "Occlusion", "--images", src,
                 "--out", out, "--param", "oops"]) == 2


def test_manifest_records_provenance_and_relative_paths(toy, images, tmp_path):
    folder, paths = images
    out = str(tmp_path / "bucket")
    generate("Toy", "Saliency", folder, out, weights="none", batch_size=4, progress=False)
    manifest = parts.read_manifest(Layout(out).explanations("Toy", "Saliency"))
    assert manifest["images_source"] == folder
    assert [row[3] for row in manifest["images"]] == [
        os.path.relpath(p, folder) for p in sorted(paths, key=lambda p: os.path.basename(p))]
    assert not any(os.path.isabs(row[3]) for row in manifest["images"])
    assert manifest["explainer_params"] == {"reducer": None}
    assert manifest["weights"] == "none" and manifest["model_source"].endswith("toy_model")
    versions = manifest["versions"]
    assert versions["tensorflow"] == tf.__version__ and versions["dina-datasets"]
    # the same images from another place resume the same run: paths are not settings
    moved = str(tmp_path / "moved")
    import shutil

    shutil.copytree(folder, moved)
    again = generate("Toy", "Saliency", moved, out, weights="none", batch_size=4,
                     progress=False)
    assert again.complete and again.images == 0


def zeros(model, inputs, targets):
    """A contributed explainer whose maps are all zero (like GradCAM on random weights)."""
    return np.zeros((*inputs.shape[:3], 1), np.float32)


def test_degenerate_maps_are_warned_about_and_counted(toy, images, tmp_path, capsys):
    from dina_datasets.maps import DegenerateMapWarning

    folder, _ = images
    catalog.register_explainer("Zeros", zeros, channels=1, replace=True)
    try:
        with pytest.warns(DegenerateMapWarning, match="Toy-Zeros: 2 of the 2 maps of images "
                                                      "0-1 are degenerate") as caught:
            made = generate("Toy", "Zeros", folder, str(tmp_path / "z"), weights="none",
                            batch_size=2, progress=False)
        assert len([w for w in caught if w.category is DegenerateMapWarning]) == 1
        assert made.degenerate == 5 and "5 of 5 maps are degenerate" in made.summary()
        # the command line prints it as one warning line
        assert main(["generate", "--model", "Toy", "--explainer", "Zeros", "--images", folder,
                     "--out", str(tmp_path / "cli"), "--weights", "none", "--batch-size",
                     "2", "--no-progress"]) == 0
        err = capsys.readouterr().err
        assert "dina generate: warning: Toy-Zeros: 2 of the 2 maps" in err
    finally:
        catalog.unregister("Zeros")
    import warnings

    with warnings.catch_warnings():  # maps that rank their pixels: no warning
        warnings.simplefilter("error", DegenerateMapWarning)
        made = generate("Toy", "Saliency", folder, str(tmp_path / "s"), weights="none",
                        batch_size=2, progress=False)
    assert made.degenerate == 0 and "maps are degenerate" not in made.summary()
