"""Randomization metrics, SSIM against TensorFlow's, and the fidelity metrics through a real
(tiny) Keras model. (SSIM against skimage and Spearman against scipy: test_metrics.py, without
TensorFlow.)"""

from __future__ import annotations

import numpy as np
import pytest

from dina_datasets.errors import AlignmentError, ConfigError
from dina_datasets.metrics import (
    Deletion,
    Insertion,
    ModelRandomizationMetric01,
    ModelRandomizationMetric05,
    RandomLogitMetric,
)
from dina_datasets.metrics.randomization import ModelRandomizationMetric
from dina_datasets.metrics.ranks import spearman
from dina_datasets.metrics.ssim import ssim

tf = pytest.importorskip("tensorflow")

SIZE = 12
CLASSES = 5


def conv_model(depth: int = 1) -> tf.keras.Model:
    """Input, `depth` convolutions, pooling, a dense softmax head: 3 + depth layers."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((SIZE, SIZE, 3))
    x = inputs
    for _ in range(depth):
        x = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(CLASSES, activation="softmax")(x))


def gradient_explainer(model):
    """Saliency by hand: |d score / d x| summed over channels, (N, H, W, 1)."""

    def explain(inputs, targets):
        x = tf.convert_to_tensor(inputs)
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(model(x) * targets, axis=-1)
        return tf.reduce_sum(tf.abs(tape.gradient(score, x)), axis=-1, keepdims=True)

    return explain


def data(n: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    inputs = rng.random((n, SIZE, SIZE, 3), np.float32)
    targets = np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, n)]
    return inputs, targets


def test_ssim_matches_tensorflow():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 30, 26, 3))
    b = a + 0.7 * rng.standard_normal(a.shape)
    ours = ssim(a, b)
    for i in range(3):
        data_range = max(a[i].max(), b[i].max()) - min(a[i].min(), b[i].min())
        tf_value = tf.image.ssim(tf.constant(a[i], tf.float32), tf.constant(b[i], tf.float32),
                                 max_val=float(data_range), filter_size=11, filter_sigma=1.5)
        assert ours[i] == pytest.approx(float(tf_value), abs=1e-5)


def test_random_logit_draws_other_classes_uniformly_and_repeats():
    metric = RandomLogitMetric(conv_model(), gradient_explainer, seed=5)
    classes = np.tile([0, 1, 2], 1000)
    off = metric.off_classes(classes, 3)
    assert not np.any(off == classes)
    # each of the two other classes about half of the time
    for c in range(3):
        share = np.mean(off[classes == c] == (c + 1) % 3)
        assert 0.44 < share < 0.56
    np.testing.assert_array_equal(off, RandomLogitMetric(conv_model(), gradient_explainer,
                                                         seed=5).off_classes(classes, 3))
    assert not np.array_equal(off, RandomLogitMetric(conv_model(), gradient_explainer,
                                                     seed=6).off_classes(classes, 3))
    # sample i draws the same class whatever the batch it comes in
    np.testing.assert_array_equal(metric.off_classes(classes[10:20], 3, start=10), off[10:20])


def test_random_logit_scores_by_hand():
    inputs, targets = data()
    factory_calls = []

    def class_pattern(model):
        factory_calls.append(model)

        def explain(x, y):  # map = input's first channel times (class index + 1)
            return x[..., :1] * (np.argmax(y, axis=-1)[:, None, None, None] + 1)

        return explain

    net = conv_model()
    metric = RandomLogitMetric(net, class_pattern, batch_size=4, seed=0)
    stored = class_pattern(net)(inputs, targets)
    scores = metric(inputs, targets, stored)
    assert factory_calls[-1] is net
    off = metric.off_classes(targets.argmax(-1), CLASSES)
    other = class_pattern(net)(inputs, np.eye(CLASSES)[off])
    np.testing.assert_allclose(scores, ssim(stored, other))
    assert np.all(scores < 1.0)
    # an explainer that ignores the target: identical maps, SSIM 1
    same = RandomLogitMetric(net, lambda m: (lambda x, y: x[..., :1]))(inputs, targets,
                                                                      inputs[..., :1])
    np.testing.assert_allclose(same, 1.0)


def test_model_randomization_layers_dina_and_xplique():
    net = conv_model(depth=37)  # 40 layers: input, 37 convs, pooling, dense
    assert len(net.layers) == 40
    dina = ModelRandomizationMetric05(net, gradient_explainer)
    # 5 % of 40 = 2: the input layer (no weights) and the first convolution
    assert dina.randomized_layers(net) == net.layers[:2]
    assert ModelRandomizationMetric01(net, gradient_explainer).randomized_layers(net) == []
    # xplique: 38 weighted layers, output side: int(38 * 0.05) = 1 -> the dense head
    xplique = ModelRandomizationMetric05(net, gradient_explainer, variant="xplique")
    assert xplique.randomized_layers(net) == [net.layers[-1]]
    with pytest.raises(ConfigError, match="fraction"):
        ModelRandomizationMetric(net, gradient_explainer)
    with pytest.raises(ConfigError, match="layers"):
        ModelRandomizationMetric(lambda x: x, gradient_explainer, fraction=0.5
                                 ).randomized_layers(lambda x: x)


def test_model_randomization_copies_the_model_and_repeats():
    net = conv_model(depth=2)  # 5 layers; fraction 0.5 -> input + first conv
    before = [w.copy() for w in net.get_weights()]
    inputs, targets = data()
    metric = ModelRandomizationMetric(net, gradient_explainer, fraction=0.5, batch_size=4)
    maps = gradient_explainer(net)(inputs, targets).numpy()
    scores = metric(inputs, targets, maps)
    for old, new in zip(before, net.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)  # the caller's model is untouched
    clone = metric.explained_model()
    kernel, bias = clone.layers[1].get_weights()
    assert kernel.min() >= 0 and kernel.max() < 1 and bias.min() >= 0
    assert not np.allclose(kernel, net.layers[1].get_weights()[0])
    for a, b in zip(clone.layers[2].get_weights(), net.layers[2].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # the score is Spearman of the stored map and the randomized model's map
    other = gradient_explainer(clone)(inputs, targets).numpy()
    np.testing.assert_allclose(scores, spearman(maps.reshape(6, -1), other.reshape(6, -1)))
    assert scores.shape == (6,) and np.all(np.abs(scores) <= 1)
    again = ModelRandomizationMetric(net, gradient_explainer, fraction=0.5, batch_size=5)
    stream = [(inputs[:1], targets[:1], maps[:1]), (inputs[1:], targets[1:], maps[1:])]
    np.testing.assert_allclose(again.evaluate(stream), scores, rtol=1e-6)
    nothing = ModelRandomizationMetric(net, gradient_explainer, fraction=0.0)
    np.testing.assert_allclose(nothing(inputs, targets, maps), 1.0)


def test_explainer_maps_must_match_the_stored_ones():
    inputs, targets = data()
    metric = RandomLogitMetric(conv_model(), lambda m: (lambda x, y: x[:, :6]))
    with pytest.raises(AlignmentError, match="shape"):
        metric(inputs, targets, inputs[..., :1])


def pixel_sum_keras() -> tf.keras.Model:
    """Class 0 = sum over pixels of the channel mean (a fixed 1x1 conv and a sum), class 1 =
    0: the same function as the numpy toy model of test_metrics.py."""
    inputs = tf.keras.Input((4, 4, 3))
    mean = tf.keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer=tf.keras.
                                  initializers.Constant(1 / 3))(inputs)
    total = tf.keras.layers.Lambda(lambda m: tf.reduce_sum(m, axis=(1, 2)))(mean)
    out = tf.keras.layers.Lambda(lambda t: tf.concat([t, tf.zeros_like(t)], axis=-1))(total)
    return tf.keras.Model(inputs, out)


def test_fidelity_through_a_keras_model_by_hand():
    # 4x4 image of pixel values 0..15 (channels equal), flat map: ties -> reading order.
    # nb_steps=4: 1, 6, 11, 16 pixels switched.
    # Deletion: remaining sums 120, 105, 65, 0 -> mean(112.5, 85, 32.5) = 230/3
    # Insertion: inserted sums 0, 15, 55, 120 -> mean(7.5, 35, 87.5) = 130/3
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1).repeat(3, axis=-1)
    images = np.concatenate([image, image])  # two samples: a padded last forward batch
    targets = np.array([[1, 0], [1, 0]], np.float32)
    flat = np.ones((2, 4, 4, 1), np.float32)
    model = pixel_sum_keras()
    np.testing.assert_allclose(Deletion(model, nb_steps=4, batch_size=3)(images, targets, flat),
                               [230 / 3] * 2, rtol=1e-6)
    np.testing.assert_allclose(Insertion(model, nb_steps=4, batch_size=3)(images, targets,
                                                                          flat),
                               [130 / 3] * 2, rtol=1e-6)
