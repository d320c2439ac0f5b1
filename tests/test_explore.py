"""The explorer's API (`dina explore`): each endpoint called with gradio_client against the
app started here on a free loopback port, over a tiny bucket and its scores table; maps
compared pixel by pixel with `dina show`'s picture of the same config and index."""

from __future__ import annotations

import io
import json
import os
import pathlib

import numpy as np
import pytest
from conftest import make_bucket
from gcs_server import free_port
from gradio_client import Client
from PIL import Image

from dina_datasets import Layout, stats
from dina_datasets.analysis import leaderboard
from dina_datasets.analysis import scores as score_table
from dina_datasets.cli import main

CONFIGS = ["ResNet50-Saliency", "ResNet50-Rise", "ResNet50-GradCAM", "DinoV2-Rise"]
N = 6
SHARED = ("all", "", "", "softmax")  # predictions, classes, image ids, activation


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(root, images, scores path, client, explorer) of one app for the whole module."""
    from dina_datasets.explore.app import launch
    from dina_datasets.explore.data import Explorer

    tmp = tmp_path_factory.mktemp("explore")
    root, images = str(tmp / "bucket"), tmp / "images"
    make_bucket(root, CONFIGS, n=N, keys=True)
    images.mkdir()
    rng = np.random.default_rng(5)
    for i in range(N):  # image ids of make_bucket(keys=True): img_000 ...
        Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(
            images / f"img_{i:03d}.png")
    path = str(tmp / "scores.parquet")
    score_table.build(root, path)
    explorer = Explorer(root, scores=path, images=str(images), render_workers=0,
                        cache_dir=str(tmp / "cache")).open()
    assert explorer.problem is None
    port = free_port()
    demo = launch(explorer, port=port, block=False, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    yield root, str(images), path, client, explorer
    demo.close()
    explorer.close()


def pixels(path_or_bytes) -> np.ndarray:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as img:
        return np.asarray(img.convert("RGBA"))


def shown(tmp_path, root: str, images: str, config: str, index: int) -> np.ndarray:
    """The picture `dina show CONFIG --index I` draws."""
    out = str(tmp_path / f"{config}-{index}.png")
    assert main(["show", config, "--index", str(index), "--data-url", root, "--images",
                 images, "--out", out]) == 0
    return pixels(out)


def score_files(root: str, config: str) -> dict[str, list]:
    model, explainer = config.split("-")
    folder = os.path.dirname(Layout(root).explanations(model, explainer))
    return {name.removesuffix("_scores.json"): json.load(open(os.path.join(folder, name)))
            for name in os.listdir(folder) if name.endswith("_scores.json")}


def table(result: dict) -> list[dict]:
    return [dict(zip(result["headers"], row, strict=True)) for row in result["data"]]


def test_leaderboard_is_the_statistics_table(site):
    root, _, path, client, _ = site
    got = table(client.predict("ResNet50", "Insertion", *SHARED, api_name="/leaderboard"))
    board = leaderboard.from_table(path, filters=["model=ResNet50", "metric=Insertion"])
    want = board.summary
    assert [r["explainer"] for r in got] == list(want["explainer"])
    assert [r["rank"] for r in got] == list(want["rank"])
    assert [r["marker"] for r in got] == list(want["marker"])
    assert [r["n"] for r in got] == [N] * 3
    for row in got:  # means straight from the score files
        expected = np.mean(score_files(root, f"ResNet50-{row['explainer']}")["Insertion"])
        assert row["mean"] == pytest.approx(expected, abs=1e-6)
        assert row["ci_low"] < row["mean"] < row["ci_high"]
    ranked = sorted(got, key=lambda r: -r["mean"])  # Insertion: higher is better
    assert [r["rank"] for r in ranked] == [1, 2, 3]


def test_leaderboard_filters_by_class_and_prediction(site):
    _, _, _, client, _ = site
    # make_bucket(keys=True): label i % 7, prediction 3i % 7: correct only for i = 0
    got = table(client.predict("ResNet50", "all", "correct", "", "", "softmax",
                               api_name="/leaderboard"))
    assert got and {r["n"] for r in got} == {1}
    got = table(client.predict("ResNet50", "Deletion", "all", "2,3", "", "softmax",
                               api_name="/leaderboard"))
    assert {r["n"] for r in got} == {2}
    assert {r["metric"] for r in got} == {"Deletion"}


DOCS = os.path.join(os.path.dirname(__file__), "..", "docs", "explorer.md")


def test_api_takes_defaults_and_names_its_outputs_as_the_docs_say(site):
    """Every parameter is optional, every output named; the endpoints, parameters and
    returns are those of docs/explorer.md's table, and its example runs as written."""
    import re

    client = site[3]
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    text = pathlib.Path(DOCS).read_text()
    rows = re.findall(r"^\| `(/\w+)` \| (.*?) \| (.*?) \|$", text, re.M)
    documented = {endpoint: (re.findall(r"`([^`]+)`", params),
                             re.findall(r"`([^`]+)`", returns))
                  for endpoint, params, returns in rows}
    assert set(documented) == set(api)
    for endpoint, (params, returns) in documented.items():
        got = api[endpoint]
        assert [p["parameter_name"] for p in got["parameters"]] == params, endpoint
        assert [p["parameter_name"] for p in got["parameters"]
                if not p["parameter_has_default"]] == [], endpoint
        assert [r["label"] for r in got["returns"]] == returns, endpoint
    code = next(c for c in re.findall(r"```python\n(.*?)```", text, re.S)
                if "gradio_client" in c)
    example = code.replace("http://127.0.0.1:7860/", client.src)
    assert "api_name=\"/sample\"" in example
    scope: dict = {}
    exec(example, scope)  # the documented example, as written
    assert "record **0**" in scope["keys"] and len(scope["maps"]) == 3
    assert {r["explainer"] for r in table(scope["board"])} == {"Saliency", "Rise", "GradCAM"}
    assert {r["n"] for r in table(scope["wrong"])} == {N - 1}  # only image 0 is correct


def test_tables_are_rounded_on_the_page_and_whole_in_the_api(site):
    """The page shows 4 significant digits (not 0.0010000000474974513); the values the API
    returns stay whole."""
    client = site[3]
    for result in (client.predict("ResNet50", 2, api_name="/sample")[3],
                   client.predict("ResNet50", "Insertion", api_name="/leaderboard")):
        headers, data = result["headers"], result["data"]
        display = result["metadata"]["display_value"]
        checked = 0
        for row, texts in zip(data, display, strict=True):
            for name, value, text in zip(headers, row, texts, strict=True):
                if isinstance(value, float) and name not in ("rank", "n", "n_undefined"):
                    assert text == f"{value:.4g}", (name, value, text)
                    checked += value != float(text)  # a float32 score seen as float64
        assert checked, "no value needed rounding: the test proves nothing"


def test_sample_of_a_model_draws_each_explainer_as_dina_show(site, tmp_path):
    root, images, _, client, _ = site
    image, keys, maps, scores = client.predict("ResNet50", 2, "", "softmax",
                                               api_name="/sample")
    configs = ["ResNet50-Saliency", "ResNet50-GradCAM", "ResNet50-Rise"]
    assert [m["caption"].split(" · ")[0] for m in maps] == configs
    for config, item in zip(configs, maps, strict=True):
        assert np.array_equal(pixels(item["image"]), shown(tmp_path, root, images, config, 2))
        files = score_files(root, config)
        assert f"Insertion {files['Insertion'][2]:.3g}" in item["caption"]
        assert f"Deletion {files['Deletion'][2]:.3g}" in item["caption"]
        row = next(r for r in table(scores) if r["config"] == config)
        assert row["Insertion"] == pytest.approx(files["Insertion"][2])
        assert row["RandomLogitMetric"] == pytest.approx(files["RandomLogitMetric"][2])
    assert "image id `img_002`" in keys and "label **2**" in keys
    assert "prediction **6** (wrong)" in keys
    from dina_datasets.viz.figures import display_image

    assert np.array_equal(pixels(image)[..., :3],
                          display_image(os.path.join(images, "img_002.png"), 224))


def test_sample_of_an_explainer_goes_across_models(site, tmp_path):
    root, images, _, client, _ = site
    _, keys, maps, _ = client.predict("Rise", 0, "img_004", "softmax", api_name="/sample")
    assert "record **4**" in keys  # the image id chose the record
    assert [m["caption"].split(" · ")[0] for m in maps] == ["DinoV2-Rise", "ResNet50-Rise"]
    for item, config in zip(maps, ["DinoV2-Rise", "ResNet50-Rise"], strict=True):
        assert np.array_equal(pixels(item["image"]), shown(tmp_path, root, images, config, 4))


def test_compare_pairs_images_and_ranks_disagreement(site):
    from scipy.stats import rankdata

    root, _, _, client, _ = site
    plot, result = client.predict("ResNet50-Saliency", "DinoV2-Rise", "Insertion", *SHARED,
                                  api_name="/compare")
    got = table(result)
    a = np.array(score_files(root, "ResNet50-Saliency")["Insertion"])
    b = np.array(score_files(root, "DinoV2-Rise")["Insertion"])
    pa, pb = ((rankdata(x, method="min") - 1) / (N - 1) for x in (a, b))
    expected = sorted(range(N), key=lambda i: (-abs(pa[i] - pb[i]), i))
    assert [r["index"] for r in got] == expected
    for r in got:
        assert r["score_a"] == pytest.approx(a[r["index"]])
        assert r["score_b"] == pytest.approx(b[r["index"]])
        assert r["image_id"] == f"img_{r['index']:03d}"
    assert pixels(plot).shape[0] > 200  # a drawn scatter, not an empty image
    wrong = table(client.predict("ResNet50-Saliency", "DinoV2-Rise", "Insertion", "wrong", "",
                                 "", "softmax", api_name="/compare")[1])
    assert sorted(r["index"] for r in wrong) == [1, 2, 3, 4, 5]


def test_agreement_and_stability_come_from_the_statistics(site):
    _, _, path, client, _ = site
    plot, result = client.predict("metrics", *SHARED, api_name="/agreement")
    want = stats.metric_agreement(stats.summary(path, ci="normal"))
    got = table(result)
    assert [(r["model"], r["metric_a"], r["metric_b"]) for r in got] == list(
        want[["model", "metric_a", "metric_b"]].itertuples(index=False, name=None))
    assert pixels(plot).shape[0] > 200
    plot, result = client.predict("ResNet50", "Insertion", *SHARED, api_name="/stability")
    got = table(result)
    assert got and {r["model"] for r in got} == {"ResNet50"} and got[-1]["n"] == N
    assert all(0 <= r["share_equal"] <= 1 for r in got)


@pytest.mark.parametrize(("endpoint", "args", "words"), [
    ("/sample", ("ResNet50", 99, "", "softmax"), "index 99 is outside"),
    ("/sample", ("ResNet50", -1, "", "softmax"), "whole number >= 0"),
    ("/sample", ("Resnet5O", 1, "", "softmax"), "neither a model nor an explainer"),
    ("/sample", ("ResNet50", 0, "nope_id", "softmax"), "no image 'nope_id'"),
    ("/compare", ("ResNet50-Rize", "DinoV2-Rise", "Insertion", *SHARED), "did you mean"),
    ("/compare", ("MaxVIT-Rise", "DinoV2-Rise", "Insertion", *SHARED), "not in this data"),
    ("/leaderboard", ("ResNet50", "Fidelity", *SHARED), "unknown metric 'Fidelity'"),
    ("/leaderboard", ("ResNet50", "all", "all", "cat", "", "softmax"), "takes integers"),
])
def test_bad_input_is_a_message_and_the_app_lives_on(site, endpoint, args, words):
    client = site[3]
    with pytest.raises(Exception, match=words) as info:
        client.predict(*args, api_name=endpoint)
    assert "Traceback" not in str(info.value)
    assert client.predict("ResNet50", 0, "", "softmax", api_name="/sample")[2]


def test_a_folder_without_the_layout_or_scores_is_named_in_the_page(tmp_path):
    from dina_datasets.explore.app import build
    from dina_datasets.explore.data import Explorer

    empty = Explorer(str(tmp_path), render_workers=0, cache_dir=str(tmp_path / "c")).open()
    assert "no score files under" in empty.problem
    missing = Explorer(str(tmp_path), scores=str(tmp_path / "none.parquet"),
                       render_workers=0, cache_dir=str(tmp_path / "d")).open()
    assert "no scores table at" in missing.problem
    demo = build(missing)  # the page still builds, with the problem at its top
    texts = [getattr(block, "value", "") for block in demo.blocks.values()]
    assert any("no scores table at" in str(t) for t in texts)
    with pytest.raises(Exception, match="no scores table at"):
        missing.sample("ResNet50", 0)


def test_cli_rejects_a_bad_port(capsys):
    assert main(["explore", "--port", "0", "--data-url", "/nowhere"]) == 2
    assert "--port must be between" in capsys.readouterr().err


def test_cli_says_the_port_is_taken_before_building_anything(tmp_path, capsys, monkeypatch):
    # the scores table (minutes on the full grid) used to be built first, then Gradio said
    # "Cannot find empty port ... setting the GRADIO_SERVER_PORT environment variable"
    import socket

    root = str(tmp_path / "bucket")
    make_bucket(root, ["ResNet50-Rise"], n=2)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["explore", "--port", str(port), "--data-url", root]) == 2
    captured = capsys.readouterr()
    assert f"cannot listen on 127.0.0.1:{port}" in captured.err
    assert "pass another --port" in captured.err
    assert "building the scores table" not in captured.out
    assert os.listdir(tmp_path / "tmp") == []
    assert main(["explore", "--host", "no-such-host.invalid", "--data-url", root]) == 2
    assert "--host 'no-such-host.invalid' is not an address" in capsys.readouterr().err


def test_activation_filter_shows_the_rows_of_that_activation(site, tmp_path):
    """Choosing logits gives the logits rows (the default softmax filter is replaced, not
    added), and a sample's captions hold the logits scores (map-only metrics: softmax's)."""
    import pandas as pd

    from dina_datasets.explore.controls import filters
    from dina_datasets.explore.data import Explorer

    root, images, path, _, _ = site
    frame = pd.read_parquet(path)
    logits = frame[frame["metric"] == "Deletion"].assign(activation="logits")
    logits["score"] = logits["score"] + 100.0
    both = str(tmp_path / "both.parquet")
    pd.concat([frame, logits]).to_parquet(both)
    explorer = Explorer(root, scores=both, images=images, render_workers=0,
                        cache_dir=str(tmp_path / "cache")).open()
    try:
        board = explorer.leaderboard("ResNet50", "Deletion", filters(activation="logits"))
        want = logits[logits["model"] == "ResNet50"].groupby("explainer")["score"].mean()
        got = board.set_index("explainer")["mean"]
        assert len(got) == len(want)
        np.testing.assert_allclose(got[want.index], want, rtol=1e-9)
        sample = explorer.sample("ResNet50", 0, activation="logits")
        row = logits[(logits["model"] == "ResNet50") & (logits["index"] == 0)]
        assert len(sample.maps) == 3
        for (_, caption), config in zip(sample.maps, sample.scores["config"], strict=True):
            explainer = config.split("-", 1)[1]
            value = float(row[row["explainer"] == explainer]["score"].iloc[0])
            assert f"Deletion {value:.3g}" in caption, caption
            assert "Sparseness" in caption, caption
    finally:
        explorer.close()


def test_a_numerically_zero_map_says_so_in_its_caption(tmp_path):
    from dina_datasets import write_explanations
    from dina_datasets.explore.data import Explorer

    root = str(tmp_path / "bucket")
    make_bucket(root, ["ResNet50-Saliency", "ResNet50-Rise"], n=2, keys=True)
    tiny = np.random.default_rng(0).random((2, 224, 224, 1)).astype(np.float32) * 1e-16
    write_explanations(Layout(root).explanations("ResNet50", "Saliency"), tiny,
                       image_id=["img_000", "img_001"])
    explorer = Explorer(root, render_workers=0, cache_dir=str(tmp_path / "cache")).open()
    try:
        captions = dict(caption.split(" · ", 1) for _, caption in
                        explorer.sample("ResNet50", 1).maps)
    finally:
        explorer.close()
    assert captions["ResNet50-Saliency"].endswith(": numerically zero")
    assert "max |a| = 1e\N{MINUS SIGN}16" in captions["ResNet50-Saliency"]
    assert "numerically zero" not in captions["ResNet50-Rise"]


def _handler(demo, api_name: str):
    return next(f.fn for f in demo.fns.values() if f.api_name == api_name)


def test_a_contributed_model_works_registered_or_not_and_messages_show_quotes(tmp_path):
    """The planted model's cells, in the data: read as the data hold them, whether this
    process registered the model (`dina explore --registry FILE`) or not; no message shows
    an HTML entity for a quote."""
    from dina_datasets import catalog
    from dina_datasets.demo import planted
    from dina_datasets.explore.app import build, markdown_text
    from dina_datasets.explore.data import Explorer

    root, path = str(tmp_path / "bucket"), str(tmp_path / "scores.parquet")
    planted.register()
    try:
        make_bucket(root, ["Planted-Saliency", "Planted-RandomExp", "ResNet50-Saliency"], n=4,
                    keys=True, size=32)
        score_table.build(root, path)
        for registered in (False, True):
            if not registered:
                catalog.unregister("Planted")  # `dina explore` without --registry
            else:
                planted.register()
            explorer = Explorer(root, scores=path, render_workers=0,
                                cache_dir=str(tmp_path / f"cache{registered}")).open()
            try:
                assert explorer.problem is None
                _, keys, maps, _ = _handler(build(explorer), "sample")("Saliency", 1, "",
                                                                       "softmax")
                assert [caption.split(" · ")[0] for _, caption in maps] == [
                    "ResNet50-Saliency", "Planted-Saliency"], registered
                assert "&#" not in keys and "record **1**" in keys
                frame, _ = explorer.compare("planted-saliency", "Planted-RandomExp",
                                            "Insertion")
                assert sorted(frame["index"]) == [0, 1, 2, 3]
                board = explorer.leaderboard("Planted", "Insertion")
                assert set(board["explainer"]) == {"Saliency", "RandomExp"}
            finally:
                explorer.close()
    finally:
        if "Planted" in catalog.MODELS:
            catalog.unregister("Planted")
    note = "unknown config 'Planted-Saliency' <b>"
    assert markdown_text(note) == "unknown config 'Planted-Saliency' \\<b\\>"


def test_the_page_opens_on_the_model_and_metric_that_separate_explainers_most(tmp_path):
    """A 4-image exact tie first in catalog order, a wide spread on 4 images, a narrow one
    on 64: the page opens on ResNet50 / Deletion (64 images, widest spread there)."""
    import pandas as pd

    from dina_datasets.explore.app import build
    from dina_datasets.explore.data import Explorer
    from dina_datasets.explore.opening import separations

    root = str(tmp_path / "bucket")
    make_bucket(root, ["ResNet50-Saliency", "ResNet50-Rise"], n=2, keys=True)
    built = str(tmp_path / "built.parquet")
    score_table.build(root, built)
    template = pd.read_parquet(built).iloc[0]
    rng = np.random.default_rng(0)
    rows = []

    def cell(model: str, metric: str, means: dict[str, float], n: int, sd: float) -> None:
        for explainer, mean in means.items():
            for i, score in enumerate(mean + sd * rng.standard_normal(n)):
                rows.append({**template.to_dict(), "model": model, "explainer": explainer,
                             "metric": metric, "index": i, "image_id": f"img_{i:03d}",
                             "score": float(score)})

    tie = {"Saliency": 0.5, "Rise": 0.5}
    for metric in ("Insertion", "Deletion", "MuFidelity"):  # catalog order's first: a tie
        cell("DinoV2", metric, tie, 4, 0.0)
    cell("DinoV2", "Sparseness", {"Saliency": 0.2, "Rise": 0.5}, 4, 0.05)  # 4 images
    cell("ResNet50", "Insertion", {"Saliency": 0.50, "Rise": 0.51}, 64, 0.05)  # narrow
    cell("ResNet50", "Deletion", {"Saliency": 0.2, "Rise": 0.5}, 64, 0.05)  # the answer
    cell("ResNet50", "Complexity", {"Saliency": 0.2}, 64, 0.05)  # one explainer: no ranking
    path = str(tmp_path / "scores.parquet")
    pd.DataFrame(rows).astype(pd.read_parquet(built).dtypes.to_dict()).to_parquet(path)

    explorer = Explorer(root, scores=path, render_workers=0,
                        cache_dir=str(tmp_path / "cache")).open()
    try:
        assert explorer.choices("model")[0] == "DinoV2"  # catalog order would open there
        values = {b.elem_id: b.value for b in build(explorer).blocks.values()
                  if getattr(b, "elem_id", None) in ("lb-model", "s-name")}
        assert values == {"lb-model": "ResNet50", "s-name": "ResNet50"}
        assert explorer.start == ("ResNet50", "Deletion")
        table = separations(explorer.table())
        assert list(table[["model", "metric"]].itertuples(index=False, name=None))[:2] == [
            ("ResNet50", "Deletion"), ("DinoV2", "Sparseness")]
        assert table.set_index(["model", "metric"]).loc[("DinoV2", "Insertion"),
                                                        "separation"] == 0
        assert not ((table["model"] == "ResNet50") & (table["metric"] == "Complexity")).any()
    finally:
        explorer.close()


def test_compare_pairs_by_image_id_and_refuses_positions_across_models(tmp_path):
    """Compare joins two configs on image_id (a cell written in another record order pairs
    each image with itself), on the record index only within one model's keyless cells,
    and refuses keyless cells of two models (their orders are not known to agree)."""
    import pandas as pd

    from dina_datasets.errors import AlignmentError
    from dina_datasets.explore.data import Explorer

    root = str(tmp_path / "bucket")
    configs = ["ResNet50-Saliency", "ResNet50-Rise", "DinoV2-Rise"]
    make_bucket(root, configs, n=6)
    rng = np.random.default_rng(0)
    truth = {c: dict(zip([f"img_{i}" for i in range(6)], rng.normal(size=6), strict=True))
             for c in configs}
    order = {"ResNet50-Saliency": [0, 1, 2, 3, 4, 5], "ResNet50-Rise": [3, 5, 0, 4, 1, 2],
             "DinoV2-Rise": [0, 1, 2, 3, 4, 5]}

    def table(name: str, ids: bool) -> str:
        rows = [{"model": c.split("-")[0], "explainer": c.split("-")[1], "metric": "Insertion",
                 "activation": "softmax", "index": position,
                 "image_id": f"img_{image}" if ids else None, "label": -1, "prediction": -1,
                 "score": truth[c][f"img_{image}"]}
                for c in configs for position, image in enumerate(order[c])]
        path = str(tmp_path / name)
        pd.DataFrame(rows).to_parquet(path)
        return path

    explorer = Explorer(root, scores=table("ids.parquet", True), render_workers=0,
                        cache_dir=str(tmp_path / "cache1")).open()
    try:
        frame, _ = explorer.compare("ResNet50-Saliency", "ResNet50-Rise", "Insertion")
        assert len(frame) == 6
        for row in frame.itertuples():
            assert row.score_a == pytest.approx(truth["ResNet50-Saliency"][row.image_id])
            assert row.score_b == pytest.approx(truth["ResNet50-Rise"][row.image_id])
    finally:
        explorer.close()
    order["ResNet50-Rise"] = [0, 1, 2, 3, 4, 5]  # keyless: one order within a model
    explorer = Explorer(root, scores=table("keyless.parquet", False), render_workers=0,
                        cache_dir=str(tmp_path / "cache2")).open()
    try:
        frame, _ = explorer.compare("ResNet50-Saliency", "ResNet50-Rise", "Insertion")
        assert sorted(frame["index"]) == list(range(6))
        with pytest.raises(AlignmentError, match="--images"):
            explorer.compare("ResNet50-Saliency", "DinoV2-Rise", "Insertion")
    finally:
        explorer.close()


def test_reliability_tab_shows_the_cards_of_the_statistics_computed_when_asked(site):
    """The Reliability view is `stats.reliability`'s cards and card picture, under the
    filters; nothing is computed with the first page, and each filter set once."""
    _, _, path, client, explorer = site
    assert not explorer.cards.kept  # the page opened (its leaderboard shown): no card yet
    plot, result = client.predict(*SHARED, api_name="/reliability")
    want = stats.reliability(path, activation="softmax").cards
    got = table(result)
    assert [(r["model"], r["metric"], r["grade"]) for r in got] == list(
        want[["model", "metric", "grade"]].itertuples(index=False, name=None))
    np.testing.assert_allclose([r["split_half"] if r["split_half"] is not None else np.nan
                                for r in got], want["split_half"], equal_nan=True)
    assert {r["separates_random"] for r in got} == {"not checked"}  # no RandomExp here
    assert pixels(plot).shape[0] > 200
    client.predict(*SHARED, api_name="/reliability")
    assert len(explorer.cards.kept) == 1  # the same filters: computed once
    wrong = table(client.predict("wrong", "", "", "softmax", api_name="/reliability")[1])
    want = stats.reliability(path, filters=["wrong"], activation="softmax").cards
    assert [(r["model"], r["metric"], r["n"]) for r in wrong] == list(
        want[["model", "metric", "n"]].itertuples(index=False, name=None))
    assert max(r["n"] for r in wrong) == N - 1 and len(explorer.cards.kept) == 2
    with pytest.raises(Exception, match="no scores left") as info:
        client.predict("all", "", "nope_id", "softmax", api_name="/reliability")
    assert "Traceback" not in str(info.value)
