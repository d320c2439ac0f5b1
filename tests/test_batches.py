"""TorchBatches: whole batches for a DataLoader, the maps through reused shared-memory slots."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from conftest import STREAM_RECORDS, make_bucket, streaming

from dina_datasets.hf.batches import TorchBatches
from dina_datasets.hf.export import export

torch = pytest.importorskip("torch")
DataLoader = torch.utils.data.DataLoader

N = STREAM_RECORDS
CONFIG = "ResNet50-Saliency"


def by_index(batch_list):
    """{column: values over all batches, in record order}."""
    index = np.concatenate([np.asarray(b["index"]) for b in batch_list])
    order = np.argsort(index, kind="stable")
    out = {}
    for name in batch_list[0]:
        values = [b[name] for b in batch_list]
        if isinstance(values[0], torch.Tensor):
            out[name] = torch.cat(values).numpy()[order]
        else:
            out[name] = [v for part in values for v in part]
            out[name] = [out[name][i] for i in order]
    return out


def assert_same(got, want):
    assert list(got) == list(want)
    for name in want:
        if isinstance(want[name], np.ndarray):
            assert got[name].dtype == want[name].dtype, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        else:
            assert got[name] == want[name], name


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_equal_datasets_torch_format(stream_bucket, workers):
    """Every column, strings and null scores included, as `with_format("torch")` gives it."""
    root, maps = stream_bucket
    ds = streaming(root, num_shards=4)
    want = list(ds.with_format("torch").iter(batch_size=5))
    loader = DataLoader(TorchBatches(ds, 5), batch_size=None, num_workers=workers)
    got = list(loader)
    assert all(isinstance(b, dict) for b in got)
    if workers == 0:
        assert [len(b["index"]) for b in got] == [5, 5, 2]
    else:  # each worker batches its own 6 records (2 of the 4 shards)
        assert sorted(len(b["index"]) for b in got) == [1, 1, 5, 5]
    assert_same(by_index(got), by_index(want))
    np.testing.assert_array_equal(by_index(got)["explanation"], maps[CONFIG])
    assert np.isnan(by_index(got)["ModelRandomizationMetric01"][3:]).all()


def test_batches_kept_by_the_caller_are_their_own(stream_bucket):
    """Every batch held over two epochs of persistent workers keeps its own maps."""
    root, maps = stream_bucket
    ds = streaming(root, "DinoV2-Rise", num_shards=2).select_columns(["index", "explanation"])
    loader = DataLoader(TorchBatches(ds, 1), batch_size=None, num_workers=2,
                        persistent_workers=True)
    for _ in range(2):
        held = list(loader)
        assert len(held) == N
        got = by_index(held)
        assert got["index"].tolist() == list(range(N))
        np.testing.assert_array_equal(got["explanation"], maps["DinoV2-Rise"])
        held[0]["explanation"].add_(1)  # the tensors are the caller's own, writable


def test_spawned_workers(stream_bucket):
    root, maps = stream_bucket
    ds = streaming(root, num_shards=4).select_columns(["index", "explanation", "label"])
    loader = DataLoader(TorchBatches(ds, 5), batch_size=None, num_workers=2,
                        multiprocessing_context="spawn")
    got = by_index(list(loader))
    np.testing.assert_array_equal(got["explanation"], maps[CONFIG])
    assert got["label"].tolist() == [-1] * N


def test_binary_export_as_tensors(tmp_path):
    root = str(tmp_path / "bucket")
    maps = make_bucket(root, ["DinoV2-Rise"], n=6)
    out = str(tmp_path / "hub")
    export(["DinoV2-Rise"], out, data_url=root, encoding="binary")
    ds = datasets.load_dataset(out, "DinoV2-Rise", split="validation", streaming=True)
    shapes = {"explanation": (224, 224, 1)}
    for workers in (0, 2):
        loader = DataLoader(TorchBatches(ds, 4, binary_shapes=shapes), batch_size=None,
                            num_workers=workers)
        got = by_index(list(loader))
        assert got["explanation"].dtype == np.float32
        np.testing.assert_array_equal(got["explanation"], maps["DinoV2-Rise"])
    with pytest.raises(ValueError, match=r"holds 200704 bytes.*\(224, 224, 3\).*takes 602112"):
        list(TorchBatches(ds, 4, binary_shapes={"explanation": (224, 224, 3)}))
    with pytest.raises(ValueError, match="'maps', which is not a column"):
        TorchBatches(ds, 4, binary_shapes={"maps": (224, 224, 1)})
    for bad in ("224x224", (224, 0, 1), (224.0, 224, 1), 3, ()):
        with pytest.raises(ValueError, match="must be a shape of positive integers"):
            TorchBatches(ds, 4, binary_shapes={"explanation": bad})
    with pytest.raises(ValueError, match="not binary"):
        list(TorchBatches(ds, 4, binary_shapes={"index": (1,)}))


def test_columns_without_fixed_shape_go_through_datasets(stream_bucket):
    root, _ = stream_bucket
    ds = streaming(root, num_shards=4).select_columns(["index", "model", "Insertion"])
    loader = DataLoader(TorchBatches(ds, 6, drop_last_batch=True), batch_size=None,
                        num_workers=2)
    got = list(loader)  # each worker's two spans of 3 rows make one batch of 6
    assert [len(b["index"]) for b in got] == [6, 6]
    assert sorted(int(i) for b in got for i in b["index"]) == list(range(N))
    assert all(b["model"] == ["ResNet50"] * 6 for b in got)
    assert all(b["Insertion"].dtype == torch.float32 for b in got)  # as datasets formats it
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            TorchBatches(ds, bad)
