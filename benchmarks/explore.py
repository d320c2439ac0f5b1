"""The explorer (`dina explore`): its views timed through the API, as a browser gets them.

- first view on demo-size data (2 models x 4 explainers x 4 images, like `make demo`): the
  page's HTML plus the leaderboard the page loads, after the server answers (target < 2 s);
- `/sample` of one model's 14 maps from a local bucket (target < 1 s), and the same through
  the GCS test server (gcp-storage-emulator) behind a loopback proxy that waits 30 ms per
  request (target < 2 s); baselines: `dina show`'s own path for the same 14 maps
  (`figures.load_panels` + `figures.render` of one grid), and for gs:// the same 14 ranged
  reads issued one after another; a view is the API call plus its image files fetched as
  a browser fetches them (6 connections at once; gradio_client alone would fetch them one
  after another);
- a leaderboard filter change over a synthetic scores table of DINA's real size (9 models x
  14 explainers x 5 metrics x 50,000 images = 31.5 M rows, written with pyarrow) (target
  < 1 s); baseline: DuckDB's plain GROUP BY of the same filtered rows (means only).

Medians over `--repeats` runs (default 5). Data is written into a temporary folder.

    python benchmarks/explore.py [--repeats 5] [--images 50000] [--skip-big]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "0")

import numpy as np  # noqa: E402

LATENCY = 0.030
BROWSER_CONNECTIONS = 6
SHARED = ("all", "", "", "softmax")


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def photos(folder: str, n: int) -> str:
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    yy, xx = np.mgrid[0:300, 0:400]
    for i in range(n):
        picture = np.stack([xx + 30 * i, yy, 255 - xx // 2], -1) % 256
        Image.fromarray(picture.astype(np.uint8)).save(os.path.join(folder,
                                                                    f"img_{i:03d}.png"))
    return folder


def app(explorer):
    from gcs_server import free_port
    from gradio_client import Client

    from dina_datasets.explore.app import launch

    port = free_port()
    demo = launch(explorer.open(), port=port, block=False, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    return demo, url, Client(url, verbose=False, download_files=False)


def urls(value) -> list[str]:
    """The file URLs in an API result (images, gallery items)."""
    if isinstance(value, dict):
        found = [value["url"]] if isinstance(value.get("url"), str) else []
        return found + [u for v in value.values() for u in urls(v)]
    if isinstance(value, (list, tuple)):
        return [u for v in value for u in urls(v)]
    return []


def fetched(result, connections: int = BROWSER_CONNECTIONS):
    """The files of a result fetched as a browser fetches a page's images: over
    `connections` connections at once (Chromium opens 6 per host); returns the result."""
    from concurrent.futures import ThreadPoolExecutor

    def get(address: str) -> int:
        with urllib.request.urlopen(address, timeout=30) as response:
            return len(response.read())

    with ThreadPoolExecutor(connections) as pool:
        assert all(pool.map(get, urls(result)))
    return result


def first_view(tmp: str, repeats: int) -> None:
    from conftest import make_bucket

    from dina_datasets.analysis import leaderboard
    from dina_datasets.explore.data import Explorer

    root = os.path.join(tmp, "demo")
    configs = [f"{m}-{e}" for m in ("EfficientNetV2", "ResNet50")
               for e in ("Saliency", "GradientInput", "GradCAM", "GradCAMPP")]
    make_bucket(root, configs, n=4, keys=True)
    images = photos(os.path.join(tmp, "demo_images"), 4)
    started = time.perf_counter()
    explorer = Explorer(root, images=images)  # builds its scores table, as the demo's does
    demo, url, client = app(explorer)
    print(f"app start (scores table built, renderers warm, server up): "
          f"{time.perf_counter() - started:.2f} s")
    model, metric = explorer.choices("model")[0], explorer.choices("metric")[0]

    def view(_):
        urllib.request.urlopen(url, timeout=30).read()
        client.predict(model, metric, *SHARED, api_name="/leaderboard")

    ours, times = timed(view, repeats)
    base, _ = timed(lambda _: leaderboard.from_table(explorer.scores_path, filters=[
        f"model={model}", f"metric={metric}"]), repeats)
    print(f"first view (page + its leaderboard), demo data: median {ours:.3f} s "
          f"(runs {', '.join(f'{t:.2f}' for t in times)}); baseline: the leaderboard "
          f"computed in-process {base:.3f} s; ratio {ours / base:.2f}x; target < 2 s: "
          f"{'met' if ours < 2 else 'NOT met'}")
    demo.close()
    explorer.close()


def sample(tmp: str, repeats: int) -> None:
    from conftest import make_bucket
    from gcs_server import Emulator, FaultProxy

    from dina_datasets import Layout, catalog, storage
    from dina_datasets.explore.data import Explorer
    from dina_datasets.recordio.records import read_record
    from dina_datasets.viz import figures

    root = os.path.join(tmp, "fourteen")
    explainers = [e for e in catalog.EXPLAINERS
                  if catalog.Cell.from_name(f"ResNet50-{e}", allow_missing=True).published]
    configs = [f"ResNet50-{e}" for e in explainers][:14]
    n = max(8, repeats + 2)
    make_bucket(root, configs, n=n, keys=True)
    images = photos(os.path.join(tmp, "images"), n)

    explorer = Explorer(root, images=images)
    demo, _, client = app(explorer)
    client.predict("ResNet50", 0, "", "softmax", api_name="/sample")  # a warm server
    ours, times = timed(lambda i: fetched(client.predict("ResNet50", i + 1, "", "softmax",
                                                         api_name="/sample")), repeats)
    demo.close()
    explorer.close()

    def show(i):
        rows = figures.load_panels(configs, [i + 1], data_url=root, images=images)
        figures.render(rows)

    base, _ = timed(show, repeats)
    print(f"/sample, {len(configs)} maps, local bucket: median {ours:.3f} s (runs "
          f"{', '.join(f'{t:.2f}' for t in times)}); baseline `dina show` of the same "
          f"{len(configs)} maps as one grid {base:.3f} s; ratio {ours / base:.2f}x; "
          f"target < 1 s: {'met' if ours < 1 else 'NOT met'}")

    server = Emulator()
    proxy = FaultProxy(server.port, latency=LATENCY)  # every request waits, as over a link
    try:
        fs, _ = storage.filesystem("gs://xai-deel", {"endpoint_url": server.endpoint})
        fs.put(root + "/", "xai-deel/", recursive=True)
        options = {"endpoint_url": proxy.endpoint}
        explorer = Explorer("gs://xai-deel", images=images, storage_options=options)
        demo, _, client = app(explorer)
        client.predict("ResNet50", 0, "", "softmax", api_name="/sample")
        before = len(proxy.requests)
        ours, times = timed(lambda i: fetched(client.predict(
            "ResNet50", i + 1, "", "softmax", api_name="/sample")), repeats)
        per_view = (len(proxy.requests) - before) / repeats
        demo.close()
        explorer.close()
        layout = Layout("gs://xai-deel")

        def serial(i):
            for config in configs:
                model, explainer = config.split("-")
                read_record(layout.explanations(model, explainer), i + 1,
                            storage_options=options, tensors=frozenset({"explanations"}))

        base, _ = timed(serial, repeats)
        print(f"/sample, {len(configs)} maps, GCS test server + {LATENCY * 1000:.0f} ms per "
              f"request: median {ours:.3f} s (runs {', '.join(f'{t:.2f}' for t in times)}; "
              f"{per_view:.0f} requests per view); baseline: the same {len(configs)} records "
              f"read one after another, no drawing, {base:.3f} s; ratio {ours / base:.2f}x; "
              f"target < 2 s: {'met' if ours < 2 else 'NOT met'}")
    finally:
        proxy.stop()
        server.stop()


def write_big(path: str, images: int) -> int:
    """A scores table of 9 models x 14 explainers x 5 metrics x `images` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dina_datasets import catalog
    from dina_datasets.analysis.scores import SCHEMA

    rng = np.random.default_rng(0)
    metrics = ["Insertion", "Deletion", "MuFidelity", "Sparseness", "Complexity"]
    index = np.arange(images, dtype=np.int64)
    image_id = pa.array([f"ILSVRC2012_val_{i + 1:08d}" for i in range(images)])
    label = rng.integers(0, 1000, images)
    rows = 0
    with pq.ParquetWriter(path, SCHEMA, compression="zstd",
                          use_dictionary=["model", "explainer", "metric", "activation",
                                          "image_id"]) as writer:
        for model in catalog.MODELS:
            prediction = np.where(rng.random(images) < 0.8, label, rng.integers(0, 1000, images))
            for explainer in list(catalog.EXPLAINERS)[:14]:
                for metric in metrics:
                    score = rng.random(images) * (1 + 0.1 * len(explainer) / 10)
                    n = images
                    writer.write_table(pa.table({
                        "model": pa.array([model] * n), "explainer": pa.array([explainer] * n),
                        "metric": pa.array([metric] * n),
                        "activation": pa.array(["softmax"] * n), "index": index,
                        "image_id": image_id, "label": label, "prediction": prediction,
                        "score": score, "settings": pa.array(["published"] * n)},
                        schema=SCHEMA))
                    rows += n
    return rows


def big_leaderboard(tmp: str, repeats: int, images: int) -> None:
    import duckdb

    from dina_datasets.explore.data import Explorer

    path = os.path.join(tmp, "big.parquet")
    started = time.perf_counter()
    rows = write_big(path, images)
    print(f"synthetic scores table: {rows:,} rows, {os.path.getsize(path) / 1e6:.0f} MB, "
          f"written in {time.perf_counter() - started:.1f} s")
    explorer = Explorer(os.path.join(tmp, "nowhere"), scores=path)
    demo, _, client = app(explorer)
    changes = [("all", "", "", "softmax"), ("correct", "", "", "softmax"),
               ("wrong", "", "", "softmax"), ("all", "1,2,3,4,5,6,7,8,9,10", "", "softmax"),
               ("correct", "", "", "softmax")]
    results = []
    for model, metric in (("ResNet50", "Insertion"), ("DinoV2", "Deletion")):
        ours, times = timed(lambda i, m=model, x=metric: client.predict(
            m, x, *changes[i % len(changes)], api_name="/leaderboard"), repeats)
        results.append((model, metric, ours, times))
    demo.close()
    explorer.close()
    con = duckdb.connect()
    base, _ = timed(lambda _: con.sql(
        f"SELECT explainer, avg(score), count(score) FROM '{path}' WHERE model = 'ResNet50' "
        "AND metric = 'Insertion' AND label = prediction GROUP BY explainer").fetchall(),
        repeats)
    for model, metric, ours, times in results:
        print(f"leaderboard filter change, {model} {metric}, {rows:,} rows: median "
              f"{ours:.3f} s (runs {', '.join(f'{t:.2f}' for t in times)}); baseline DuckDB "
              f"GROUP BY of the same rows (means only) {base:.3f} s; ratio {ours / base:.1f}x; "
              f"target < 1 s: {'met' if ours < 1 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    print(f"CPUs: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="dina-bench-explore-") as tmp:
        first_view(tmp, args.repeats)
        sample(tmp, args.repeats)
        if not args.skip_big:
            big_leaderboard(tmp, args.repeats, args.images)


if __name__ == "__main__":
    main()
