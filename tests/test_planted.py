"""The planted-truth model: its output depends only on a known region, so the right answer is
known. Gradient maps land in the region (not transposed, flipped or shifted), the fidelity
metrics rank the region above random maps with a large, significant effect, and model
randomization destroys the maps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dina_datasets import catalog
from dina_datasets.demo import planted

tf = pytest.importorskip("tensorflow")
from dina_datasets.generation.explainers import make_explainer  # noqa: E402
from dina_datasets.generation.models import build_model  # noqa: E402
from dina_datasets.metrics import build  # noqa: E402
from dina_datasets.metrics.randomization import ModelRandomizationMetric  # noqa: E402

N = 12


@pytest.fixture(scope="module")
def setup():
    """The registered model, 12 preprocessed-like inputs (raw01, varied colours) and the
    model's own one-hot predictions."""
    planted.register()
    model = build_model(planted.NAME, "none")
    rng = np.random.default_rng(1)
    x = (rng.random((N, planted.SIZE, planted.SIZE, 3), dtype=np.float32) *
         rng.random((N, 1, 1, 3), dtype=np.float32))
    targets = np.eye(catalog.NUM_CLASSES, dtype=np.float32)[model(x).numpy().argmax(-1)]
    yield model, x, targets
    catalog.unregister(planted.NAME)


def test_registered_like_a_users_model(setup, tmp_path):
    from dina_datasets.registry import load_registry

    spec = catalog.model(planted.NAME)
    assert spec.contributed and spec.input_size == 32 and spec.rescale_mode == "raw01"
    assert spec.constructor == "dina_datasets.demo.planted:planted_model"
    assert f"{planted.NAME}-Saliency" in catalog.config_names()
    assert f"{planted.NAME}-GradCAM" not in catalog.config_names()  # no conv layer
    registry = tmp_path / "planted.toml"
    registry.write_text(f'[models.{planted.NAME}]\nfactory = "{planted.FACTORY}"\n'
                        'input_size = 32\nrescale_mode = "raw01"\nhas_conv = false\n')
    assert load_registry(str(registry)) == [planted.NAME]  # replaces it, the same spec
    assert catalog.model(planted.NAME) == spec


def test_the_output_depends_on_the_region_only(setup):
    model, x, _ = setup
    noise = np.random.default_rng(2).random(x.shape, dtype=np.float32)
    outside = np.where(planted.region()[None, ..., None], x, noise)
    np.testing.assert_allclose(model(outside).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-6)
    inside = np.where(planted.region()[None, ..., None], noise, x)
    assert np.abs(model(inside).numpy() - model(x).numpy()).max() > 0.1


def _mass_in(maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    magnitude = np.abs(maps).sum(axis=-1)
    return magnitude[:, mask].sum(axis=1) / magnitude.sum(axis=(1, 2))


@pytest.mark.parametrize("explainer", ["Saliency", "IntegratedGradients"])
def test_gradient_maps_put_their_mass_in_the_region(setup, explainer):
    model, x, targets = setup
    explain = make_explainer(explainer, model, model_name=planted.NAME, batch_size=N,
                             baseline=x.mean(axis=(0, 1, 2)))
    maps = explain(x, targets)
    assert maps.shape == (N, 32, 32, 3)
    region = planted.region()
    assert (_mass_in(maps, region) > 0.99).all()
    # a transposed, flipped or shifted map would miss the region entirely
    for moved in (region.T, region[::-1], region[:, ::-1], np.roll(region, 10, axis=1)):
        assert not (moved & region).any()
        assert (_mass_in(maps, moved) < 0.01).all()


@pytest.mark.parametrize(("metric", "alternative"), [("Deletion", "less"),
                                                     ("Insertion", "greater")])
def test_fidelity_ranks_the_region_above_random_maps(setup, metric, alternative):
    model, x, targets = setup
    random_maps = make_explainer("RandomExp", model, model_name=planted.NAME)(x, targets)
    scorer = build(metric, model, batch_size=256)  # the published 200 steps
    ideal, random = scorer(x, targets, planted.ideal_maps(N)), scorer(x, targets, random_maps)
    test = stats.wilcoxon(ideal, random, alternative=alternative)
    assert test.pvalue < 1e-3  # 12 pairs, all in the right direction: p = 2**-12
    difference = ideal - random if alternative == "greater" else random - ideal
    assert (difference > 0).all()  # matched-pairs rank-biserial effect = 1
    assert difference.mean() > 0.15 and difference.mean() / difference.std() > 1.5


def test_model_randomization_drops_to_near_zero_correlation(setup):
    model, x, targets = setup

    def factory(net):
        return make_explainer("Saliency", net, model_name=planted.NAME, batch_size=N)

    maps = factory(model)(x, targets)
    layers = [layer.name for layer in model.layers]
    randomized = ModelRandomizationMetric(model, factory, fraction=0.8, batch_size=N)
    assert [layer.name for layer in randomized.randomized_layers(model)] == layers[:4]
    assert "region_mean" in layers[:4]
    scores = randomized(x, targets, maps)
    assert np.abs(scores).max() < 0.1
    untouched = ModelRandomizationMetric(model, factory, fraction=0.0, batch_size=N)
    np.testing.assert_allclose(untouched(x, targets, maps), 1.0, atol=1e-6)  # the control
    # the published 1.5 % and 5 % randomize none of this model's 5 layers
    assert build("ModelRandomizationMetric05", model, factory).randomized_layers(model) == []


def test_verdict_reads_a_leaderboard(setup):
    """"right" only with evidence: the paired test's verdict `better` at p_adjusted < 0.01,
    whatever the means say (4 images with the right means are not evidence)."""
    import pandas as pd

    from dina_datasets.analysis.leaderboard import Leaderboard
    from dina_datasets.analysis.stats.comparisons import COLUMNS as PAIR_COLUMNS

    def board(rows, pairs):
        summary = pd.DataFrame(
            [{"model": planted.NAME, "explainer": e, "metric": m, "n": 4, "mean": mean,
              "ci_low": mean - 0.01, "ci_high": mean + 0.01, "rank": rank,
              "degenerate": False, "vs_next": None, "vs_random": None}
             for e, m, mean, rank in rows])
        pairs = pd.DataFrame([{"model": planted.NAME, "metric": m, "a": a, "b": b, "n": n,
                               "p_adjusted": q, "verdict": v, "paired_by": "image_id"}
                              for m, a, b, n, q, v in pairs]).reindex(columns=PAIR_COLUMNS)
        return Leaderboard(summary, pairs, alpha=0.01, ci="normal")

    rows = [("Saliency", "Deletion", 0.05, 1.0), ("RandomExp", "Deletion", 0.5, 2.0),
            ("Saliency", "Insertion", 0.2, 2.0), ("RandomExp", "Insertion", 0.5, 1.0),
            ("IntegratedGradients", "Deletion", 0.1, 1.0)]
    pairs = [("Deletion", "Saliency", "RandomExp", 64, 1e-9, "better"),
             ("Insertion", "RandomExp", "Saliency", 64, 1e-9, "better"),
             ("Deletion", "IntegratedGradients", "RandomExp", 4, 0.5, "inconclusive")]
    text = planted.verdict(board(rows, pairs))
    assert ("Deletion (lower is better): Saliency 0.05 vs RandomExp 0.5 on 64 images: better "
            "(p_adjusted 1e-09): right") in text
    assert ("Insertion (higher is better): Saliency 0.2 vs RandomExp 0.5 on 64 images: worse "
            "(p_adjusted 1e-09): WRONG") in text
    # the right means on 4 images: no evidence, so not right
    assert ("IntegratedGradients 0.1 vs RandomExp 0.5 on 4 images: inconclusive "
            "(p_adjusted 0.5): WRONG") in text
    assert planted.comparison(board(rows, pairs), "Insertion", "Saliency") == ("worse", 1e-9, 64)
    assert "no Insertion/Deletion scores" in planted.verdict(board(rows[:1], pairs[:0]))
    assert ("Deletion (lower is better): Saliency 0.05 vs RandomExp 0.5: not compared (no "
            "paired verdict): WRONG") in planted.verdict(board(rows[:2], pairs[:0]))
