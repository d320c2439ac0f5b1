"""Contributed models and explainers from a registry file: clear errors, and the new config
working everywhere (configs, generate, the builder)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from dina_datasets import catalog
from dina_datasets.errors import ConfigError
from dina_datasets.registry import load_registry

TOY_MODULE = '''
import numpy as np


def tiny(weights="none"):
    import tensorflow as tf
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(5, activation="softmax")(x))


def brightness(model, inputs, targets, scale=1.0):
    """A contributed explainer: the mean pixel value times the target's score."""
    scores = (np.asarray(model(inputs)) * targets).sum(-1)
    return scale * inputs.mean(-1, keepdims=True) * scores[:, None, None, None]
'''
REGISTRY = '''
[models.Mini]
factory = "dina_registry_toys:tiny"
input_size = 16
rescale_mode = "tf"

[explainers.Brightness]
method = "dina_registry_toys:brightness"
channels = 1
params = { scale = 2.0 }

[explainers.PlainSaliency]
method = "Saliency"
channels = 1
'''


@pytest.fixture
def registry(tmp_path, monkeypatch):
    (tmp_path / "dina_registry_toys.py").write_text(TOY_MODULE)
    path = tmp_path / "registry.toml"
    path.write_text(REGISTRY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield str(path)
    for name in ("Mini", "Brightness", "PlainSaliency"):
        if name in catalog.MODELS or name in catalog.EXPLAINERS:
            catalog.unregister(name)


def test_registry_entries_become_configs(registry):
    assert load_registry(registry) == ["Mini", "Brightness", "PlainSaliency"]
    assert load_registry(registry) == ["Mini", "Brightness", "PlainSaliency"]  # idempotent
    spec = catalog.model("mini")
    assert (spec.input_size, spec.rescale_mode, spec.contributed) == (16, "tf", True)
    assert catalog.explainer("Brightness").params["scale"] == 2.0
    cell = catalog.Cell.from_name("Mini-Brightness")
    assert not cell.published and cell.shape[-1] == 1
    assert "Mini-Brightness" in catalog.config_names()
    assert "ResNet50-Brightness" in catalog.config_names()


def test_write_registry_round_trips_what_this_process_registered(registry, tmp_path):
    """A registry file written from this process's registrations registers the same specs in
    another process (here: after unregistering them)."""
    from dina_datasets.registry import registry_text, write_registry

    load_registry(registry)
    catalog.register_explainer("Odd", "pkg.mod:odd", channels=3, needs_conv=True,
                               params={"steps": 3, "noise": 0.5, "mode": 'a "b"',
                                       "sizes": [1, 2], "on": True}, replace=True)
    specs = {"Mini": catalog.model("Mini"), "Brightness": catalog.explainer("Brightness"),
             "Odd": catalog.explainer("Odd")}
    path = write_registry(str(tmp_path / "out" / "written.toml"), models=["Mini"],
                          explainers=["Brightness", "Odd"])
    for name in specs:
        catalog.unregister(name)
    assert load_registry(path) == ["Mini", "Brightness", "Odd"]
    assert {"Mini": catalog.model("Mini"), "Brightness": catalog.explainer("Brightness"),
            "Odd": catalog.explainer("Odd")} == specs
    catalog.unregister("Odd")
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "written.toml"]
    with pytest.raises(ConfigError, match="'ResNet50' is built in"):
        registry_text(models=["ResNet50"])
    catalog.register_model("Inline", lambda weights="none": None, input_size=8, replace=True)
    try:
        with pytest.raises(ConfigError, match="registered with a callable"):
            registry_text(models=["Inline"])
    finally:
        catalog.unregister("Inline")
    with pytest.raises(ConfigError, match="at least one"):
        registry_text()


@pytest.mark.parametrize("text, match", [
    ("[models.X]\nfactory = 'a:b'\ninput_size = 8", "missing 'rescale_mode'"),
    ("[models.X]\nfactory = 'nocolon'\ninput_size = 8\nrescale_mode = 'tf'",
     "package.module:function"),
    ("[models.X]\nfactory = 'a:b'\ninput_size = 'big'\nrescale_mode = 'tf'",
     "'input_size' must be a int"),
    ("[models.X]\nfactory = 'a:b'\ninput_size = 8\nrescale_mode = 'weird'",
     "rescale_mode 'weird' is not one of"),
    ("[models.X]\nfactory = 'a:b'\ninput_size = 8\nrescale_mode = 'tf'\ncolour = 1",
     "unknown key"),
    ("[models.ResNet50]\nfactory = 'a:b'\ninput_size = 8\nrescale_mode = 'tf'",
     "already exists"),
    ("[models.Bad-Name]\nfactory = 'a:b'\ninput_size = 8\nrescale_mode = 'tf'", "without '-'"),
    ("[explainers.E]\nmethod = 'Saliency'\nchannels = 2", "channels must be 1 or 3"),
    ("[explainers.E]\nmethod = 'not a name!'\nchannels = 1", "xplique class name"),
    ("[explainers.E]\nchannels = 1", "missing 'method'"),
    ("[widgets.W]\nx = 1", "unknown section"),
    ("[models\nbroken", "not valid TOML"),
])
def test_bad_registry_names_file_entry_and_problem(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as err:
        load_registry(str(path))
    assert "bad.toml" in str(err.value)
    if "[models." in text and "ResNet50" not in text and "TOML" not in match:
        assert "entry [models." in str(err.value)
    for name in ("X", "E"):
        assert name not in catalog.MODELS and name not in catalog.EXPLAINERS


def test_missing_registry_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read registry file"):
        load_registry(str(tmp_path / "nope.toml"))


def test_cli_configs_lists_contributed_configs(registry, capsys):
    from dina_datasets.cli import main

    assert main(["configs", "--registry", registry, "--model", "Mini"]) == 0
    out = capsys.readouterr().out
    assert "Mini-Brightness" in out and "Mini-Saliency" in out and "(contributed)" in out


def test_contributed_config_generates_and_builds(registry, tmp_path):
    tf = pytest.importorskip("tensorflow")
    from PIL import Image

    from dina_datasets import Layout, read_records
    from dina_datasets.cli import main

    src = tmp_path / "images"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 24, 3), 40 * i, np.uint8)).save(src / f"im{i}.png")
    out = str(tmp_path / "bucket")
    args = ["--registry", registry, "--model", "Mini", "--images", str(src), "--out", out,
            "--weights", "none", "--batch-size", "2"]
    assert main(["generate", "--explainer", "Brightness", *args]) == 0
    assert main(["generate", "--explainer", "PlainSaliency", *args]) == 0
    rows = list(read_records(Layout(out).explanations("Mini", "Brightness")))
    assert [r["image_id"] for r in rows] == [b"im0", b"im1", b"im2"]
    assert all(r["explanations"].shape == (16, 16, 1) for r in rows)
    # im0 is black: after the "tf" rescale its pixels are -1, so its map is -2 * score.
    assert np.all(rows[0]["explanations"] < 0)
    saliency = list(read_records(Layout(out).explanations("Mini", "PlainSaliency")))
    assert saliency[0]["explanations"].shape == (16, 16, 1)  # xplique's default reducer
    tf.keras.backend.clear_session()

    from dina_datasets.hf.builder import DinaBuilder

    builder = DinaBuilder(config_name="Mini-Brightness", data_url=out,
                          cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    table = builder.as_dataset(split="validation").with_format("numpy")
    assert len(table) == 3
    assert list(table["image_id"]) == ["im0", "im1", "im2"]
    np.testing.assert_array_equal(table[0]["explanation"], rows[0]["explanations"])


def test_cli_configs_gives_contributed_configs_no_published_size(registry, capsys):
    import json

    from dina_datasets.cli import main

    assert main(["configs", "--registry", registry, "--json"]) == 0
    rows = {r["config"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["Mini-Brightness"]["num_records"] is None
    assert rows["Mini-Brightness"]["size_bytes"] is None
    assert rows["DinoV2-Rise"]["num_records"] == 50_000
    assert main(["configs", "--registry", registry]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("Mini-Brightness "))
    assert "GB" not in line and line.endswith("-  (contributed)")
    contributed = sum(1 for r in rows.values() if not r["published"])
    assert (f"117 configs, 5,850,000 maps, 2.26 TB published; {contributed} contributed (as "
            "many maps as the images they are run on)") in out


def test_module_beside_the_registry_file_needs_no_pythonpath(tmp_path, monkeypatch):
    from dina_datasets.generation.models import resolve_callable

    monkeypatch.setattr(sys, "path", list(sys.path))  # restored after the test
    folder = tmp_path / "contrib"
    folder.mkdir()
    (folder / "dina_beside_toys.py").write_text("def factory(weights='none'):\n"
                                                "    return 'built with ' + weights\n")
    (folder / "registry.toml").write_text('[models.Beside]\nfactory = "dina_beside_toys:factory"'
                                          '\ninput_size = 16\nrescale_mode = "tf"\n')
    try:
        with pytest.raises(ConfigError, match="beside the registry file"):
            resolve_callable("dina_beside_toys:factory", "model 'Beside' factory")
        load_registry(str(folder / "registry.toml"))
        factory = resolve_callable(catalog.model("Beside").constructor, "model")
        assert factory(weights="none") == "built with none"
        assert sys.path[-1] == str(folder)  # appended: installed packages still come first
    finally:
        catalog.unregister("Beside")
        sys.modules.pop("dina_beside_toys", None)
