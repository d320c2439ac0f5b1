"""`records.MapDecoder`, the one decoder of maps: the readers' records and the builder's chunks
give the same maps and keys, with one decoder kept across chunks of a file whose layout
changes."""

from __future__ import annotations

import numpy as np
import pytest

import dina_datasets as dd
from dina_datasets.hf import arrow
from dina_datasets.recordio import buffers
from dina_datasets.recordio.records import MapDecoder, read_records

SHAPE = (4, 4, 2)


@pytest.fixture
def mixed(tmp_path):
    """Map-only records, then keyed ones, then map-only ones again (another layout each)."""
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((9, *SHAPE)).astype(np.float32)
    records = [{"explanations": maps[i]} for i in range(3)]
    records += [{"explanations": maps[i], "index": 100 + i, "image_id": f"img_{i}"}
                for i in range(3, 6)]
    records += [{"explanations": maps[i]} for i in range(6, 9)]
    path = str(tmp_path / "mixed.tfrecord")
    dd.write_records(path, records)
    return path, maps


@pytest.mark.parametrize("per_chunk", [1, 2, 4, 9])
def test_one_decoder_across_chunks_gives_every_map_and_key(mixed, per_chunk):
    path, maps = mixed
    info = dd.inspect(path)
    decoder = MapDecoder(path, SHAPE)
    got, keys = [], {}
    for a in range(0, info.num_records, per_chunk):
        b = min(info.num_records, a + per_chunk)
        chunk_maps, chunk_keys = arrow.decode_chunk(buffers.read_chunk(info, a, b), SHAPE,
                                                    decoder=decoder)
        got.extend(chunk_maps)
        for name, values in chunk_keys.items():
            keys.setdefault(name, {}).update({a + i: v for i, v in enumerate(values)
                                              if v is not None})
    np.testing.assert_array_equal(np.stack(got), maps)
    assert keys == {"index": {i: 100 + i for i in range(3, 6)},
                    "image_id": {i: f"img_{i}" for i in range(3, 6)}}
    np.testing.assert_array_equal(np.stack(list(dd.read_explanations(path))), maps)
    assert [r.get("index") for r in read_records(path)] == [None] * 3 + [103, 104, 105] + \
        [None] * 3


def test_a_map_of_another_shape_is_refused(mixed):
    path, _ = mixed
    info = dd.inspect(path)
    with pytest.raises(dd.RecordError, match=r"shape \(4, 4, 2\), this config expects "
                       r"\(4, 4, 1\)"):
        MapDecoder(path, (4, 4, 1)).chunk(buffers.read_chunk(info, 0, 2))
