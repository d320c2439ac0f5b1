"""Metric cores on hand-checkable data: tiny maps, a toy model whose output is a known
function of the pixels, streaming versus array calls, seeds. No TensorFlow here."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from dina_datasets import catalog, metrics
from dina_datasets.errors import AlignmentError, ConfigError
from dina_datasets.metrics import Complexity, Deletion, Insertion, MuFidelity, Sparseness
from dina_datasets.metrics.fidelity import nearest_indices, switch_counts

# A 2x2 image, its 3 channels equal: pixel values 1, 2 / 3, 4.
IMAGE = np.array([[1, 2], [3, 4]], np.float32)[None, :, :, None].repeat(3, axis=-1)
TARGET = np.array([[1.0, 0.0]], np.float32)


def pixel_sum_model(batch: np.ndarray) -> np.ndarray:
    """Class 0 scores the sum over pixels of the channel mean; class 1 always 0."""
    batch = np.asarray(batch)
    return np.stack([batch.mean(axis=-1).sum(axis=(1, 2)), np.zeros(len(batch))], axis=1)


def test_deletion_by_hand():
    # Map 4 3 / 2 1: ranks (highest first) put pixel values 1, 2, 3, 4 in that order.
    # nb_steps=4 on 4 pixels: steps linspace(0, 3, 4) = 0, 1, 2, 3, so 1, 2, 3, 4 pixels
    # are deleted (set to 0). Model = sum of remaining pixels:
    #   p = 10-1 = 9, 9-2 = 7, 7-3 = 4, 4-4 = 0
    #   area = mean((9+7)/2, (7+4)/2, (4+0)/2) = mean(8, 5.5, 2) = 15.5 / 3
    explanation = np.array([[4, 3], [2, 1]], np.float32)[None, :, :, None]
    score = Deletion(pixel_sum_model, nb_steps=4)(IMAGE, TARGET, explanation)
    np.testing.assert_allclose(score, [15.5 / 3], rtol=1e-6)
    # Reversed map: pixels 4, 3, 2, 1 go first: p = 6, 3, 1, 0 -> mean(4.5, 2, 0.5) = 7/3.
    score = Deletion(pixel_sum_model, nb_steps=4)(IMAGE, TARGET, explanation[:, ::-1, ::-1])
    np.testing.assert_allclose(score, [7 / 3], rtol=1e-6)


def test_insertion_by_hand():
    # Same map: pixels 1, 2, 3, 4 come back from the 0 baseline in that order.
    #   p = 1, 1+2 = 3, 3+3 = 6, 6+4 = 10
    #   area = mean((1+3)/2, (3+6)/2, (6+10)/2) = mean(2, 4.5, 8) = 14.5 / 3
    explanation = np.array([[4, 3], [2, 1]], np.float32)[None, :, :, None]
    score = Insertion(pixel_sum_model, nb_steps=4)(IMAGE, TARGET, explanation)
    np.testing.assert_allclose(score, [14.5 / 3], rtol=1e-6)


def test_insertion_deletion_baseline_and_channel_mean():
    # 3-channel map whose channel mean is 4 3 / 2 1 again; baseline 1 instead of 0.
    # Deletion, pixels 1, 2, 3, 4 set to 1: p = 10, 10-2+1 = 9, 9-3+1 = 7, 7-4+1 = 4
    #   area = mean(9.5, 8, 5.5) = 23 / 3
    mean_map = np.array([[4, 3], [2, 1]], np.float32)
    explanation = np.stack([mean_map + 1, mean_map - 1, mean_map], axis=-1)[None]
    score = Deletion(pixel_sum_model, nb_steps=4, baseline=1.0)(IMAGE, TARGET, explanation)
    np.testing.assert_allclose(score, [23 / 3], rtol=1e-6)
    # A callable baseline: the image's mean, 2.5, replaces deleted pixels:
    #   p = 10-1+2.5 = 11.5, 11.5-2+2.5 = 12, 12-3+2.5 = 11.5, 11.5-4+2.5 = 10
    #   area = mean(11.75, 11.75, 10.75) = 34.25 / 3
    score = Deletion(pixel_sum_model, nb_steps=4,
                     baseline=lambda x: x.mean(axis=(1, 2, 3), keepdims=True))
    np.testing.assert_allclose(score(IMAGE, TARGET, explanation), [34.25 / 3], rtol=1e-6)


def test_switch_counts_follow_float32_linspace():
    # 4x4 map, 16 pixels, nb_steps=4: linspace(0, 15, 4) = 0, 5, 10, 15 -> 1, 6, 11, 16.
    assert switch_counts(16, 4).tolist() == [1, 6, 11, 16]
    # DINA's 224x224 maps with 200 steps end on all pixels and never go back.
    counts = switch_counts(224 * 224, 200)
    assert counts[0] == 1 and counts[-1] == 224 * 224 and np.all(np.diff(counts) > 0)
    half = switch_counts(16, 3, max_percentage_perturbed=0.5)  # linspace(0, 7, 3)
    assert half.tolist() == [1, 4, 8]


def test_deletion_4x4_ties_keep_the_lower_index_first():
    # Flat map: every rank is tied, so pixels go in reading order 0..15.
    # Image = pixel index (0..15), nb_steps=4 -> 1, 6, 11, 16 pixels deleted:
    #   remaining sums: 120-0 = 120, 120-(0+..+5) = 105, 120-(0+..+10) = 65, 0
    #   area = mean(112.5, 85, 32.5) = 230 / 3
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    flat = np.ones((1, 4, 4), np.float32)
    score = Deletion(pixel_sum_model, nb_steps=4)(image, TARGET, flat)
    np.testing.assert_allclose(score, [230 / 3], rtol=1e-6)


def test_sparseness_by_hand():
    # 1 2 / 3 4 -> normalised 0.1 0.2 0.3 0.4; coefficients 2k - n - 1 = -3, -1, 1, 3:
    #   sum = -0.3 - 0.2 + 0.3 + 1.2 = 1.0; n * sum(a) = 4 -> 0.25 (the +1e-7 barely moves it)
    maps = np.array([[[1, 2], [3, 4]], [[1, 1], [1, 1]], [[0, 0], [0, 5]]], np.float32)
    # uniform map -> 0; one pixel -> 3 / 4 (coefficient 3 times 1, n * sum = 4)
    np.testing.assert_allclose(Sparseness()(maps), [0.25, 0.0, 0.75], atol=1e-6)
    # an all-zero map has no distribution: undefined (was 0 through the epsilons)
    zero = np.zeros((2, 2, 2, 3), np.float32)
    for variant in ("dina", "xplique"):
        assert np.isnan(Sparseness(variant=variant)(zero)).all()


def test_complexity_by_hand():
    # three of four pixels -> ln 3; two equal pixels -> ln 2; one pixel -> 0.
    maps = np.array([[[1, 1], [1, 0]], [[3, 0], [0, -3]], [[0, 0], [0, 2]]], np.float32)
    np.testing.assert_allclose(Complexity()(maps), [np.log(3), np.log(2), 0.0], atol=1e-6)
    # degenerate maps: all zero (the epsilons gave 0, the best value) and constant -> NaN
    flat = np.array([[[0, 0], [0, 0]], [[2, 2], [2, 2]], [[-1, 1], [1, -1]]], np.float32)
    for variant in ("dina", "xplique"):
        assert np.isnan(Complexity(variant=variant)(flat)).all()


def test_complexity_range_and_degenerate_maps():
    """The docstrings' ranges: Complexity in [0, ln(H*W)] for maps that rank their pixels,
    undefined (NaN, a null score) for constant and all-zero maps, which are flagged degenerate;
    Sparseness in [0, 1), 0 for a constant map, undefined for an all-zero one."""
    from dina_datasets.maps import degenerate, describe

    size = 224
    one = np.zeros((size, size), np.float32)
    one[3, 5] = 2.0
    maps = np.stack([one, np.ones((size, size), np.float32), np.zeros((size, size), np.float32),
                     np.full((size, size), -0.5, np.float32),
                     np.random.default_rng(0).random((size, size), np.float32)])
    entropy = Complexity()(maps)
    assert entropy[0] == pytest.approx(0.0, abs=1e-3) and np.isnan(entropy[1:4]).all()
    assert 0 < entropy[4] < np.log(size * size) and np.log(size * size) == pytest.approx(10.82,
                                                                                         abs=0.01)
    gini = Sparseness()(maps)
    assert np.isnan(gini[2])  # all zeros: undefined; a constant map is the least sparse, 0
    defined = np.delete(gini, 2)
    assert np.all((defined >= -1e-6) & (defined < 1)) and gini[0] > 0.99
    assert degenerate(maps).tolist() == [False, True, True, True, False]
    nan = np.full((2, 2), np.nan, np.float32)
    assert degenerate(np.stack([nan, np.array([[np.nan, 1], [1, 1]], np.float32)])).tolist() \
        == [True, True]
    assert [describe(m) for m in maps] == [None, "empty map (constant 1)", "empty map (all 0)",
                                           "empty map (constant -0.5)", None]
    assert describe(nan) == "empty map (no finite value)"


def test_channel_order_of_the_two_variants():
    # One pixel holds channels (+1, -1, 0), another (1, 1, 1); two pixels are 0.
    # dina (mean, then abs): |0| and |1| -> one pixel holds everything: Gini 0.75, entropy 0.
    # xplique (abs, then mean): 2/3 and 1 -> p = 0.4, 0.6: entropy -(.4 ln .4 + .6 ln .6),
    #   Gini = 2 (1*0 + 2*0 + 3*.4 + 4*.6) / 4 - 5/4 = 1.8 - 1.25 = 0.55.
    maps = np.zeros((1, 2, 2, 3), np.float32)
    maps[0, 0, 0] = [1, -1, 0]
    maps[0, 1, 1] = [1, 1, 1]
    np.testing.assert_allclose(Sparseness()(maps), [0.75], atol=1e-6)
    np.testing.assert_allclose(Complexity()(maps), [0.0], atol=1e-6)
    np.testing.assert_allclose(Sparseness(variant="xplique")(maps), [0.55], atol=1e-6)
    entropy = -(0.4 * np.log(0.4) + 0.6 * np.log(0.6))
    np.testing.assert_allclose(Complexity(variant="xplique")(maps), [entropy], atol=1e-6)


def test_mufidelity_perfect_and_reversed_explanation():
    # A linear model scores sum(w * x). With the map E = w * x, a mask m removes
    #   delta = sum over pixels and channels of w x (1 - m) = 3 * sum(mean_c(E) (1 - m))
    # = 3 * attr: delta and attr rank the draws alike -> Spearman 1 (and -1 for -E).
    rng = np.random.default_rng(0)
    inputs = rng.random((4, 16, 16, 3), np.float32)
    weights = rng.standard_normal((16, 16, 3)).astype(np.float32)

    def linear(batch):
        return np.stack([(batch * weights).sum(axis=(1, 2, 3)), np.zeros(len(batch))], 1)

    targets = np.tile(TARGET, (4, 1))
    contribution = inputs * weights
    metric = MuFidelity(linear, grid_size=4, nb_samples=50)
    np.testing.assert_allclose(metric(inputs, targets, contribution), 1.0, atol=1e-9)
    reversed_scores = metric(inputs, targets, -contribution)
    assert np.all(reversed_scores < -0.99)


def test_mufidelity_masks_by_hand():
    # nearest resize of an 8-cell grid to 224 pixels: 28 pixels per cell.
    assert np.bincount(nearest_indices(8, 224)).tolist() == [28] * 8
    # 2 cells over 5 pixels: centres at 0.2, 0.6, 1.0, 1.4, 1.8 -> cells 0 0 1 1 1
    assert nearest_indices(2, 5).tolist() == [0, 0, 1, 1, 1]
    metric = MuFidelity(pixel_sum_model, nb_samples=1000, grid_size=8, seed=3)
    masks = metric.masks(7)
    assert masks.shape == (1000, 8, 8) and set(np.unique(masks)) == {0.0, 1.0}
    assert 0.77 < masks.mean() < 0.83  # cells are kept with probability 0.8
    np.testing.assert_array_equal(masks, MuFidelity(pixel_sum_model, seed=3,
                                                    nb_samples=1000).masks(7))
    assert not np.array_equal(masks, metric.masks(8))


def _data(n=7, size=8, seed=0):
    rng = np.random.default_rng(seed)
    inputs = rng.random((n, size, size, 3), np.float32)
    maps = rng.standard_normal((n, size, size, 3)).astype(np.float32)
    targets = np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)]
    return inputs, targets, maps


def _mixed_model(batch):
    batch = np.asarray(batch, np.float64)
    top = batch[:, : batch.shape[1] // 2].sum(axis=(1, 2, 3))
    return np.stack([np.tanh(top / 10), batch[..., 0].std(axis=(1, 2))], axis=1)


@pytest.mark.parametrize("name", ["Insertion", "Deletion", "MuFidelity", "Sparseness",
                                  "Complexity"])
def test_stream_equals_array_call(name):
    inputs, targets, maps = _data()
    kwargs = {"nb_samples": 20} if name == "MuFidelity" else {}
    if name in ("Insertion", "Deletion"):
        kwargs = {"nb_steps": 10}
    model = _mixed_model if catalog.METRICS[name].needs_model else None
    whole = metrics.build(name, model, batch_size=3, **kwargs)(inputs, targets, maps)
    assert whole.shape == (7,) and np.all(np.isfinite(whole))
    # Uneven batches (1, 4, 2) of tuples, then of mappings with the record feature names.
    cuts = [(0, 1), (1, 5), (5, 7)]
    stream = ((inputs[a:b], targets[a:b], maps[a:b]) for a, b in cuts)
    other = metrics.build(name, model, batch_size=5, **kwargs)
    np.testing.assert_allclose(other.evaluate(stream), whole, rtol=1e-6, atol=1e-9)
    records = ({"preprocess_input": inputs[a:b], "one_hot_prediction": targets[a:b],
                "explanations": maps[a:b]} for a, b in cuts)
    chunks = list(other.iter_scores(records))
    assert [len(c) for c in chunks] == [5, 2]
    np.testing.assert_allclose(np.concatenate(chunks), whole, rtol=1e-6, atol=1e-9)
    # One sample scored alone, numbered as in the stream, gives its score in the stream.
    alone = other(inputs[4:5], targets[4:5], maps[4:5], start=4)
    np.testing.assert_allclose(alone, whole[4:5], rtol=1e-6, atol=1e-9)


def test_stream_memory_is_bounded_by_the_batch():
    seen = []

    class Spy(Sparseness):
        def scores(self, inputs, targets, explanations, *, start=0):
            seen.append(len(explanations))
            return super().scores(inputs, targets, explanations, start=start)

    def endless():
        rng = np.random.default_rng(0)
        for _ in range(50):
            yield rng.random((3, 4, 4, 1), np.float32)

    scores = list(Spy(batch_size=4).iter_scores(endless()))
    assert max(seen) == 4 and sum(seen) == 150 and sum(len(s) for s in scores) == 150


def test_mufidelity_repeats_with_a_seed():
    inputs, targets, maps = _data()
    first = MuFidelity(_mixed_model, nb_samples=30, seed=1)(inputs, targets, maps)
    again = MuFidelity(_mixed_model, nb_samples=30, seed=1, batch_size=2)(inputs, targets, maps)
    other = MuFidelity(_mixed_model, nb_samples=30, seed=2)(inputs, targets, maps)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("name", list(catalog.METRICS))
def test_every_catalog_metric_is_importable_with_published_defaults(name):
    cls = getattr(metrics, name)
    assert cls.name == name
    spec = catalog.METRICS[name]
    params = inspect.signature(cls).parameters
    for key, value in spec.params.items():
        default = params[key].default if key in params else None
        if key == "fraction":
            default = cls.fraction_default
        assert default == value, f"{name}.{key}: default {default!r}, catalog {value!r}"
    exec(f"from dina_datasets.metrics import {name}", {})


def test_bad_input_raises_clear_errors():
    with pytest.raises(ConfigError, match="valid: Insertion, Deletion"):
        metrics.metric_class("Delection")
    with pytest.raises(ConfigError, match="needs a model"):
        Deletion(None)
    with pytest.raises(ConfigError, match="nb_steps"):
        Deletion(pixel_sum_model, nb_steps=1)
    with pytest.raises(ConfigError, match="variant"):
        Sparseness(variant="quantus")
    inputs, targets, maps = _data()
    with pytest.raises(AlignmentError, match="7 explanations but 6 inputs"):
        Deletion(pixel_sum_model)(inputs[:6], targets, maps)
    with pytest.raises(AlignmentError, match="do not cover"):
        Deletion(pixel_sum_model)(inputs, targets, maps[:, :4])
    with pytest.raises(AlignmentError, match="classes"):
        Deletion(pixel_sum_model, nb_steps=3)(inputs, np.ones((7, 5), np.float32), maps)
    assert metrics.metric_class("deletion") is Deletion


def test_ssim_matches_skimage():
    from skimage.metrics import structural_similarity

    from dina_datasets.metrics.ssim import ssim

    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 30, 26, 3))
    b = a + 0.7 * rng.standard_normal(a.shape)
    ours = ssim(a, b)
    for i in range(3):
        data_range = max(a[i].max(), b[i].max()) - min(a[i].min(), b[i].min())
        reference = structural_similarity(a[i], b[i], gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=data_range,
                                          channel_axis=-1)
        assert ours[i] == pytest.approx(reference, abs=1e-9)
    # identical maps -> 1; constant identical maps (range 0) -> 1 by definition
    assert ssim(a, a) == pytest.approx(np.ones(3))
    assert ssim(np.zeros((2, 4, 4)), np.zeros((2, 4, 4))).tolist() == [1.0, 1.0]


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    from dina_datasets.metrics.ranks import average_ranks, spearman

    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((4, 40)), rng.standard_normal((4, 40))
    reference = [spearmanr(x, y)[0] for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(spearman(a, b), reference, atol=1e-12)  # no ties: all agree
    ta, tb = rng.integers(0, 4, (4, 40)), rng.integers(0, 4, (4, 40))
    reference = [spearmanr(x, y)[0] for x, y in zip(ta, tb, strict=True)]
    np.testing.assert_allclose(spearman(ta, tb, ties="average"), reference, atol=1e-7)
    # By hand: [30, 10, 20, 20, 10] -> tied 10s share ranks 0,1 -> 0.5; 20s -> 2.5; 30 -> 4
    np.testing.assert_allclose(average_ranks(np.array([[30, 10, 20, 20, 10]])),
                               [[4, 0.5, 2.5, 2.5, 0.5]])
    # Double argsort breaks ties by position: ranks 4 0 2 3 1
    ordinal = spearman(np.array([[30, 10, 20, 20, 10]]), np.array([[4, 0, 2, 3, 1]]))
    assert ordinal == pytest.approx([1.0])
