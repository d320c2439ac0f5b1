"""The reference explainers Sobel, Laplace and RandomExp: equal to scipy.ndimage's filters on
the model's preprocessed inputs (image by image), RandomExp repeats with its seed, and all
three go through `dina generate` and the builder like any explainer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dina_datasets import catalog
from dina_datasets.errors import ConfigError
from dina_datasets.generation import baselines


def scipy_sobel(image: np.ndarray) -> np.ndarray:
    """The documented definition, one (H, W, C) image at a time."""
    g = image.astype(np.float64).mean(axis=-1)
    return np.hypot(ndimage.sobel(g, axis=0), ndimage.sobel(g, axis=1))


def scipy_laplace(image: np.ndarray) -> np.ndarray:
    return np.abs(ndimage.laplace(image.astype(np.float64).mean(axis=-1)))


@pytest.fixture(scope="module")
def inputs():
    """Preprocessed-like inputs: a batch of different images, torch-rescaled values."""
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 1.2, (5, 40, 48, 3)).astype(np.float32)
    x[1, 10:20, 5:30] += 3.0  # a bright rectangle: strong edges
    return x


@pytest.mark.parametrize(("name", "reference"), [("sobel", scipy_sobel),
                                                 ("laplace", scipy_laplace)])
def test_filters_equal_scipy_image_by_image(inputs, name, reference):
    maps = getattr(baselines, name)(None, inputs, None)
    assert maps.shape == (*inputs.shape[:3], 1) and maps.dtype == np.float32
    for i, image in enumerate(inputs):
        expected = reference(image).astype(np.float32)
        np.testing.assert_allclose(maps[i, ..., 0], expected, rtol=1e-6, atol=1e-6)
        # one image alone gives the same map: the batch axis is never filtered
        np.testing.assert_array_equal(getattr(baselines, name)(None, inputs[i:i + 1])[0],
                                      maps[i])
    # not transposed or flipped: the map of the transposed image is the transposed map
    turned = np.ascontiguousarray(inputs.transpose(0, 2, 1, 3))
    np.testing.assert_allclose(getattr(baselines, name)(None, turned)[..., 0],
                               maps[..., 0].transpose(0, 2, 1), rtol=1e-5, atol=1e-5)
    assert maps[1, 10:20, 5:30].max() > 2 * np.median(maps[1])  # the rectangle's edges stand out


def test_random_exp_repeats_with_its_seed(inputs):
    first = baselines.random_exp(None, inputs, None, seed=0)
    assert first.shape == (*inputs.shape[:3], 1) and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() < 1.0
    assert abs(float(first.mean()) - 0.5) < 0.02
    np.testing.assert_array_equal(baselines.random_exp(None, inputs, None, seed=0), first)
    # whatever the batching and order: a map depends on its image and the seed only
    reordered = baselines.random_exp(None, inputs[::-1], None, seed=0)[::-1]
    np.testing.assert_array_equal(reordered, first)
    np.testing.assert_array_equal(baselines.random_exp(None, inputs[2:3], seed=0)[0], first[2])
    other = baselines.random_exp(None, inputs, None, seed=1)
    assert not np.array_equal(other, first)
    assert abs(np.corrcoef(other.ravel(), first.ravel())[0, 1]) < 0.05
    assert not np.array_equal(first[0], first[2])  # another image, another map
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        baselines.random_exp(None, inputs, None, seed=-1)


def test_bad_input_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        baselines.sobel(None, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        baselines.random_exp(None, np.zeros((8, 8), np.float32))


def test_catalog_entries_resolve_to_these_functions():
    from dina_datasets.generation.models import resolve_callable

    for name, function in (("Sobel", baselines.sobel), ("Laplace", baselines.laplace),
                           ("RandomExp", baselines.random_exp)):
        spec = catalog.explainer(name)
        assert resolve_callable(spec.method, name) is function
        assert spec.reference and spec.contributed and spec.channels == 1


# --- through the pipeline: generate (TensorFlow), the builder ---------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Planted x {Sobel, Laplace, RandomExp} on 6 images, with the preprocess file."""
    pytest.importorskip("tensorflow")
    from PIL import Image

    from dina_datasets.demo import planted
    from dina_datasets.generation.pipeline import generate

    root = tmp_path_factory.mktemp("baselines")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(7)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (36 + 4 * i, 44, 3), dtype=np.uint8)).save(
            images / f"img_{i}.png")
    planted.register()
    out = str(root / "bucket")
    for k, explainer in enumerate(("Sobel", "Laplace", "RandomExp")):
        generate(planted.NAME, explainer, str(images), out, weights="none", batch_size=4,
                 part_size=4, write_preprocess=k == 0, progress=False)
    yield root, out, str(images)
    catalog.unregister(planted.NAME)


def _maps(out, explainer):
    from dina_datasets import Layout, read_explanations

    return np.stack(list(read_explanations(Layout(out).explanations("Planted", explainer))))


def test_generated_maps_are_the_filters_of_the_preprocessed_inputs(generated):
    from dina_datasets import Layout, read_records

    _, out, _ = generated
    rows = list(read_records(Layout(out).preprocess("Planted")))
    x = np.stack([r["preprocess_input"] for r in rows])
    assert x.shape == (6, 32, 32, 3) and x.min() > -0.2 and x.max() < 1.2  # raw01 (bicubic)
    for explainer, reference in (("Sobel", scipy_sobel), ("Laplace", scipy_laplace)):
        maps = _maps(out, explainer)
        assert maps.shape == (6, 32, 32, 1)
        for i in range(6):
            np.testing.assert_allclose(maps[i, ..., 0], reference(x[i]).astype(np.float32),
                                       rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(_maps(out, "RandomExp"),
                                  baselines.random_exp(None, x, None, seed=0))


def test_random_exp_generation_repeats_and_changes_with_the_seed(generated):
    from dina_datasets.generation.pipeline import generate

    root, out, images = generated
    again = str(root / "again")
    generate("Planted", "RandomExp", images, again, weights="none", batch_size=3, part_size=5,
             progress=False)
    np.testing.assert_array_equal(_maps(again, "RandomExp"), _maps(out, "RandomExp"))
    seeded = str(root / "seeded")
    generate("Planted", "RandomExp", images, seeded, weights="none", batch_size=4,
             params={"seed": 1}, progress=False)
    assert not np.array_equal(_maps(seeded, "RandomExp"), _maps(out, "RandomExp"))


def test_the_builder_reads_reference_configs(generated, tmp_path):
    from dina_datasets import load_dataset

    _, out, _ = generated
    ds = load_dataset("dina", "Planted-Sobel", split="validation", data_url=out,
                      cache_dir=str(tmp_path / "cache")).with_format("numpy")
    assert ds.num_rows == 6 and set(ds["explainer"]) == {"Sobel"}
    np.testing.assert_array_equal(ds["explanation"], _maps(out, "Sobel"))
    assert list(ds["image_id"]) == [f"img_{i}" for i in range(6)]
