"""The gs:// path against a real GCS server (gcp-storage-emulator) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BUCKET, RECORD
from gcs_server import FaultProxy

import dina_datasets as dd
from dina_datasets import Layout, storage
from dina_datasets.recordio.records import explanation_record_size

SALIENCY = f"{BUCKET}/ResNet50/Saliency/explanations.tfrecord"
RISE = f"{BUCKET}/DinoV2/Rise/explanations.tfrecord"


@pytest.fixture
def proxy(emulator):
    server = FaultProxy(emulator[0].port)
    yield server
    server.stop()


def opts(server) -> dict:
    return {"endpoint_url": server.endpoint}


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def test_gs_reads_equal_local_reads(emulator, monkeypatch):
    server, local, maps = emulator
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"127.0.0.1:{server.port}")
    for url, name in ((SALIENCY, "ResNet50-Saliency"), (RISE, "DinoV2-Rise")):
        got = list(dd.read_records(url))
        local_url = Layout(local).explanations(*name.split("-"))
        want = list(dd.read_records(local_url))
        assert len(got) == len(want) == 6
        for g, w, m in zip(got, want, maps[name], strict=True):
            assert same(g["explanations"], w["explanations"]) and same(g["explanations"], m)
            assert {k: v for k, v in g.items() if k != "explanations"} == \
                   {k: v for k, v in w.items() if k != "explanations"}
        assert same(dd.read_explanation(url, 4), maps[name][4])
    assert dd.inspect(SALIENCY).record_size == RECORD


def test_random_access_reads_the_index_then_exactly_one_record(emulator, proxy):
    maps = emulator[2]["ResNet50-Saliency"]
    array = dd.read_explanation(SALIENCY, 4, storage_options=opts(proxy))
    assert same(array, maps[4])
    media = [r for r in proxy.requests if r.media]
    assert [r.target.split("?")[0].endswith(".index.json") for r in media] == [True, False]
    assert media[0].body_bytes < 2048 and media[1].body_bytes == RECORD
    assert proxy.other_bytes() < 4096, [r.target for r in proxy.requests]


def test_random_access_without_an_index_samples_headers_not_the_file(emulator, proxy):
    server, _, all_maps = emulator
    maps = all_maps["ResNet50-Saliency"]
    url = f"{BUCKET}/noindex/explanations.tfrecord"
    dd.write_records(url, ({"explanations": m} for m in maps),  # no index: like DINA's files
                     storage_options=opts(server))
    array = dd.read_explanation(url, 4, storage_options=opts(proxy))
    assert same(array, maps[4])
    media = [r for r in proxy.requests if r.media]
    headers = 1 + min(len(maps) - 1, 16)  # the first, then a sample including the last
    # the index is looked for (404, no body), then headers, then exactly the record (written
    # without keys: the map alone)
    assert sorted(r.body_bytes for r in media) == [0] + [12] * headers + [
        explanation_record_size((224, 224, 3))]


def test_object_uploads_stream_and_publish_only_when_complete(emulator, fast_retries):
    # (the test server has no DELETE for upload sessions: the discard is retried, then given
    # up, which leaves the object unpublished; fast_retries shortens the back-off)
    server = emulator[0]
    fs, _ = storage.filesystem(BUCKET, opts(server))
    path = "xai-deel/streamed/big.bin"
    block = np.random.default_rng(0).bytes(1 << 20)
    with storage.atomic_write(f"{BUCKET}/streamed/big.bin", "wb", opts(server)) as handle:
        for _ in range(12):  # 12 MB, more than gcsfs's 5 MB block: uploaded while writing
            handle.write(block)
        assert handle.offset is not None and handle.offset >= 5 << 20  # bytes already sent
        fs.invalidate_cache()
        assert not fs.exists(path)  # ... but not published
    fs.invalidate_cache()
    assert fs.cat_file(path) == block * 12
    with pytest.raises(RuntimeError, match="boom"), \
            storage.atomic_write(f"{BUCKET}/streamed/failed.bin", "wb", opts(server)) as handle:
        handle.write(block * 6)
        raise RuntimeError("boom")
    fs.invalidate_cache()
    assert not fs.exists("xai-deel/streamed/failed.bin")


PLANS = {
    "503 twice": lambda n, r: "503" if n in (2, 4) else None,
    "cut mid-body": lambda n, r: ("cut", 300_000) if n in (2, 3) else None,
    "cut after headers": lambda n, r: ("cut", 0) if n == 2 else None,
    "outlasting gcsfs's own 6 attempts": lambda n, r: "503" if 2 <= n <= 8 else None,
    "mixed": lambda n, r: {2: "503", 3: ("cut", 1), 5: ("cut", RECORD + 7), 6: "503"}.get(n),
}


@pytest.mark.parametrize("plan", PLANS, ids=list(PLANS))
def test_stream_survives_faults_exactly_once_in_order(emulator, proxy, fast_retries, plan):
    maps = emulator[2]["ResNet50-Saliency"]
    proxy.plan = PLANS[plan]
    got = list(dd.read_explanations(SALIENCY, chunk_bytes=2 * RECORD,
                                    storage_options=opts(proxy)))
    assert len(got) == len(maps)
    assert all(same(g, m) for g, m in zip(got, maps, strict=True))
    assert any(r.fault for r in proxy.requests), "the plan injected no fault"


def test_stream_fails_clearly_when_retries_run_out(emulator, proxy, fast_retries):
    maps = emulator[2]["ResNet50-Saliency"]
    record_file = SALIENCY.split("/", 3)[-1]

    def plan(n, r):  # reads of the first two records pass; every read of a later byte fails
        # by byte range, not by arrival: the window has several chunk reads in flight
        target = r.target.split("?")[0].replace("%2F", "/")
        if r.media and target.endswith(record_file):
            start = int(r.headers.get("range", "bytes=0-").removeprefix("bytes=").split("-")[0])
            return "503" if start >= 2 * RECORD else None
        return None

    proxy.plan = plan
    got = []
    with pytest.raises(dd.TransferError) as info:  # docs/reliability.md's claim
        for array in dd.read_explanations(SALIENCY, chunk_bytes=2 * RECORD,
                                          storage_options=opts(proxy)):
            got.append(np.array(array))
    assert SALIENCY in str(info.value) and "attempts" in str(info.value)
    assert isinstance(info.value, dd.NetworkError) and isinstance(info.value, dd.DinaError)
    assert storage.TransferError is dd.TransferError
    assert len(got) == 2 < len(maps)  # every map before the failed read reaches the caller
    assert all(same(g, m) for g, m in zip(got, maps, strict=False))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corruption_in_the_bucket_names_object_record_and_offset(emulator, damage):
    server = emulator[0]
    fs, _ = storage.filesystem(BUCKET, opts(server))
    data = bytearray(fs.cat_file("xai-deel/ResNet50/Saliency/explanations.tfrecord"))
    if damage == "flip":
        data[3 * RECORD + 5000] ^= 0x40
    else:
        data = data[: 3 * RECORD + 5000]
    url = f"{BUCKET}/damaged/{damage}.tfrecord"
    fs.pipe_file(url.removeprefix("gs://"), bytes(data))
    with pytest.raises(dd.RecordError) as info:
        list(dd.read_explanations(url, storage_options=opts(server)))
    assert info.value.url == url and info.value.index == 3
    # a flipped byte fails the record's data CRC, stored in its last 4 bytes; a truncation
    # is reported where the cut record starts
    assert info.value.offset == (4 * RECORD - 4 if damage == "flip" else 3 * RECORD)
    assert url in str(info.value) and "record 3" in str(info.value)


WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    import dina_datasets as dd

    def slow():
        for i in range(int(sys.argv[2])):
            if i == 3:
                print("half", flush=True)
                time.sleep(float(sys.argv[3]))
            yield np.full((32, 32, 1), i, np.float32)

    dd.write_explanations(sys.argv[1], slow(), index=range(int(sys.argv[2])),
                          storage_options={"endpoint_url": sys.argv[4]})
    print("done", flush=True)
""")


def test_killed_writer_leaves_no_object_and_a_rerun_completes(emulator, tmp_path):
    server = emulator[0]
    url = f"{BUCKET}/killed/ResNet50/Rise/explanations.tfrecord"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), url, "6", "60", server.endpoint],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "half"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    fs, _ = storage.filesystem(BUCKET, opts(server))
    fs.invalidate_cache()
    assert not fs.exists("xai-deel/killed/ResNet50/Rise/explanations.tfrecord")
    assert fs.find("xai-deel/killed") == []
    done = subprocess.run([sys.executable, str(script), url, "6", "0", server.endpoint],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    fs.invalidate_cache()
    values = [int(m[0, 0, 0]) for m in dd.read_explanations(url, storage_options=opts(server))]
    assert values == list(range(6))


def test_missing_object_and_bucket(emulator):
    server = emulator[0]
    with pytest.raises(dd.LayoutError, match="no such file: gs://xai-deel/nope"):
        dd.read_explanation(f"{BUCKET}/nope/explanations.tfrecord", 0,
                            storage_options=opts(server))
    start = time.monotonic()
    with pytest.raises(dd.LayoutError, match="no such file"):
        list(dd.read_explanations("gs://no-such-bucket/a.tfrecord",
                                  storage_options=opts(server)))
    assert time.monotonic() - start < 30


def test_storage_options_reach_the_bucket_from_the_command_line(emulator, tmp_path, capsys,
                                                                monkeypatch):
    from dina_datasets.cli import main

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    server = emulator[0]
    out = f"{BUCKET}/boards/run1"
    assert main(["leaderboard", "--data-url", BUCKET, "--out", out, "--no-plot",
                 "--storage-option", f"endpoint_url={server.endpoint}"]) == 0
    assert "ResNet50-Saliency" in capsys.readouterr().out
    fs, _ = storage.filesystem(BUCKET, opts(server))
    fs.invalidate_cache()
    assert fs.exists("xai-deel/boards/run1/leaderboard.csv")


FORKED = textwrap.dedent("""
    import hashlib, sys
    sys.path.insert(0, sys.argv[1])
    from conftest import streaming
    from torch.utils.data import DataLoader
    import dina_datasets as dd
    from dina_datasets.hf.batches import TorchBatches

    url = sys.argv[2]
    dd.read_explanation(f"{url}/ResNet50/Saliency/explanations.tfrecord", 0)  # gcsfs used
    ds = streaming(url, "ResNet50-Saliency", num_shards=3).select_columns(
        ["index", "explanation"])
    loader = DataLoader(TorchBatches(ds, 2), batch_size=None, num_workers=2,
                        multiprocessing_context="fork")
    for batch in loader:
        for i, m in zip(batch["index"], batch["explanation"], strict=True):
            print(int(i), hashlib.sha256(m.numpy().tobytes()).hexdigest(), flush=True)
""")


def test_gs_stream_through_forked_dataloader_workers(emulator, tmp_path):
    """Forked workers each open their own gcsfs session (fsspec resets its loop at fork).

    The parent is a fresh interpreter that has used gcsfs, as a user's training script is:
    this test process may hold TensorFlow's threads from other modules, and a fork of it
    can crash the child for reasons that are TensorFlow's, not ours."""
    server, _, maps = emulator
    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    env = {**os.environ, "STORAGE_EMULATOR_HOST": f"127.0.0.1:{server.port}"}
    done = subprocess.run([sys.executable, str(script), str(Path(__file__).parent), BUCKET],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    got = sorted(tuple(line.split()) for line in done.stdout.splitlines())
    assert [int(i) for i, _ in got] == list(range(6))
    want = maps["ResNet50-Saliency"]
    assert all(h == hashlib.sha256(np.ascontiguousarray(want[int(i)]).tobytes()).hexdigest()
               for i, h in got)
