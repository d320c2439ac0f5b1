"""Reading over a slow link: a loopback proxy in front of the GCS test server adds a fixed
latency to every request and caps every connection's bandwidth (both printed).

The GCS server (gcp-storage-emulator) and the proxy run in a child process, so that their
work does not share the reader's interpreter. One explanations file of (224,224,1) records
(no sidecar index, as in the published bucket) is uploaded, then, in the same run:
(a) our stream (`read_explanations`), for windows of 1..16 ranged requests in flight, and the
    builder's chunk tables (`Source.tables`) at the default window;
(b) gcsfs `cat` of the same file: one request, one stream;
(c) the link's ceiling for (a): connections (the window) x the per-connection cap; and, to
    tell the link from this machine's CPU, the same requests issued by gcsfs alone
    (`cat_ranges`, the window at a time, no checks);
and for 256 scattered records:
(d) ours batched (`read_explanations_at`);
(e) 256 sequential `read_explanation` calls;
plus the bytes the proxy sent for (d) against the records' size.
Targets: a >= 0.7 c at the default window, a >= 4 b, d >= 8 e, bytes <= 1.1x.

    python benchmarks/remote.py [--records 3000] [--latency-ms 30] [--cap-mb 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

CONFIG = "DinoV2-Rise"
SLICE = 256 << 10  # bytes written between two pacing checks
UPSTREAM = 4  # requests forwarded to the (single-threaded) emulator at a time


# ---- the child process: the GCS server and the link proxy ----------------------------------

def serve(pipe, latency: float, cap: float, stats) -> None:
    import logging

    from gcs_server import HOST, Emulator, free_port

    logging.disable(logging.CRITICAL)  # the emulator logs every 404 (the index looked for)

    emulator = Emulator()
    port = free_port()

    async def main() -> None:
        upstream = asyncio.Semaphore(UPSTREAM)
        active = [0]

        async def fetch(request: bytes, got: asyncio.Queue) -> None:
            """The upstream response, as fast as it comes, into `got` (the emulator serves one
            request at a time: it must not wait for the paced client); None at the end."""
            async with upstream:
                reader, writer = await asyncio.open_connection(HOST, emulator.port,
                                                               limit=4 << 20)
                writer.write(request)
                while chunk := await reader.read(4 << 20):
                    got.put_nowait(chunk)
                writer.close()
            got.put_nowait(None)

        async def handle(reader, writer) -> None:
            loop = asyncio.get_running_loop()
            try:
                while True:
                    try:
                        head = await reader.readuntil(b"\r\n\r\n")
                    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                        return
                    arrival = loop.time()
                    lines = head.decode("latin-1").split("\r\n")[:-2]
                    length = next((int(v.split(":", 1)[1]) for v in lines
                                   if v.lower().startswith("content-length:")), 0)
                    body = await reader.readexactly(length) if length else b""
                    kept = [v for v in lines if not v.lower().startswith("connection:")]
                    got: asyncio.Queue = asyncio.Queue()
                    task = asyncio.create_task(fetch(("\r\n".join(kept) + "\r\nConnection: "
                                                      "close\r\n\r\n").encode("latin-1") + body,
                                                     got))
                    first = b""
                    while b"\r\n\r\n" not in first:
                        first += await got.get()
                    split = first.index(b"\r\n\r\n")
                    status, *headers = first[:split].decode("latin-1").split("\r\n")
                    out = "\r\n".join([status.replace("HTTP/1.0", "HTTP/1.1", 1)] + [
                        v for v in headers if not v.lower().startswith("connection:")])
                    stats["requests"] += 1
                    if "alt=media" in lines[0]:  # counted now: the reader may be done first
                        stats["media_bytes"] += next(int(v.split(":", 1)[1]) for v in headers
                                                     if v.lower().startswith("content-length:"))
                    await asyncio.sleep(max(0.0, arrival + latency - loop.time()))
                    writer.write(out.encode("latin-1") + b"\r\n\r\n")
                    active[0] += 1
                    stats["most"] = max(stats["most"], active[0])
                    start, sent, chunk = loop.time(), 0, first[split + 4:]
                    try:
                        while chunk is not None:
                            view = memoryview(chunk)
                            for at in range(0, len(view), SLICE):  # paced
                                piece = view[at:at + SLICE]
                                writer.write(piece)
                                sent += len(piece)
                                await writer.drain()
                                wait = start + sent / cap - loop.time()
                                if wait > 0:
                                    await asyncio.sleep(wait)
                            chunk = await got.get()
                    finally:
                        active[0] -= 1
                    await task
            except (ConnectionError, asyncio.CancelledError):
                return
            finally:
                writer.close()

        server = await asyncio.start_server(handle, HOST, port, limit=1 << 20)
        pipe.send((emulator.port, port))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, pipe.recv)  # until the parent says stop
        server.close()

    asyncio.run(main())
    emulator.stop()


# ---- the measurements --------------------------------------------------------------------

def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--cap-mb", type=float, default=40.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scattered", type=int, default=256)
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    args = parser.parse_args()
    latency, cap = args.latency_ms / 1000, args.cap_mb * 1e6

    ctx = multiprocessing.get_context("spawn")
    stats = ctx.Manager().dict(most=0, requests=0, media_bytes=0)
    here, there = ctx.Pipe()
    child = ctx.Process(target=serve, args=(there, latency, cap, stats), daemon=True)
    child.start()
    emulator_port, proxy_port = here.recv()

    from _bucket import bucket

    import dina_datasets as dd
    from dina_datasets import catalog, storage
    from dina_datasets.hf.source import Source
    from dina_datasets.recordio import planner

    _, local, size = bucket(CONFIG, args.records)
    direct = {"endpoint_url": f"http://127.0.0.1:{emulator_port}"}
    link = {"endpoint_url": f"http://127.0.0.1:{proxy_port}"}
    url = "gs://xai-deel/DinoV2/Rise/explanations.tfrecord"
    fs, path = storage.filesystem(url, direct)
    start = time.perf_counter()
    fs.put_file(local, path)  # the file alone: no sidecar index, as in the published bucket
    print(f"uploaded {size / 1e6:.0f} MB ({args.records} records of "
          f"{catalog.Cell.from_name(CONFIG).shape}) in {time.perf_counter() - start:.1f} s")
    print(f"link: {args.latency_ms:.0f} ms per request, {args.cap_mb:.0f} MB/s per connection; "
          f"medians of {args.repeats} runs")
    fs_link, _ = storage.filesystem(url, link)

    def stream(window: int) -> int:
        return sum(m.nbytes for m in dd.read_explanations(url, window=window,
                                                          storage_options=link))

    info = dd.inspect(url, direct)
    spans = [info.span(a, b) for a, b in planner.chunks(info, 0, info.num_records,
                                                        planner.REQUEST_BYTES, multiple=1)]

    def raw(window: int) -> int:
        """The same requests, gcsfs alone (`cat_ranges`, `window` at a time): no CRC, no
        decoding, no threads: what this machine moves through the link with that window."""
        parts = fs_link.cat_ranges([path] * len(spans), [a for a, _ in spans],
                                   [b for _, b in spans], batch_size=window)
        return sum(map(len, parts))

    rates = {}
    for window in args.windows:
        seconds, _ = timed(lambda w=window: stream(w), args.repeats)
        rates[window] = size / seconds / 1e6
        ceiling = window * args.cap_mb
        mark = "  <- default" if window == planner.WINDOW else ""
        line = (f"  (a) stream, window {window:2d}: {rates[window]:6.1f} MB/s   (c) ceiling "
                f"{ceiling:4.0f} MB/s   a/c = {rates[window] / ceiling:4.2f}")
        if window in (planner.WINDOW, max(args.windows)):
            seconds, got = timed(lambda w=window: raw(w), args.repeats)
            assert got == size
            line += (f"   gcsfs cat_ranges alone {size / seconds / 1e6:6.1f} MB/s: a = "
                     f"{rates[window] * seconds / size * 1e6:4.2f} of it")
        print(line + mark)
    source = Source.open(catalog.Cell.from_name(CONFIG), "gs://xai-deel", storage_options=link)
    seconds, _ = timed(lambda: sum(t.num_rows for t in source.tables()), args.repeats)
    print(f"  builder tables (Source.tables), default window: {size / seconds / 1e6:7.1f} MB/s")
    seconds, data = timed(lambda: fs_link.cat_file(path), args.repeats)
    assert len(data) == size
    one = size / seconds / 1e6
    print(f"  (b) gcsfs cat, one request: {one:7.1f} MB/s")
    default = rates.get(planner.WINDOW)
    if default:
        print(f"  default window {planner.WINDOW}: a/c = "
              f"{default / (planner.WINDOW * args.cap_mb):.2f} (target >= 0.7), "
              f"a/b = {default / one:.1f}x (target >= 4)")

    rng = np.random.default_rng(0)
    picks = rng.choice(info.num_records, args.scattered, replace=False).tolist()
    before = stats["media_bytes"]
    batched, maps = timed(lambda: dd.read_explanations_at(url, picks, storage_options=link), 1)
    moved = stats["media_bytes"] - before
    wanted = len(picks) * info.record_size
    assert [m.tobytes() for m in maps[:3]] == [
        dd.read_explanation(local, i).tobytes() for i in picks[:3]]
    runs = len(planner.runs(info, np.unique(picks)))
    sequential, _ = timed(lambda: [dd.read_explanation(url, i, storage_options=link)
                                   for i in picks], 1)
    print(f"  {len(picks)} scattered records ({runs} runs of neighbours):")
    print(f"  (d) read_explanations_at: {batched:6.2f} s   (e) {len(picks)} x read_explanation: "
          f"{sequential:6.2f} s   e/d = {sequential / batched:.1f}x (target >= 8)")
    print(f"  bytes moved for (d): {moved / 1e6:.2f} MB for {wanted / 1e6:.2f} MB of records "
          f"= {moved / wanted:.3f}x (target <= 1.1; header samples of inspect included)")
    print(f"  most transfers at once through the proxy: {stats['most']}")
    here.send("stop")
    child.join(timeout=10)


if __name__ == "__main__":
    main()
