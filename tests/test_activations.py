"""Output activations: the metrics that run the model score it with its softmax head swapped
for a sigmoid or for none (logits); the map-only metrics are not recomputed; the score files
get their own names and the builder their own columns."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from dina_datasets import Layout, catalog, read_records
from dina_datasets.cli import main
from dina_datasets.errors import ConfigError

tf = pytest.importorskip("tensorflow")
from dina_datasets.generation.models import build_model, with_activation  # noqa: E402
from dina_datasets.generation.pipeline import generate  # noqa: E402
from dina_datasets.metrics import build  # noqa: E402

SIZE = 8
CLASSES = 5
STEPS = 9


def toy_model(weights: str = "none"):
    """Logits = mean over pixels of x @ W + b: easy to compute by hand."""
    inputs = tf.keras.Input((SIZE, SIZE, 3))
    pooled = tf.keras.layers.GlobalAveragePooling2D()(inputs)
    head = tf.keras.layers.Dense(CLASSES, activation="softmax", name="predictions")
    model = tf.keras.Model(inputs, head(pooled))
    rng = np.random.default_rng(11)
    head.set_weights([rng.normal(0, 3, (3, CLASSES)).astype(np.float32),
                      rng.normal(0, 1, CLASSES).astype(np.float32)])
    return model


def logits_by_hand(model, x: np.ndarray) -> np.ndarray:
    kernel, bias = (w.astype(np.float64) for w in model.get_layer("predictions").get_weights())
    return x.astype(np.float64).mean(axis=(1, 2)) @ kernel + bias


HEADS = {"softmax": lambda z: np.exp(z - z.max(-1, keepdims=True)) /
         np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True),
         "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
         "logits": lambda z: z}


def insertion_by_hand(model, x, targets, maps, head, steps=STEPS):
    """FACTS.md §4, written out: pixels ranked by the channel mean of the map, highest first;
    at step s the pixels of rank <= linspace(0, H*W - 1, steps)[s] come from the image, the
    others are 0; the curve is the head's value for the target; the score the mean of the
    trapezoids."""
    n, h, w, _ = x.shape
    curves = np.zeros((n, steps))
    for i in range(n):
        order = np.argsort(-maps[i].mean(axis=-1).ravel(), kind="stable")
        rank = np.empty(h * w, np.int64)
        rank[order] = np.arange(h * w)
        for k, s in enumerate(np.linspace(0, h * w - 1, steps)):
            keep = (rank <= s).reshape(h, w, 1)
            z = logits_by_hand(model, (x[i] * keep)[None])
            curves[i, k] = head(z)[0, targets[i].argmax()]
    return curves, ((curves[:, :-1] + curves[:, 1:]) / 2).mean(axis=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2)
    model = toy_model()
    x = rng.random((4, SIZE, SIZE, 3), dtype=np.float32) * 2 - 0.5
    targets = np.eye(CLASSES, dtype=np.float32)[model(x).numpy().argmax(-1)]
    maps = rng.normal(size=(4, SIZE, SIZE, 3)).astype(np.float32)
    return model, x, targets, maps


def test_the_swapped_head_gives_the_logits_and_the_sigmoid(data):
    model, x, _, _ = data
    z = logits_by_hand(model, x)
    logits, sigmoid = with_activation(model, "logits"), with_activation(model, "sigmoid")
    np.testing.assert_allclose(logits(x).numpy(), z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sigmoid(x).numpy(), HEADS["sigmoid"](z), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x).numpy(), HEADS["softmax"](z), rtol=1e-5, atol=1e-6)
    assert with_activation(model, "softmax") is model
    assert len(logits.layers) == len(model.layers)  # same count for ModelRandomization
    assert model.layers[-1].get_config()["activation"] == "softmax"  # left untouched


@pytest.mark.parametrize("activation", ["logits", "sigmoid", "softmax"])
def test_insertion_equals_the_curve_by_hand(data, activation):
    model, x, targets, maps = data
    metric = build("Insertion", model, nb_steps=STEPS, batch_size=5, activation=activation)
    curves, scores = insertion_by_hand(model, x, targets, maps, HEADS[activation])
    np.testing.assert_allclose(metric.curves(x, targets, maps), curves, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(metric(x, targets, maps), scores, rtol=1e-4, atol=1e-5)
    if activation != "softmax":  # the heads really differ
        _, softmax = insertion_by_hand(model, x, targets, maps, HEADS["softmax"])
        assert np.abs(scores - softmax).max() > 0.05


def test_deletion_and_mufidelity_follow_the_head(data):
    model, x, targets, maps = data
    z = logits_by_hand(model, x)
    deletion = build("Deletion", model, nb_steps=2, batch_size=4, activation="logits")
    # two steps: the first pixel gone, then every pixel gone (logit = bias)
    bias = model.get_layer("predictions").get_weights()[1].astype(np.float64)
    first = deletion.curves(x, targets, maps)[:, -1]
    np.testing.assert_allclose(first, bias[targets.argmax(-1)], rtol=1e-5, atol=1e-5)
    mu = build("MuFidelity", model, nb_samples=10, batch_size=8, activation="sigmoid")
    assert mu.forward(x).shape == z.shape
    np.testing.assert_allclose(mu.forward(x), HEADS["sigmoid"](z), rtol=1e-5, atol=1e-6)


def test_randomization_metrics_reexplain_through_the_swapped_head(data):
    model, x, targets, maps = data
    seen = []

    def factory(net):
        seen.append(net)
        return lambda inputs, t: np.asarray(maps[:len(inputs)])

    build("RandomLogitMetric", model, factory, batch_size=4, activation="logits")(
        x, targets, maps)
    # 1.5 % of 3 layers randomizes none: the re-explained copy is the logits model itself
    build("ModelRandomizationMetric01", model, factory, batch_size=4, activation="sigmoid")(
        x, targets, maps)
    z = logits_by_hand(model, x)
    np.testing.assert_allclose(seen[0](x).numpy(), z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(seen[1](x).numpy(), HEADS["sigmoid"](z), rtol=1e-5, atol=1e-6)
    assert seen[1] is not model and len(seen[1].layers) == len(model.layers)


def test_map_only_metrics_and_callables_refuse_other_heads(data):
    model, _, _, maps = data
    for name in ("Sparseness", "Complexity"):
        with pytest.raises(ConfigError, match="does not depend on the output activation"):
            build(name, activation="logits")
        assert build(name, activation="softmax")(maps).shape == (4,)
    with pytest.raises(ConfigError, match="callable"):
        build("Insertion", lambda batch: np.zeros((len(batch), 3)), activation="logits")
    with pytest.raises(ConfigError, match="unknown output activation 'tanh'"):
        build("Insertion", model, activation="tanh")
    flat = tf.keras.Sequential([tf.keras.Input((SIZE, SIZE, 3)), tf.keras.layers.Flatten(),
                                tf.keras.layers.Dense(3)])  # no softmax head
    with pytest.raises(ConfigError, match="not a softmax head"):
        with_activation(flat, "logits")


def test_a_kecam_head_is_swapped():
    model = build_model("EfficientNetV2", "none")
    logits = with_activation(model, "logits")
    x = np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype(np.float32)
    z = logits(x).numpy().astype(np.float64)
    np.testing.assert_allclose(model(x).numpy(), HEADS["softmax"](z), rtol=1e-4, atol=1e-6)
    assert len(logits.layers) == len(model.layers)
    assert logits.rescale_mode == model.rescale_mode
    tf.keras.backend.clear_session()


# --- dina evaluate, score files, builder columns ----------------------------------------------


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    """ActToy-Sobel generated for 5 images, with its preprocess file and softmax scores."""
    from PIL import Image

    from dina_datasets.metrics.evaluation import evaluate

    root = tmp_path_factory.mktemp("activations")
    rng = np.random.default_rng(4)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(
            root / f"im_{i}.png")
    catalog.register_model("ActToy", toy_model, input_size=SIZE, rescale_mode="raw01",
                           replace=True)
    out = str(root / "bucket")
    generate("ActToy", "Sobel", str(root), out, weights="none", batch_size=2,
             write_preprocess=True, progress=False)
    evaluate("ActToy", "Sobel", ["Insertion", "Sparseness"], data_url=out, weights="none",
             batch_size=4, progress=False)
    yield out
    catalog.unregister("ActToy")


def _bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def _load(url):
    with open(url) as handle:
        return json.load(handle)


def test_evaluate_writes_activation_files_and_skips_map_only_metrics(cell, capsys):
    layout = Layout(cell)
    sparseness = layout.scores("ActToy", "Sobel", "Sparseness")
    before = (_bytes(sparseness), os.path.getmtime(sparseness))
    for activation in ("logits", "sigmoid"):
        code = main(["evaluate", "--model", "ActToy", "--explainer", "Sobel", "--data-url",
                     cell, "--weights", "none", "--batch-size", "4", "--activation", activation,
                     "--metrics", "Insertion", "Deletion", "Sparseness", "--no-progress"])
        out = capsys.readouterr().out
        assert code == 0 and "skipped Sparseness: map-only, not recomputed" in out
        for metric in ("Insertion", "Deletion"):
            assert f"{metric}_scores.{activation}.json" in out
    assert (_bytes(sparseness), os.path.getmtime(sparseness)) == before
    assert [f for f in os.listdir(os.path.dirname(sparseness))
            if f.startswith("Sparseness_scores")] == ["Sparseness_scores.json"]

    pre = list(read_records(layout.preprocess("ActToy")))
    x = np.stack([r["preprocess_input"] for r in pre])
    targets = np.stack([r["one_hot_prediction"] for r in pre])
    maps = np.stack([r["explanations"] for r in read_records(
        layout.explanations("ActToy", "Sobel"))])
    model = build_model("ActToy", "none")
    for activation in ("logits", "sigmoid"):
        _, by_hand = insertion_by_hand(model, x, targets, maps, HEADS[activation], steps=200)
        written = _load(layout.scores("ActToy", "Sobel", "Insertion", activation))
        np.testing.assert_allclose(written, by_hand, rtol=1e-4, atol=1e-5)
    published = _load(layout.scores("ActToy", "Sobel", "Insertion"))
    _, softmax = insertion_by_hand(model, x, targets, maps, HEADS["softmax"], steps=200)
    np.testing.assert_allclose(published, softmax, rtol=1e-4, atol=1e-6)


def test_map_only_request_is_refused_in_one_line(cell, capsys):
    code = main(["evaluate", "--model", "ActToy", "--explainer", "Sobel", "--data-url", cell,
                 "--activation", "logits", "--metrics", "Sparseness", "Complexity"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "Sparseness, Complexity: map-only" in err and "Insertion" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", "ActToy", "--explainer", "Sobel", "--data-url", cell,
              "--activation", "tanh", "--metrics", "Insertion"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tanh'" in capsys.readouterr().err


def test_builder_exposes_activation_columns_with_one_schema(cell, tmp_path):
    from dina_datasets import load_dataset
    from dina_datasets.hf.features import features

    layout = Layout(cell)
    os.remove(layout.scores("ActToy", "Sobel", "Deletion", "sigmoid"))
    ds = load_dataset("dina", "ActToy-Sobel", split="validation", data_url=cell,
                      cache_dir=str(tmp_path / "cache"))
    np.testing.assert_allclose(ds["Insertion_logits"], _load(
        layout.scores("ActToy", "Sobel", "Insertion", "logits")))
    np.testing.assert_allclose(ds["Insertion_sigmoid"], _load(
        layout.scores("ActToy", "Sobel", "Insertion", "sigmoid")))
    assert ds["Deletion_sigmoid"] == [None] * 5 and ds["MuFidelity_logits"] == [None] * 5
    assert "Sparseness_logits" not in ds.features and "Complexity_sigmoid" not in ds.features
    # every config has these columns, files or not
    other = features(catalog.Cell("ResNet50", "Rise"))
    assert list(ds.features)[4:] == list(other)[4:] and "Insertion_logits" in other
    assert ds.features == features(catalog.Cell.from_name("ActToy-Sobel"))
