"""The 9 DINA architectures, built once each with random weights: input size and rescale mode
match the catalog; pretrained weights without network fail with a clear message."""

from __future__ import annotations

import gc

import pytest

from dina_datasets import catalog
from dina_datasets.errors import ConfigError, DinaError

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


def test_random_weights_are_reproducible(tmp_path):
    first = models.build_model("EfficientNetV2", "none")
    weights = [w.copy() for w in first.get_weights()]
    path = str(tmp_path / "w.h5")
    first.save_weights(path)
    tf.keras.backend.clear_session()
    second = models.build_model("EfficientNetV2", "none")
    assert all((a == b).all() for a, b in zip(weights, second.get_weights(), strict=True))
    tf.keras.backend.clear_session()
    loaded = models.build_model("EfficientNetV2", path)
    assert all((a == b).all() for a, b in zip(weights, loaded.get_weights(), strict=True))


def test_pretrained_offline_says_so_and_what_to_do(monkeypatch):
    from keras_cv_attention_models import backend

    def no_network(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(backend, "get_file", no_network)
    with pytest.raises(DinaError) as err:
        models.build_model("ResNet50", "pretrained")
    text = str(err.value)
    assert "network" in text and "--weights none" in text and "--weights FILE" in text


def test_bad_weights_argument(tmp_path):
    with pytest.raises(ConfigError, match="neither 'pretrained', 'none' nor an existing file"):
        models.build_model("ResNet50", str(tmp_path / "missing.h5"))
    with pytest.raises(ConfigError, match="unknown model"):
        models.build_model("ResNet51", "none")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not weights")
    with pytest.raises(DinaError, match="bad.h5"):
        models.build_model("EfficientNetV2", str(bad))
