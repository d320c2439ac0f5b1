"""Bounded fuzzing of the reader: correct arrays or the package's error, nothing else."""

from __future__ import annotations

import contextlib
import itertools
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dina_datasets as dd
from dina_datasets import storage
from dina_datasets.hf import arrow
from dina_datasets.recordio import buffers, planner, proto, records
from dina_datasets.recordio import framing as tfrecord

FUZZ = settings(max_examples=150, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
ORIGINAL = [np.arange(k, k + 12, dtype=np.float32).reshape(2, 3, 2) for k in range(4)]
_names = itertools.count()


def put(data: bytes) -> str:
    url = f"memory://fuzz/{next(_names)}.tfrecord"
    fs, path = storage.filesystem(url)
    fs.pipe_file(path, data)
    return url


def valid_file() -> bytes:
    url = put(b"")
    dd.write_explanations(url, ORIGINAL, index=range(4), image_id=["a", "bb", "c", "dd"])
    fs, path = storage.filesystem(url)
    return fs.cat_file(path)


VALID = valid_file()


def read_everything(url: str) -> list[np.ndarray]:
    """All maps by streaming and by random access; only the package's errors may escape."""
    maps = [np.array(m) for m in dd.read_explanations(url)]
    info = dd.inspect(url)
    for i in range(min(info.num_records, 6)):
        dd.read_record(url, i)
    return maps


def read_as_builder(url: str) -> list[np.ndarray]:
    """The builder's path (planned chunks, the map-only fast path); maps of shape (2, 3, 2)."""
    info = dd.inspect(url)
    maps = []
    for a, b in planner.chunks(info, 0, info.num_records, chunk_bytes=150):
        chunk_maps, _ = arrow.decode_chunk(buffers.read_chunk(info, a, b), (2, 3, 2))
        maps.extend(np.array(m) for m in chunk_maps)
    return maps


def is_ordered_subset_of_original(maps: list[np.ndarray]) -> bool:
    positions = []
    for m in maps:
        match = [i for i, o in enumerate(ORIGINAL) if o.shape == m.shape and
                 o.tobytes() == m.tobytes()]
        if not match:
            return False
        positions.append(match[0])
    return positions == sorted(positions)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data):
    url = put(data)
    with contextlib.suppress(dd.DinaError):
        read_everything(url)


@st.composite
def mutations(draw) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "dup":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 64))]
    return bytes(data)


@FUZZ
@given(mutations())
def test_mutated_valid_files_give_original_arrays_or_our_error(data):
    url = put(data)
    try:
        maps = read_everything(url)
    except dd.DinaError:
        return
    assert is_ordered_subset_of_original(maps)


def reframe(example: bytes) -> bytes:
    return tfrecord.frame(example)


@st.composite
def mutated_examples(draw) -> bytes:
    """An Example with a valid frame (CRCs recomputed) whose payload is mutated."""
    example = bytearray(proto.encode_example({"explanations": ORIGINAL[1], "index": 1,
                                              "image_id": "bb"}))
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(example) - 1))
        if draw(st.booleans()):
            example[pos] = draw(st.integers(0, 255))
        else:
            example[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    return bytes(example)


@FUZZ
@given(st.one_of(mutated_examples(), st.binary(max_size=200)))
def test_decoder_on_validly_framed_garbage(example):
    url = put(reframe(example))
    try:
        record = dd.read_record(url, 0)
    except dd.RecordError as err:
        assert err.index == 0 and err.offset is not None
        return
    for value in record.values():
        if isinstance(value, np.ndarray) and value.dtype != object:
            assert value.nbytes == value.size * value.dtype.itemsize


def tensor_proto(dtype_code: int, shape: tuple[int, ...], values: bytes = b"") -> bytes:
    dims = b"".join(proto._ld(2, len(d)) + d for d in
                    (b"\x08" + proto._enc_varint(size) for size in shape))
    return b"\x08" + proto._enc_varint(dtype_code) + proto._ld(2, len(dims)) + dims + values


def test_decoder_rejects_hostile_shapes():
    for shape, values in (((1 << 32, 1 << 32), b""), ((1 << 32, 1 << 32, 0), b""),
                          ((1 << 30,), b"\x2d" + struct.pack("<f", 1.0))):
        url = put(reframe(proto.encode_example({"explanations": [tensor_proto(1, shape,
                                                                               values)]})))
        try:
            array = dd.read_explanation(url, 0)
        except dd.RecordError as err:
            assert any(w in str(err) for w in ("tensor_content", "too large", "cannot be")), err
        else:
            assert array.size == 0 and 0 in shape, (shape, array.shape)
    url = put(reframe(proto.encode_example({"explanations": [
        tensor_proto(1, (65536,), b"\x2d" + struct.pack("<f", 1.0))]})))
    array = dd.read_explanation(url, 0)
    assert array.shape == (65536,) and array.sum() == 65536.0
    assert records.read_explanation(url, 0).dtype == np.float32


def _map_only_file() -> bytes:
    url = put(b"")
    dd.write_records(url, ({"explanations": m} for m in ORIGINAL))
    fs, path = storage.filesystem(url)
    return fs.cat_file(path)


MAP_ONLY = _map_only_file()


@st.composite
def map_only_mutations(draw) -> bytes:
    data = bytearray(MAP_ONLY)
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


@FUZZ
@given(map_only_mutations())
def test_mutated_files_on_the_builders_path_give_original_maps_or_our_error(data):
    url = put(data)
    try:
        maps = read_as_builder(url)
    except dd.DinaError:
        return
    assert is_ordered_subset_of_original(maps)
