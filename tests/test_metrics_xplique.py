"""`variant="xplique"` against xplique 2.0.2 itself, where the two are comparable, and the
published variant where it must differ."""

from __future__ import annotations

import numpy as np
import pytest

from dina_datasets.metrics import Complexity, Deletion, Insertion, Sparseness
from dina_datasets.metrics.ranks import spearman
from dina_datasets.metrics.ssim import ssim

tf = pytest.importorskip("tensorflow")
xplique_metrics = pytest.importorskip("xplique.metrics")
from xplique.metrics.randomization import batched_spearman  # noqa: E402
from xplique.metrics.randomization import ssim as xplique_ssim  # noqa: E402

SIZE = 10


def small_model() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(1)
    inputs = tf.keras.Input((SIZE, SIZE, 3))
    x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(4, activation="softmax")(x))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(4)
    inputs = rng.random((5, SIZE, SIZE, 3), np.float32)
    maps = rng.standard_normal((5, SIZE, SIZE, 3)).astype(np.float32)
    model = small_model()
    targets = np.eye(4, dtype=np.float32)[np.asarray(model(inputs)).argmax(-1)]
    return model, inputs, targets, maps


@pytest.mark.parametrize("ours, theirs", [(Deletion, "Deletion"), (Insertion, "Insertion")])
def test_causal_fidelity_variant_equals_xplique(data, ours, theirs):
    model, inputs, targets, maps = data
    reference = getattr(xplique_metrics, theirs)(model, inputs, targets, batch_size=8,
                                                 steps=9).evaluate(maps)
    scores = ours(model, nb_steps=10, batch_size=8, variant="xplique")(inputs, targets, maps)
    assert scores.shape == (5,)
    assert scores.mean() == pytest.approx(float(reference), rel=1e-5)
    published = ours(model, nb_steps=10, batch_size=8)(inputs, targets, maps)
    assert not np.allclose(published, scores)  # 1 pixel first, not 0: not the same path


@pytest.mark.parametrize("ours, theirs", [(Sparseness, "Sparseness"),
                                          (Complexity, "Complexity")])
def test_complexity_variant_equals_xplique(data, ours, theirs):
    *_, maps = data
    reference = getattr(xplique_metrics, theirs)().detailed_evaluate(maps)
    np.testing.assert_allclose(ours(variant="xplique")(maps), reference, rtol=1e-4, atol=1e-6)
    # signed 3-channel maps: the published order (mean, then abs) gives other numbers
    assert not np.allclose(ours()(maps), reference, rtol=1e-3)


def test_similarities_equal_xplique():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 16, 16, 1)).astype(np.float32)
    b = (a + rng.standard_normal(a.shape)).astype(np.float32)
    np.testing.assert_allclose(ssim(a, b), xplique_ssim(a, b, batched=True).numpy(), atol=1e-5)
    small = rng.standard_normal((2, 6, 6, 1)).astype(np.float32)  # window shrinks to 5
    np.testing.assert_allclose(ssim(small, small[::-1]),
                               xplique_ssim(small, small[::-1], batched=True).numpy(),
                               atol=1e-5)
    ta = rng.integers(0, 5, (3, 64)).astype(np.float32)
    tb = rng.integers(0, 5, (3, 64)).astype(np.float32)
    np.testing.assert_allclose(spearman(ta, tb, ties="average"),
                               batched_spearman(ta, tb).numpy(), atol=1e-5)
