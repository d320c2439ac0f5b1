"""The 9 DINA architectures, built once each with random weights: input size and rescale mode
match the catalog; pretrained weights without network fail with a clear message; a weights
file loads fully or not at all."""

from __future__ import annotations

import gc
import re

import pytest

from dina_datasets import catalog
from dina_datasets.cli import main
from dina_datasets.errors import ConfigError, DinaError, WeightsError

tf = pytest.importorskip("tensorflow")
models = pytest.importorskip("dina_datasets.generation.models")

BUILTIN = [name for name, spec in catalog.MODELS.items() if not spec.contributed]


@pytest.fixture(autouse=True)
def _free_memory():
    yield
    tf.keras.backend.clear_session()
    gc.collect()


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILTIN)
def test_builds_with_catalog_input_size_and_rescale_mode(name):
    spec = catalog.model(name)
    model = models.build_model(name.upper(), weights="none")
    assert models.input_size(model) == spec.input_size
    assert model.input_shape[-1] == 3
    assert model.output_shape == (None, catalog.NUM_CLASSES)
    assert model.rescale_mode == spec.rescale_mode
    last = model.layers[-1]
    assert getattr(last, "activation", None) is tf.keras.activations.softmax or \
        (last.__class__.__name__ == "Activation" and last.get_config()["activation"] == "softmax")
    assert any(isinstance(layer, tf.keras.layers.Conv2D) and layer.kernel_size != (1, 1)
               for layer in model.layers) or not spec.has_conv


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """EfficientNetV2's seeded random weights, a weights file of other values (so that loading
    it is seen), and the model to load into: (initial weights, file weights, file, model)."""
    model = models.build_model("EfficientNetV2", "none")
    initial = [w.copy() for w in model.get_weights()]
    stored = [w * 0.5 + 0.25 for w in initial]
    model.set_weights(stored)
    path = str(tmp_path_factory.mktemp("weights") / "w.h5")
    model.save_weights(path)
    return initial, stored, path, model


def same(expected, model) -> bool:
    return all((a == b).all() for a, b in zip(expected, model.get_weights(), strict=True))


def test_random_weights_are_reproducible_and_files_load(saved):
    initial, stored, path, _ = saved
    assert same(initial, models.build_model("EfficientNetV2", "none"))
    assert same(stored, models.build_model("EfficientNetV2", path))


def edit_h5(source, target, edit):
    """Copy a save_weights .h5 file and apply `edit(h5 file, layer names)` to the copy."""
    import shutil

    import h5py

    shutil.copy(source, target)
    with h5py.File(target, "r+") as handle:
        names = [n.decode() if isinstance(n, bytes) else n for n in handle.attrs["layer_names"]]
        edit(handle, names)
    return str(target)


def test_weights_file_without_a_layer_fails_naming_it(saved, tmp_path, capsys):
    """A file lacking one weighted layer must not load the rest and leave it random."""
    path = saved[2]

    def drop_one(handle, names):
        weighted = [n for n in names if len(handle[n].attrs["weight_names"])]
        dropped.append(weighted[len(weighted) // 2])
        del handle[dropped[0]]
        handle.attrs["layer_names"] = [n.encode() for n in names if n != dropped[0]]

    dropped: list[str] = []
    partial = edit_h5(path, tmp_path / "partial.h5", drop_one)
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(images / "a.png")
    assert main(["generate", "--model", "EfficientNetV2", "--explainer", "Saliency",
                 "--images", str(images), "--out", str(tmp_path / "out"), "--no-progress",
                 "--weights", partial]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dina generate: error: ") and err.count("\n") == 1
    assert re.search(rf"partial.h5.* into EfficientNetV2: 1 weighted layer\(s\) of the model "
                     rf"are not in the file: {re.escape(dropped[0])} \(", err), err
    assert not (tmp_path / "out" / "EfficientNetV2" / "Saliency" / "explanations.tfrecord"
                ).exists()


def test_weights_file_in_another_layer_order_loads_by_name(saved, tmp_path):
    initial, stored, path, model = saved
    reordered = edit_h5(path, tmp_path / "reordered.h5", lambda handle, names: handle.attrs.
                        __setitem__("layer_names", [n.encode() for n in names[::-1]]))
    model.set_weights(initial)
    models.load_weights(model, reordered, "EfficientNetV2")
    assert same(stored, model)


def toy(names, extra: bool = False):
    """A small Keras model whose Dense layers have the given names."""
    inputs = tf.keras.Input((4,))
    x = inputs
    for name in names:
        x = tf.keras.layers.Dense(4, name=name)(x)
    if extra:
        x = tf.keras.layers.Dense(4, name="extra")(x)
    return tf.keras.Model(inputs, x)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_partial_loads_fail_for_extra_or_renamed_layers(tmp_path, suffix):
    path = str(tmp_path / f"small{suffix}")
    source = toy(["a", "b"])
    source.set_weights([w + 1 for w in source.get_weights()])
    if suffix == ".keras":
        source.save(path)
    else:
        source.save_weights(path)
    loaded = toy(["a", "b"])
    models.load_weights(loaded, path, "Small")
    assert same(source.get_weights(), loaded)
    with pytest.raises(WeightsError, match="extra" if suffix == ".h5" else "Small"):
        models.load_weights(toy(["a", "b"], extra=True), path, "Small")
    with pytest.raises(WeightsError, match="not in the file: renamed, extra \\(" if
                       suffix == ".h5" else "Small"):
        models.load_weights(toy(["a", "renamed"], extra=True), path, "Small")
    renamed = toy(["c", "d"])  # the same architecture under other names loads fully
    models.load_weights(renamed, path, "Small")
    assert same(source.get_weights(), renamed)


def test_pretrained_offline_says_so_and_what_to_do(monkeypatch):
    from keras_cv_attention_models import backend

    def no_network(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(backend, "get_file", no_network)
    with pytest.raises(DinaError) as err:
        models.build_model("ResNet50", "pretrained")
    text = str(err.value)
    assert "network" in text and "--weights none" in text and "--weights FILE" in text


def test_bad_weights_argument(tmp_path, saved):
    with pytest.raises(ConfigError, match="neither 'pretrained', 'none' nor an existing file"):
        models.build_model("ResNet50", str(tmp_path / "missing.h5"))
    with pytest.raises(ConfigError, match="unknown model"):
        models.build_model("ResNet51", "none")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not weights")
    with pytest.raises(WeightsError, match="cannot load weights '.*bad.h5' into EfficientNetV2"):
        models.load_weights(saved[3], str(bad), "EfficientNetV2")
