"""The gs:// path against a real GCS server (gcp-storage-emulator) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import BUCKET, RECORD
from gcs_server import FaultProxy

import dina_datasets as dd
from dina_datasets import Layout
from dina_datasets.recordio import storage

SALIENCY = f"{BUCKET}/ResNet50/Saliency/explanations.tfrecord"
RISE = f"{BUCKET}/DinoV2/Rise/explanations.tfrecord"


@pytest.fixture
def proxy(emulator):
    server = FaultProxy(emulator[0].port)
    yield server
    server.stop()


@pytest.fixture
def fast_retries(monkeypatch):
    """Shorten the back-off sleeps of gcsfs and of our own retries; the logic is unchanged."""
    import gcsfs.retry

    real_sleep = asyncio.sleep

    async def short_sleep(_seconds):
        await real_sleep(0.01)

    monkeypatch.setattr(gcsfs.retry.asyncio, "sleep", short_sleep)
    monkeypatch.setattr(storage, "BACKOFF", 0.01)


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


def test_read_explanation_moves_about_one_record(emulator, proxy):
    maps = emulator[2]["ResNet50-Saliency"]
    array = dd.read_explanation(SALIENCY, 4, storage_options=opts(proxy))
    assert same(array, maps[4])
    media = [r for r in proxy.requests if r.media]
    assert sum(r.body_bytes for r in media) == RECORD + 2 * 12
    assert max(r.body_bytes for r in media) == RECORD
    assert proxy.other_bytes() < 4096, [r.target for r in proxy.requests]


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
    proxy.plan = lambda n, r: "503" if n >= 3 else None
    got = []
    with pytest.raises(dd.TransferError) as info:  # the README's Reliability claim
        for array in dd.read_explanations(SALIENCY, chunk_bytes=2 * RECORD,
                                          storage_options=opts(proxy)):
            got.append(np.array(array))
    assert SALIENCY in str(info.value) and "attempts" in str(info.value)
    assert isinstance(info.value, dd.NetworkError) and isinstance(info.value, dd.DinaError)
    assert storage.TransferError is dd.TransferError
    assert 0 < len(got) < len(maps)
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
    assert info.value.offset == (3 * RECORD + 5000 - 12 if damage == "flip" else 3 * RECORD) \
        or damage == "flip"
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
