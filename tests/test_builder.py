"""The datasets builder: configs, DatasetInfo, prepared rows, joins and their errors."""

from __future__ import annotations

import json
import os

import datasets
import numpy as np
import pytest
from conftest import (
    DINA_MODELS,
    PUBLISHED_CONFIGS,
    REFERENCE_EXPLAINERS,
    SCORE_COLUMNS,
    configs_with,
    make_bucket,
    make_maps,
)

from dina_datasets import (
    AlignmentError,
    ConfigError,
    FormatError,
    Layout,
    RecordError,
    catalog,
    inspect,
    write_explanations,
    write_records,
)
from dina_datasets.hf.builder import DinaBuilder, DinaConfig
from dina_datasets.hf.features import features, metric_columns
from dina_datasets.hf.loading import load_dataset
from dina_datasets.storage import atomic_write


def prepare(root, name, cache, **config):
    builder = DinaBuilder(config_name=name, data_url=root, cache_dir=str(cache), **config)
    builder.download_and_prepare()
    return builder.as_dataset("validation").with_format("numpy")[:]


def test_builder_configs_are_the_published_cells_then_the_references():
    assert len(PUBLISHED_CONFIGS) == 117
    names = [c.name for c in DinaBuilder.BUILDER_CONFIGS]
    assert sorted(names[:117]) == sorted(PUBLISHED_CONFIGS)
    assert sorted(names[117:]) == sorted(f"{m}-{e}" for m in DINA_MODELS
                                         for e in REFERENCE_EXPLAINERS)
    assert list(DinaBuilder.builder_configs) == names


@pytest.mark.parametrize("channels", [1, 3])
def test_config_info_and_features(channels, tmp_path):
    """Every published config (here those of one channel count) has its DatasetInfo."""
    names = configs_with(channels)
    assert len(names) == (54 if channels == 3 else 63)
    for name in names:
        model, explainer = name.split("-")
        builder = DinaBuilder(config_name=name, cache_dir=str(tmp_path))
        assert isinstance(builder.config, DinaConfig)
        assert (builder.config.name, builder.config.model, builder.config.explainer) == \
            (name, model, explainer)
        info = builder.info
        assert info.config_name == name and info.builder_name == "dina"
        assert info.features == features(catalog.Cell(model, explainer)), name
        explanation = info.features["explanation"]
        assert isinstance(explanation, datasets.Array3D)
        assert (explanation.shape, explanation.dtype) == ((224, 224, channels), "float32"), name
        assert list(info.features) == ["index", "model", "explainer", "explanation",
                                       "image_id", "label", "prediction", *SCORE_COLUMNS]


def test_score_columns_carry_the_activations():
    assert metric_columns() == list(SCORE_COLUMNS)


def test_config_names_are_derived_and_validated():
    assert DinaConfig(model="dinov2", explainer="RISE").name == "DinoV2-Rise"
    config = DinaConfig("dinov2-rise")
    assert (config.name, config.model, config.explainer) == ("DinoV2-Rise", "DinoV2", "Rise")
    with pytest.raises(ConfigError, match="does not match"):
        DinaConfig(name="DinoV2-Rise", model="ResNet50", explainer="Rise")
    with pytest.raises(ValueError, match="did you mean 'ResNet50-Saliency'"):
        DinaConfig("ResNet50-Salency")
    with pytest.raises(ConfigError, match="not in DINA"):
        DinaBuilder(config_name="DinoV2-GradCAM")
    with pytest.raises(ConfigError, match="DinoV2-Rise"):
        DinaBuilder()
    builder = DinaBuilder(model="ResNet50", explainer="Lime", data_url="/nowhere")
    assert builder.config.name == "ResNet50-Lime"
    assert DinaBuilder(config_name="resnet50-LIME").config.name == "ResNet50-Lime"


def test_prepared_rows(bucket, tmp_path):
    root, maps = bucket
    for name, expected in maps.items():
        rows = prepare(root, name, tmp_path / "cache")
        cell = catalog.Cell.from_name(name)
        assert rows["explanation"].shape == expected.shape
        np.testing.assert_array_equal(rows["explanation"], expected)
        np.testing.assert_array_equal(rows["index"], np.arange(5))
        assert set(rows["model"]) == {cell.model} and set(rows["explainer"]) == {cell.explainer}
        assert list(rows["image_id"]) == [""] * 5
        np.testing.assert_array_equal(rows["label"], -1)
        np.testing.assert_array_equal(rows["prediction"], -1)
        layout = Layout(root)
        for metric, spec in catalog.METRICS.items():
            with open(layout.scores(cell.model, cell.explainer, metric)) as handle:
                scores = json.load(handle)
            got = rows[metric]
            np.testing.assert_allclose(got[:len(scores)], scores)
            assert np.isnan(got[len(scores):]).all()
            assert len(scores) == (3 if spec.subset else 5)


def test_missing_score_files_give_null_columns(tmp_path):
    root = str(tmp_path / "bucket")
    maps = make_bucket(root, ["ResNet50-Rise"])
    layout = Layout(root)
    os.remove(layout.scores("ResNet50", "Rise", "Insertion"))
    os.remove(layout.scores("ResNet50", "Rise", "RandomLogitMetric"))
    builder = DinaBuilder(config_name="ResNet50-Rise", data_url=root, cache_dir=str(tmp_path / "c"))
    builder.download_and_prepare()
    ds = builder.as_dataset("validation")
    assert ds.features == features(catalog.Cell("ResNet50", "Rise"))
    assert ds["Insertion"] == [None] * 5 and ds["RandomLogitMetric"] == [None] * 5
    assert ds["Deletion"][4] is not None
    np.testing.assert_array_equal(ds.with_format("numpy")["explanation"], maps["ResNet50-Rise"])

    bare = str(tmp_path / "bare")
    make_bucket(bare, ["ResNet50-Rise"], scores=False)
    rows = prepare(bare, "ResNet50-Rise", tmp_path / "c2")
    for metric in metric_columns():
        assert np.isnan(rows[metric]).all()


def test_score_file_longer_than_explanations(tmp_path):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"])
    url = Layout(root).scores("DinoV2", "Rise", "Deletion")
    with atomic_write(url, "w") as handle:
        json.dump([0.5] * 6, handle)
    with pytest.raises(AlignmentError, match=r"holds 6 scores.*only 5 explanations"):
        prepare(root, "DinoV2-Rise", tmp_path / "c")


def test_malformed_score_file(tmp_path):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["DinoV2-Rise"])
    url = Layout(root).scores("DinoV2", "Rise", "Deletion")
    with atomic_write(url, "w") as handle:
        json.dump({"scores": [1.0]}, handle)
    with pytest.raises(FormatError, match="Deletion_scores.json must hold a JSON list"):
        prepare(root, "DinoV2-Rise", tmp_path / "c")


def write_imagenet_json(path, n):
    entries = [{"image": f"/data/val/n{i:08d}/ILSVRC2012_val_{i + 1:08d}.JPEG", "label": 10 * i}
               for i in range(n)]
    train = [{"image": "/data/train/a.JPEG", "label": 0}]
    with open(path, "w") as handle:
        json.dump({"train": train, "test": entries, "info": {"num_classes": 1000}}, handle)
    return path


def test_imagenet_json_join(bucket, tmp_path):
    root, maps = bucket
    path = write_imagenet_json(tmp_path / "imagenet_data.json", 5)
    rows = prepare(root, "DinoV2-Rise", tmp_path / "c", imagenet_json=str(path))
    assert list(rows["image_id"]) == [f"ILSVRC2012_val_{i + 1:08d}" for i in range(5)]
    np.testing.assert_array_equal(rows["label"], [0, 10, 20, 30, 40])
    np.testing.assert_array_equal(rows["explanation"], maps["DinoV2-Rise"])


def test_imagenet_json_length_mismatch(bucket, tmp_path):
    root, _ = bucket
    path = write_imagenet_json(tmp_path / "imagenet_data.json", 4)
    with pytest.raises(AlignmentError) as err:
        prepare(root, "DinoV2-Rise", tmp_path / "c", imagenet_json=str(path))
    message = str(err.value)
    assert "lists 4 images" in message and "holds 5 records" in message
    assert "imagenet_data.json" in message and "explanations.tfrecord" in message


def write_preprocess(url, n, classes):
    records = []
    for i in range(n):
        one_hot = np.zeros(1000, np.float32)
        one_hot[classes[i]] = 1.0
        records.append({"preprocess_input": make_maps(1, 3, seed=i, size=8)[0],
                        "one_hot_prediction": one_hot})
    write_records(url, records)


def test_preprocess_join(bucket, tmp_path):
    root, _ = bucket
    classes = [3, 999, 0, 42, 7]
    write_preprocess(Layout(root).preprocess("DinoV2"), 5, classes)
    rows = prepare(root, "DinoV2-Rise", tmp_path / "c", preprocess_url=root)
    np.testing.assert_array_equal(rows["prediction"], classes)
    single = str(tmp_path / "pre.tfrecord")
    write_preprocess(single, 5, classes[::-1])
    rows = prepare(root, "DinoV2-Rise", tmp_path / "c2", preprocess_url=single)
    np.testing.assert_array_equal(rows["prediction"], classes[::-1])
    short = str(tmp_path / "short.tfrecord")
    write_preprocess(short, 3, classes)
    with pytest.raises(AlignmentError, match=r"short.tfrecord holds 3 records.*holds 5"):
        prepare(root, "DinoV2-Rise", tmp_path / "c3", preprocess_url=short)


def test_records_with_their_own_keys(tmp_path):
    root = str(tmp_path / "bucket")
    maps = make_bucket(root, ["ResNet50-GradCAM"], n=6, keys=True)
    rows = prepare(root, "ResNet50-GradCAM", tmp_path / "c")
    assert list(rows["image_id"]) == [f"img_{i:03d}" for i in range(6)]
    np.testing.assert_array_equal(rows["label"], [i % 7 for i in range(6)])
    np.testing.assert_array_equal(rows["prediction"], [(i * 3) % 7 for i in range(6)])
    np.testing.assert_array_equal(rows["index"], np.arange(6))
    np.testing.assert_array_equal(rows["explanation"], maps["ResNet50-GradCAM"])


def test_variable_size_records_and_float64_maps(tmp_path):
    """Records of varying size (keys of varying length) and maps of another dtype."""
    root = str(tmp_path / "bucket")
    maps = make_maps(7, 1, seed=3).astype(np.float64)
    url = Layout(root).explanations("MaxVIT", "Lime")
    write_explanations(url, maps, image_id=["x" * (i + 1) for i in range(7)],
                       label=[i * 100 for i in range(7)])
    assert inspect(url).record_size is None
    rows = prepare(root, "MaxVIT-Lime", tmp_path / "c", num_shards=3)
    np.testing.assert_array_equal(rows["explanation"], maps.astype(np.float32))
    assert list(rows["image_id"]) == ["x" * (i + 1) for i in range(7)]
    np.testing.assert_array_equal(rows["label"], [i * 100 for i in range(7)])


def test_wrong_map_shape(tmp_path):
    root = str(tmp_path / "bucket")
    make_bucket(root, ["ResNet50-Rise"], size=32)
    with pytest.raises(RecordError, match=r"shape \(32, 32, 1\).*expects \(224, 224, 1\)"):
        prepare(root, "ResNet50-Rise", tmp_path / "c")


def test_corrupted_record_is_a_record_error(bucket, tmp_path):
    root, _ = bucket
    url = Layout(root).explanations("ResNet50", "Saliency")
    with open(url, "r+b") as handle:
        handle.seek(os.path.getsize(url) // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(RecordError, match="CRC"):
        prepare(root, "ResNet50-Saliency", tmp_path / "c")


def test_missing_explanations(tmp_path):
    with pytest.raises(FileNotFoundError, match="no explanations for DinoV2-Rise"):
        prepare(str(tmp_path / "empty"), "DinoV2-Rise", tmp_path / "c")


def test_num_proc_prepares_the_same_rows(bucket, tmp_path):
    root, maps = bucket
    builder = DinaBuilder(config_name="ResNet50-Saliency", data_url=root, num_shards=4,
                          cache_dir=str(tmp_path / "c"))
    builder.download_and_prepare(num_proc=2)
    rows = builder.as_dataset("validation").with_format("numpy")[:]
    np.testing.assert_array_equal(rows["index"], np.arange(5))
    np.testing.assert_array_equal(rows["explanation"], maps["ResNet50-Saliency"])


def test_memory_filesystem(tmp_path):
    root = "memory://dina-builder-test"
    maps = make_bucket(root, ["DinoV2-Rise"], n=4)
    rows = prepare(root, "DinoV2-Rise", tmp_path / "c")
    np.testing.assert_array_equal(rows["explanation"], maps["DinoV2-Rise"])
    assert rows["Insertion"].shape == (4,)


@pytest.fixture
def contributed():
    catalog.register_explainer("TestBlur", lambda model, x, y: x[..., :1], channels=1)
    yield "ResNet50-TestBlur"
    catalog.unregister("TestBlur")


def test_contributed_cell_is_a_config(contributed, tmp_path):
    assert contributed in DinaBuilder.builder_configs
    root = str(tmp_path / "bucket")
    maps = make_bucket(root, [contributed], n=3)
    rows = prepare(root, contributed, tmp_path / "c")
    np.testing.assert_array_equal(rows["explanation"], maps[contributed])
    assert set(rows["explainer"]) == {"TestBlur"}


def test_load_dataset_wrapper(bucket, tmp_path):
    root, maps = bucket
    ds = load_dataset("dina", "dinov2-rise", split="validation", data_url=root,
                      cache_dir=str(tmp_path / "c"))
    assert isinstance(ds, datasets.Dataset) and ds.num_rows == 5
    np.testing.assert_array_equal(ds.with_format("numpy")["explanation"], maps["DinoV2-Rise"])
    both = load_dataset("dina", "DinoV2-Rise", data_url=root, cache_dir=str(tmp_path / "c"))
    assert list(both) == ["validation"]
    stream = load_dataset("dina", "DinoV2-Rise", split="validation", data_url=root,
                          streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    with pytest.raises(ConfigError, match="unexpected keyword arguments data_dir"):
        load_dataset("dina", "DinoV2-Rise", data_dir=root)
    with pytest.raises(ConfigError, match="num_proc"):
        load_dataset("dina", "DinoV2-Rise", data_url=root, streaming=True, num_proc=2)


def test_datasets_pin_is_what_works():
    """Measured with each version installed over this environment: 3.6 and 4.0 cannot import
    the builder (no `datasets.builder.Key`); 4.5 and 5.0 import it but give missing scores as
    None in numpy format (4 tests here fail); 5.1 and 5.2 pass them all. So the pin is >= 5.1,
    and there is no loading script for older versions: they could not import the builder."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    root = os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, "pyproject.toml"), "rb") as handle:
        project = tomllib.load(handle)["project"]
    pin = next(Requirement(r) for r in project["dependencies"] if r.startswith("datasets"))
    assert pin.specifier.contains("5.1.0") and not pin.specifier.contains("5.0.0"), pin
    assert Version(datasets.__version__) in pin.specifier
    assert not [f for f in os.listdir(os.path.join(root, "builders", "dina"))
                if f.endswith(".py")]


def test_offline_reuses_the_newest_prepared_cache(emulator, tmp_path, monkeypatch):
    from conftest import BUCKET

    from dina_datasets.errors import NetworkError
    from dina_datasets.hf.caches import OfflineCacheWarning

    server, _, maps = emulator
    cache = str(tmp_path / "cache")

    def load(endpoint, cache_dir=cache):
        ds = load_dataset("dina", "DinoV2-Rise", split="validation", data_url=BUCKET,
                          cache_dir=cache_dir, storage_options={"endpoint_url": endpoint})
        return ds.with_format("numpy")[:]

    online = load(server.endpoint)
    np.testing.assert_array_equal(online["explanation"], maps["DinoV2-Rise"])
    # the source unreachable (nothing listens on the port): yesterday's cache, said so
    with pytest.warns(OfflineCacheWarning, match="DinoV2-Rise: the source cannot be reached.*"
                      "using the cache prepared from it on"):
        unreachable = load("http://127.0.0.1:9")
    np.testing.assert_array_equal(unreachable["explanation"], maps["DinoV2-Rise"])
    assert list(unreachable["index"]) == list(online["index"])
    # offline mode, a remote endpoint: the same, without trying the network
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.warns(OfflineCacheWarning, match="offline mode is on"):
        offline = load("http://storage.example.invalid")
    np.testing.assert_array_equal(offline["explanation"], maps["DinoV2-Rise"])
    # no cache prepared: the usual NetworkError
    with pytest.raises(NetworkError, match="offline mode is on"):
        load("http://storage.example.invalid", cache_dir=str(tmp_path / "empty"))
